//! Kafka framing: every request and response is a big-endian `i32` size
//! followed by that many bytes.
//!
//! [`read_frame`] bounds the size before reading anything (a frame larger
//! than `--kafka-max-request-bytes` closes the connection) and grows its
//! buffer with the bytes that actually arrive (past the first 64 KiB), so
//! a client announcing a huge frame and sending nothing costs little
//! memory. [`encode_response`] writes the size, the response header (v0,
//! or v1 for flexible versions) and the body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a connection's byte stream cannot be read as frames.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("request frame of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("request frame size {0} is negative")]
    Negative(i32),
    #[error("connection closed in the middle of a frame ({read} of {size} bytes read)")]
    Truncated { read: usize, size: usize },
    #[error("reading from the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of the size prefix.
pub const SIZE_PREFIX: usize = 4;

/// Capacity a frame's buffer starts with before its bytes arrive.
const INITIAL_BODY: usize = 64 << 10;

/// Reads one frame. `Ok(None)` when the peer closed the connection
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut prefix = [0u8; SIZE_PREFIX];
    let mut got = 0;
    while got < SIZE_PREFIX {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                read: got,
                size: SIZE_PREFIX,
            });
        }
        got += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    // Room for a typical frame up front (fewer reads and reallocations);
    // beyond that the buffer grows only as bytes arrive.
    let mut body = Vec::with_capacity(size.min(INITIAL_BODY));
    let read = reader.take(size as u64).read_to_end(&mut body).await?;
    if read < size {
        return Err(FrameError::Truncated { read, size });
    }
    Ok(Some(Bytes::from(body)))
}

/// Why a response could not be encoded (a bug: every field set must exist
/// in the version answered).
#[derive(Debug, Error)]
#[error("encoding the {api} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: &'static str,
    pub version: i16,
    pub reason: String,
}

/// A whole response frame: size, header, body.
pub fn encode_response<R: Encodable + HeaderVersion>(
    api: &'static str,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let fail = |e: anyhow::Error| EncodeError {
        api,
        version,
        reason: e.to_string(),
    };
    let header_version = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(fail)?;
    let size_prefix = i32::try_from(size).map_err(|_| EncodeError {
        api,
        version,
        reason: format!("{size} bytes do not fit a frame"),
    })?;
    let mut buf = BytesMut::with_capacity(SIZE_PREFIX + size);
    buf.put_i32(size_prefix);
    header.encode(&mut buf, header_version).map_err(fail)?;
    body.encode(&mut buf, version).map_err(fail)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn given_whole_frames_when_read_should_yield_each_body() {
        let mut stream: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 0];
        assert_eq!(
            read_frame(&mut stream, 10).await.unwrap(),
            Some(Bytes::from_static(&[7, 8]))
        );
        assert_eq!(
            read_frame(&mut stream, 10).await.unwrap(),
            Some(Bytes::new())
        );
        assert_eq!(read_frame(&mut stream, 10).await.unwrap(), None);
    }

    #[tokio::test]
    async fn given_bad_sizes_when_read_should_fail_without_reading_the_body() {
        assert!(matches!(
            read(&[0, 0, 1, 0], 255).await,
            Err(FrameError::TooLarge {
                size: 256,
                max: 255
            })
        ));
        assert!(matches!(
            read(&[0xff, 0xff, 0xff, 0xfe], 255).await,
            Err(FrameError::Negative(-2))
        ));
        assert!(matches!(
            read(&[0, 0, 0, 5, 1, 2], 255).await,
            Err(FrameError::Truncated { read: 2, size: 5 })
        ));
        assert!(matches!(
            read(&[0, 0], 255).await,
            Err(FrameError::Truncated { read: 2, size: 4 })
        ));
    }
}
