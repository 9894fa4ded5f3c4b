//! Kafka framing: every request and response is a big-endian `i32` size
//! followed by that many bytes.
//!
//! [`read_frame`] bounds the size before reading anything (a frame larger
//! than `--kafka-max-request-bytes` closes the connection) and grows its
//! buffer with the bytes that actually arrive (past the first 64 KiB), so
//! a client announcing a huge frame and sending nothing costs little
//! memory. [`encode_response`] writes the size, the response header (v0,
//! or v1 for flexible versions) and the body; record sets read from the
//! log are referenced by the frame, not copied into it.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
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
    match read_size(reader, max).await? {
        Some(size) => read_body(reader, size).await.map(Some),
        None => Ok(None),
    }
}

/// The first half of [`read_frame`]: the size prefix, checked against
/// `max`. `None` when the peer closed cleanly before a frame.
pub async fn read_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<usize>, FrameError> {
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
    Ok(Some(size))
}

/// The second half of [`read_frame`]: a body of `size` bytes.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Result<Bytes, FrameError> {
    // Room for a typical frame up front (fewer reads and reallocations);
    // beyond that the buffer grows only as bytes arrive.
    let mut body = Vec::with_capacity(size.min(INITIAL_BODY));
    let read = reader.take(size as u64).read_to_end(&mut body).await?;
    if read < size {
        return Err(FrameError::Truncated { read, size });
    }
    Ok(Bytes::from(body))
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

/// An encoded response frame (size, header, body) in one or more parts,
/// written to the socket in order. Record sets read from the log travel as
/// parts of their own, referencing the bytes read rather than copying them
/// into the frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFrame {
    parts: Vec<Bytes>,
}

impl ResponseFrame {
    /// The frame's bytes, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// Bytes in the whole frame, size prefix included.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }

    /// The frame as one buffer (a copy when it has several parts).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => Bytes::from(parts.concat()),
        }
    }
}

/// A response frame: size, header, body. `shared` holds buffers the body
/// refers to (the record sets of a fetch): a slice of one of them of at
/// least [`SHARED_PART_MIN`] bytes becomes its own part of the frame
/// instead of being copied.
pub fn encode_response<R: Encodable + HeaderVersion>(
    api: &'static str,
    correlation_id: i32,
    version: i16,
    body: &R,
    shared: &[Bytes],
) -> Result<ResponseFrame, EncodeError> {
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
    let referenced: usize = shared
        .iter()
        .map(Bytes::len)
        .filter(|&n| n >= SHARED_PART_MIN)
        .sum();
    let mut buf = FrameBuf::new(SIZE_PREFIX + size.saturating_sub(referenced), shared);
    buf.put_i32(size_prefix);
    header.encode(&mut buf, header_version).map_err(fail)?;
    body.encode(&mut buf, version).map_err(fail)?;
    Ok(buf.finish())
}

/// Smallest slice of a shared buffer worth a part of its own (smaller
/// ones are copied: a write per part costs more than the copy).
pub const SHARED_PART_MIN: usize = 16 << 10;

/// The buffer a response is encoded into: bytes written go to `current`,
/// except a large slice of one of the `shared` buffers, which closes
/// `current` as a part and becomes a part itself.
struct FrameBuf<'a> {
    parts: Vec<Bytes>,
    current: BytesMut,
    shared: &'a [Bytes],
}

impl<'a> FrameBuf<'a> {
    fn new(capacity: usize, shared: &'a [Bytes]) -> Self {
        Self {
            parts: Vec::new(),
            current: BytesMut::with_capacity(capacity),
            shared,
        }
    }

    /// The shared buffer `src` lies in, if any.
    fn owner_of(&self, src: &[u8]) -> Option<&'a Bytes> {
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        self.shared.iter().find(|b| {
            let b_start = b.as_ptr() as usize;
            start >= b_start && end <= b_start + b.len()
        })
    }

    fn close_current(&mut self) {
        if !self.current.is_empty() {
            self.parts.push(self.current.split().freeze());
        }
    }

    fn finish(mut self) -> ResponseFrame {
        self.close_current();
        ResponseFrame { parts: self.parts }
    }
}

// `BufMut` is an unsafe trait; this is the one implementation of it in
// Rill, and it only delegates.
// SAFETY: every method that hands out or advances over uninitialised
// memory delegates to `current`, a `BytesMut`, whose implementation upholds
// the contract; `put_slice` only appends whole initialised parts.
#[allow(unsafe_code)]
unsafe impl BufMut for FrameBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which
        // is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARED_PART_MIN
            && let Some(owner) = self.owner_of(src)
        {
            let part = owner.slice_ref(src);
            self.close_current();
            self.parts.push(part);
            return;
        }
        self.current.put_slice(src);
    }
}

/// Offsets are positions in the whole frame. `seek` and `range` reach only
/// bytes written after the last shared part: response bodies never leave
/// gaps (they are sized up front), only record encoders do.
impl FrameBuf<'_> {
    /// Bytes in the closed parts.
    fn closed(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }
}

impl ByteBufMut for FrameBuf<'_> {
    fn offset(&self) -> usize {
        self.closed() + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        let local = offset
            .checked_sub(self.closed())
            .expect("seek back into a closed part of a response frame");
        self.current.seek(local);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let closed = self.closed();
        let start = r
            .start
            .checked_sub(closed)
            .expect("range in a closed part of a response frame");
        self.current.range(start..r.end - closed)
    }
}

/// The answer of a request handler, encoded at the request's version.
#[derive(Debug)]
pub enum Reply<R> {
    /// A response to encode.
    Body(R),
    /// A response that refers to these buffers, which the frame references
    /// instead of copying (see [`encode_response`]).
    Sharing(R, Vec<Bytes>),
    /// No response: a produce with acks=0, which Kafka never answers.
    Silent,
}

impl<R> Reply<R> {
    /// The reply with `finish` applied to its response (a silent reply has
    /// none): the answers authorization adds for what it took out of the
    /// request ([`super::authz`]).
    pub fn finish(self, finish: super::authz::Finish<R>) -> Self {
        let Some(f) = finish else {
            return self;
        };
        match self {
            Self::Body(mut r) => {
                f(&mut r);
                Self::Body(r)
            }
            Self::Sharing(mut r, shared) => {
                f(&mut r);
                Self::Sharing(r, shared)
            }
            Self::Silent => Self::Silent,
        }
    }
}

impl<R> From<R> for Reply<R> {
    fn from(response: R) -> Self {
        Self::Body(response)
    }
}

impl<R: Encodable + HeaderVersion> Reply<R> {
    /// The response frame for the request with `header`; `api` names the
    /// API in metrics and logs.
    pub fn encode(
        self,
        api: &'static str,
        header: &RequestHeader,
    ) -> Result<Option<ResponseFrame>, EncodeError> {
        let (body, shared) = match self {
            Self::Body(body) => (body, Vec::new()),
            Self::Sharing(body, shared) => (body, shared),
            Self::Silent => return Ok(None),
        };
        encode_response(
            api,
            header.correlation_id,
            header.request_api_version,
            &body,
            &shared,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::StrBytes;

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

    /// The plain encoding of a response, for comparison.
    fn copied<R: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &R) -> Bytes {
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let hv = R::header_version(version);
        let size = header.compute_size(hv).unwrap() + body.compute_size(version).unwrap();
        let mut buf = BytesMut::new();
        buf.put_i32(size as i32);
        header.encode(&mut buf, hv).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn fetch_response(records: &[Bytes]) -> kafka_protocol::messages::FetchResponse {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r.clone()))
            })
            .collect();
        kafka_protocol::messages::FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    StrBytes::from_static_str("t"),
                ))
                .with_partitions(partitions),
        ])
    }

    #[test]
    fn given_large_record_sets_when_encoded_should_reference_them_not_copy() {
        let big = Bytes::from(vec![7u8; 3 * SHARED_PART_MIN]);
        let other = Bytes::from(vec![9u8; SHARED_PART_MIN + 1]);
        let small = Bytes::from(vec![1u8; 100]);
        let sets = [big.clone(), small.clone(), other.clone()];
        for version in [4, 11, 12, 16] {
            let body = fetch_response(&sets);
            let frame = encode_response("Fetch", 5, version, &body, &sets).unwrap();
            assert_eq!(frame.to_bytes(), copied(5, version, &body), "v{version}");
            assert_eq!(frame.len(), frame.to_bytes().len());
            let referenced: Vec<_> = frame
                .parts()
                .iter()
                .filter(|p| sets.iter().any(|s| s.as_ptr() == p.as_ptr()))
                .map(Bytes::len)
                .collect();
            assert_eq!(
                referenced,
                vec![big.len(), other.len()],
                "v{version}: the large sets are parts"
            );
            // The header before, the small set copied between, and in
            // flexible versions (v12+) tagged fields after the last set.
            let tail = usize::from(version >= 12);
            assert_eq!(frame.parts().len(), 4 + tail, "v{version}");
        }
    }

    #[test]
    fn given_no_shared_buffers_when_encoded_should_make_one_part() {
        let sets = [Bytes::from(vec![7u8; 2 * SHARED_PART_MIN])];
        let body = fetch_response(&sets);
        let frame = encode_response("Fetch", 1, 12, &body, &[]).unwrap();
        assert_eq!(frame.parts().len(), 1);
        assert_eq!(frame.to_bytes(), copied(1, 12, &body));
    }
}
