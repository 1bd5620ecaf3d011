//! Reading a server's bus figures from its admin listener's `/metrics`
//! (Prometheus text): messages and payload bytes by direction and topic
//! kind, drops, and the connection, peer and lag gauges.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one `/metrics` answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One reading of a server's bus metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BusMetrics {
    /// `craft_bus_connected`.
    pub connected: Option<i64>,
    /// `craft_bus_peers`.
    pub peers: Option<i64>,
    /// `craft_bus_lag_ms`.
    pub lag_ms: Option<i64>,
    /// `craft_bus_dropped_total` (deliveries dropped, receiver full).
    pub dropped: u64,
    /// (topic, direction) -> (messages, bytes).
    pub traffic: BTreeMap<(String, String), (u64, u64)>,
}

impl BusMetrics {
    /// Parses Prometheus text.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            match name {
                "craft_bus_connected" => out.connected = Some(value as i64),
                "craft_bus_peers" => out.peers = Some(value as i64),
                "craft_bus_lag_ms" => out.lag_ms = Some(value as i64),
                "craft_bus_dropped_total" => out.dropped += value as u64,
                "craft_bus_messages_total" | "craft_bus_bytes_total" => {
                    let label = |key: &str| {
                        labels.split(',').find_map(|kv| {
                            let (k, v) = kv.split_once('=')?;
                            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                        })
                    };
                    let (Some(topic), Some(direction)) = (label("topic"), label("direction"))
                    else {
                        continue;
                    };
                    let entry = out.traffic.entry((topic, direction)).or_default();
                    if name == "craft_bus_messages_total" {
                        entry.0 += value as u64;
                    } else {
                        entry.1 += value as u64;
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Messages and bytes in one direction (`in`/`out`), all topics.
    pub fn total(&self, direction: &str) -> (u64, u64) {
        self.traffic
            .iter()
            .filter(|((_, d), _)| d == direction)
            .fold((0, 0), |(m, b), (_, (dm, db))| (m + dm, b + db))
    }
}

/// Reads `http://ADDR/metrics` of a server's admin listener.
pub async fn read(admin: SocketAddr) -> Result<BusMetrics, String> {
    let text = tokio::time::timeout(TIMEOUT, get(admin, "/metrics"))
        .await
        .map_err(|_| format!("{admin}/metrics did not answer within {TIMEOUT:?}"))??;
    Ok(BusMetrics::parse(&text))
}

/// A minimal HTTP/1.1 GET (one request per connection).
async fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("cannot read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1).is_none_or(|code| code != "200") {
        return Err(format!("{addr}{path}: {status}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || rest.len() < size {
            out.push_str(rest.get(..size.min(rest.len())).unwrap_or(""));
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bus_series() {
        let m = BusMetrics::parse(
            "# HELP craft_bus_messages_total x\n\
             craft_bus_messages_total{direction=\"in\",topic=\"region\"} 10\n\
             craft_bus_messages_total{direction=\"out\",topic=\"region\"} 4\n\
             craft_bus_bytes_total{direction=\"out\",topic=\"region\"} 400\n\
             craft_bus_messages_total{direction=\"out\",topic=\"fleet\"} 2\n\
             craft_bus_dropped_total 3\n\
             craft_bus_connected 1\ncraft_bus_peers 3\ncraft_bus_lag_ms 7\n\
             craft_players 5\n",
        );
        assert_eq!(m.connected, Some(1));
        assert_eq!(m.peers, Some(3));
        assert_eq!(m.lag_ms, Some(7));
        assert_eq!(m.dropped, 3);
        assert_eq!(m.total("out"), (6, 400));
        assert_eq!(m.total("in"), (10, 0));
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
