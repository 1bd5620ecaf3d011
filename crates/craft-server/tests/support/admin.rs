//! Talking to the admin page like its scripts do: JSON actions with a
//! bearer token, the event stream, PNG tiles.

use std::time::Duration;

use super::TestServer;

/// The token the tests configure.
pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A GET answer.
pub struct Got {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Got {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GETs `path` from the admin listener.
pub async fn get(server: &TestServer, path: &str) -> Got {
    let addr = server.admin.expect("admin listener configured");
    let response = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("GET");
    Got {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

/// POSTs `body` as JSON to `path`, with `token` as a bearer token when
/// given: status, `WWW-Authenticate`, JSON answer.
pub async fn post(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, String, serde_json::Value) {
    let addr = server.admin.expect("admin listener configured");
    let mut request = client()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, challenge, json)
}

/// The figures of `/api/status`.
pub async fn status(server: &TestServer) -> serde_json::Value {
    let got = get(server, "/api/status").await;
    assert_eq!(got.status, 200);
    serde_json::from_slice(&got.body).expect("status JSON")
}

/// Polls `/api/status` until `pred` holds (panics after `within`).
pub async fn status_until(
    server: &TestServer,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = status(server).await;
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    /// `event:`.
    pub name: String,
    /// `data:`.
    pub data: String,
}

/// The admin event stream.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Opens `/api/events`.
    pub async fn open(server: &TestServer) -> Self {
        let addr = server.admin.expect("admin listener configured");
        let response = client()
            .get(format!("http://{addr}/api/events"))
            .send()
            .await
            .expect("GET /api/events");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// Reads events until one satisfies `pred` (panics after `within`).
    pub async fn until(&mut self, within: Duration, pred: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    name: "message".into(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.name = name.trim().to_owned();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data.push_str(data.trim_start());
                    }
                }
                if pred(&event) {
                    return event;
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("no matching event in time")
                .expect("stream")
                .expect("the stream ended");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Decodes a 256 x 256 RGB PNG into its pixels.
pub fn decode(png_bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!((info.width, info.height), (256, 256));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    pixels.truncate(info.buffer_size());
    pixels
}

/// The pixel at `(x, y)`.
pub fn pixel(pixels: &[u8], x: usize, y: usize) -> [u8; 3] {
    let i = (y * 256 + x) * 3;
    [pixels[i], pixels[i + 1], pixels[i + 2]]
}
