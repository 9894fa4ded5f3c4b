//! A minimal Kafka protocol client for the tests: requests encoded with
//! the `kafka-protocol` crate, sent over a real TCP socket, responses
//! decoded at the version asked for. Also builds record batches with
//! producer ids and sequences, and the request frames of the fuzz corpus.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rill_client::batch::{EncodeOptions, NewRecord, Producer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for one response.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// One Kafka connection.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation: i32,
}

/// A whole request frame (size prefix included).
pub fn request_frame<R: Request + Encodable + HeaderVersion>(
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Bytes {
    let api = ApiKey::try_from(R::KEY).expect("known api");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rill-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .expect("header encodes");
    if let Err(e) = request.encode(&mut body, version) {
        panic!("{api:?} v{version} request does not encode: {e}");
    }
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame.freeze()
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends a request without waiting; returns its correlation id.
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        let id = self.next_correlation;
        self.next_correlation += 1;
        let frame = request_frame(version, id, request);
        self.stream.write_all(&frame).await.expect("send");
        id
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send raw");
    }

    /// Reads one response frame: (correlation id, body after the header).
    pub async fn recv_frame(&mut self, header_version: i16) -> Option<(i32, Bytes)> {
        let read = async {
            let size = self.stream.read_i32().await.ok()?;
            let mut body = vec![0u8; size as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            let mut body = Bytes::from(body);
            let header = ResponseHeader::decode(&mut body, header_version).ok()?;
            Some((header.correlation_id, body))
        };
        tokio::time::timeout(RESPONSE_TIMEOUT, read)
            .await
            .expect("response in time")
    }

    /// Reads the response of a request sent with [`Conn::send`].
    pub async fn recv<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let (id, mut body) = self
            .recv_frame(R::Response::header_version(version))
            .await
            .expect("a response, not a closed connection");
        assert_eq!(id, correlation_id, "responses come in request order");
        R::Response::decode(&mut body, version).expect("response decodes")
    }

    /// Sends a request and waits for its response.
    pub async fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let id = self.send(version, request).await;
        self.recv::<R>(version, id).await
    }

    /// Whether the broker closed the connection (reads EOF or a reset).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(RESPONSE_TIMEOUT, self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Encodes `values` as one RecordBatch v2 with an optional idempotent
/// producer (`(producer id, epoch, first sequence)`).
pub fn batch(
    values: &[&str],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> Bytes {
    let records: Vec<NewRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    let options = EncodeOptions {
        compression,
        producer: producer.map(|(id, epoch, first_sequence)| Producer {
            id,
            epoch,
            first_sequence,
        }),
        ..EncodeOptions::default()
    };
    rill_client::batch::encode(&records, &options).expect("batch encodes")
}

/// (offset, value) of every record in fetched batches.
pub fn records(data: &Bytes) -> Vec<(i64, String)> {
    let mut buf = data.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("fetched batches decode")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}
