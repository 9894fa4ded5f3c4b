//! A scripted, mocked Kubernetes API server for reconcile tests.
//!
//! `tower-test` stands in for the HTTP connection: the reconcile under test
//! runs in a task, and the test plays the API server by taking each request
//! in turn with [`ApiServer::expect`], asserting its method and path, and
//! answering it. Because every request blocks until it is answered, a
//! reconcile that finishes has made exactly the requests the test answered:
//! an unexpected write would hang it until [`TIMEOUT`] and fail the test.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde::Serialize;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use crate::context::{Context, Settings};
use crate::metrics::Metrics;

/// Longest wait for one request or for a reconcile to finish.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The test's side of the mocked connection.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// One request, waiting for its response.
pub struct Exchange {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Content type of the request body.
    pub content_type: String,
    /// Request body as JSON (`Null` when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Exchange {
    /// Answers with a status code and a JSON body.
    pub fn respond(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response");
        self.send.send_response(response);
    }

    /// Answers 200 with `obj`.
    pub fn ok<T: Serialize>(self, obj: &T) {
        let body = serde_json::to_value(obj).expect("serialise");
        self.respond(200, &body);
    }

    /// Answers 200 with the request body itself (what an apply or create
    /// returns, near enough).
    pub fn echo(self) {
        let body = self.body.clone();
        self.respond(200, &body);
    }

    /// Answers 404 Not Found.
    pub fn not_found(self) {
        self.respond(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        );
    }
}

/// A list response body.
pub fn list<T: Serialize>(kind: &str, items: &[T]) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

impl ApiServer {
    /// Takes the next request; fails the test if none arrives in time.
    pub async fn next(&mut self) -> Exchange {
        let (request, send) = tokio::time::timeout(TIMEOUT, self.handle.next_request())
            .await
            .expect("the reconcile should have sent another API request")
            .expect("the client is still connected");
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        Exchange {
            method,
            uri,
            content_type,
            body,
            send,
        }
    }

    /// Takes the next request and asserts its method and path (the part
    /// before `?`).
    pub async fn expect(&mut self, method: Method, path: &str) -> Exchange {
        let exchange = self.next().await;
        let actual_path = exchange.uri.split('?').next().unwrap_or_default();
        assert_eq!(
            (&exchange.method, actual_path),
            (&method, path),
            "unexpected request {} {}",
            exchange.method,
            exchange.uri
        );
        exchange
    }
}

/// A client wired to a scripted API server.
pub fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer { handle })
}

/// A context over a mocked client with default settings and hooks.
pub fn mock_context() -> (Context, ApiServer) {
    let (client, server) = mock_client();
    let context = Context::new(
        client,
        Metrics::new().expect("metrics"),
        Reporter {
            controller: "rill-operator".into(),
            instance: Some("test".into()),
        },
        Settings::default(),
    );
    (context, server)
}

/// Waits for a spawned reconcile and returns its result.
pub async fn finished<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("the reconcile should finish once its requests are answered")
        .expect("the reconcile task panicked")
}
