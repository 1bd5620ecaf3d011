//! Replaying `fixtures/transcripts/*.scenario` and comparing with
//! `*.expected` under the fixtures README's allowances:
//!
//! - `E,*,600`: the time field is not compared;
//! - `K,P,Q,KEY`: the key is the server's own, in `0..=2147483647`, and
//!   grows whenever the original's did (the chunk changed);
//! - floats in `P` and `U` compare as numbers;
//! - the `B`, `L`, `S` lines answering one `C` request compare as a set;
//!   the closing `K`, `R`, `C` lines in order;
//! - the two welcome lines and the `Visit ... to register!` hint are the
//!   server's own text.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

struct Peer {
    writer: Option<OwnedWriteHalf>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
    /// Sync lines sent so far.
    syncs: usize,
}

/// Sent to learn that the server has handled everything a client sent
/// before: a private message to a nick nobody has, answered to the sender
/// alone and changing nothing. Its answer is left out of what the client
/// received.
const SYNC: &str = "T,@~sync~";
const SYNC_ANSWER: &str = "T,Unrecognized nick: \"~sync~\"";
/// The longest a sync or a close may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs a scenario against `addr`; returns what each client received.
///
/// Nothing waits for a fixed time. Lines of different clients are handled
/// in the order the server reads them, so before another client sends, the
/// previous sender is synced (the server has handled all it sent). A
/// `wait` step, and the end of the scenario, settle every client: everyone
/// syncs twice, the first round to have every line handled, the second so
/// that everything those lines sent to anyone has arrived.
pub async fn replay(scenario: &Path, addr: SocketAddr) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(scenario).expect("scenario readable");
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut last_sender = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "open" => {
                let stream = TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (r, w) = stream.into_split();
                let lines = Arc::new(Mutex::new(Vec::new()));
                let sink = lines.clone();
                let reader = tokio::spawn(async move {
                    let mut r = BufReader::new(r);
                    let mut buf = String::new();
                    while let Ok(n) = r.read_line(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        sink.lock()
                            .expect("lock")
                            .push(buf.trim_end_matches('\n').to_owned());
                        buf.clear();
                    }
                });
                peers.insert(
                    rest.to_owned(),
                    Peer {
                        writer: Some(w),
                        lines,
                        reader,
                        syncs: 0,
                    },
                );
            }
            "send" => {
                let (who, payload) = rest.split_once(' ').expect("send WHO LINE");
                switch_to(&mut peers, &mut last_sender, who).await;
                send(&mut peers, who, payload).await;
            }
            "sendk" => {
                let mut parts = rest.split(' ');
                let who = parts.next().expect("who");
                switch_to(&mut peers, &mut last_sender, who).await;
                // The answers to what it sent before carry the key.
                sync(&mut peers, who).await;
                let p = parts.next().expect("p");
                let q = parts.next().expect("q");
                let prefix = format!("K,{p},{q},");
                let key = peers[who]
                    .lines
                    .lock()
                    .expect("lock")
                    .iter()
                    .rev()
                    .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
                    .unwrap_or_else(|| "0".to_owned());
                send(&mut peers, who, &format!("C,{p},{q},{key}")).await;
            }
            "wait" => {
                let _: u64 = rest.parse().expect("wait MS");
                settle(&mut peers).await;
            }
            "close" => {
                if let Some(peer) = peers.get_mut(rest) {
                    peer.writer = None;
                    // The server queues the disconnection before it closes
                    // the socket: the reader's end means it is in line.
                    tokio::time::timeout(DEADLINE, &mut peer.reader)
                        .await
                        .unwrap_or_else(|_| panic!("the server never closed {rest}"))
                        .expect("reader");
                }
                if last_sender == rest {
                    last_sender.clear();
                }
            }
            other => panic!("unknown scenario step {other:?}"),
        }
    }
    settle(&mut peers).await;
    peers
        .into_iter()
        .map(|(name, peer)| {
            peer.reader.abort();
            let lines = peer
                .lines
                .lock()
                .expect("lock")
                .iter()
                .filter(|l| *l != SYNC_ANSWER)
                .cloned()
                .collect();
            (name, lines)
        })
        .collect()
}

/// Before `who` sends, the previous sender's lines are all handled.
async fn switch_to(peers: &mut BTreeMap<String, Peer>, last: &mut String, who: &str) {
    if !last.is_empty() && last != who && peers.contains_key(last.as_str()) {
        let previous = last.clone();
        sync(peers, &previous).await;
    }
    who.clone_into(last);
}

/// Waits until the server has handled everything `who` sent so far.
async fn sync(peers: &mut BTreeMap<String, Peer>, who: &str) {
    let Some(peer) = peers.get_mut(who) else {
        return;
    };
    if peer.writer.is_none() {
        return;
    }
    peer.syncs += 1;
    let want = peer.syncs;
    send(peers, who, SYNC).await;
    let lines = peers[who].lines.clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| *l == SYNC_ANSWER)
        .count()
        < want
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who} was never answered: {:?}",
            lines.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every open client synced, twice: all lines handled, all their effects
/// delivered.
async fn settle(peers: &mut BTreeMap<String, Peer>) {
    let open: Vec<String> = peers
        .iter()
        .filter(|(_, p)| p.writer.is_some())
        .map(|(name, _)| name.clone())
        .collect();
    for _ in 0..2 {
        for who in &open {
            sync(peers, who).await;
        }
    }
}

async fn send(peers: &mut BTreeMap<String, Peer>, who: &str, line: &str) {
    let peer = peers
        .get_mut(who)
        .unwrap_or_else(|| panic!("{who} is not open"));
    let writer = peer
        .writer
        .as_mut()
        .unwrap_or_else(|| panic!("{who} is closed"));
    writer
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("send");
}

/// What each client of an `.expected` file received.
pub fn expected(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).expect("expected readable");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((who, rest)) = line.split_once("< ") {
            if !who.contains(' ') {
                out.entry(who.to_owned()).or_default().push(rest.to_owned());
            }
        } else if let Some((who, _)) = line.split_once("> ")
            && !who.contains(' ')
        {
            out.entry(who.to_owned()).or_default();
        }
    }
    out
}

#[derive(Debug)]
enum Item {
    Line(String),
    /// The answer to one chunk request.
    Answer {
        chunk: String,
        body: Vec<String>,
        key: Option<String>,
        redraw: bool,
    },
}

fn chunk_of(line: &str) -> Option<String> {
    let mut f = line.split(',');
    f.next()?;
    Some(format!("{},{}", f.next()?, f.next()?))
}

fn items(lines: &[String]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let kind = line.split(',').next().unwrap_or("");
        if matches!(kind, "B" | "L" | "S" | "K" | "R" | "C")
            && let Some(chunk) = chunk_of(line)
        {
            // Try to read BLS* K? R? C for one chunk.
            let mut j = i;
            let same = |l: &String, k: &str| l.starts_with(&format!("{k},{chunk},"));
            while j < lines.len() && ["B", "L", "S"].iter().any(|k| same(&lines[j], k)) {
                j += 1;
            }
            let body: Vec<String> = lines[i..j].to_vec();
            let mut key = None;
            if j < lines.len() && same(&lines[j], "K") {
                key = lines[j].rsplit(',').next().map(str::to_owned);
                j += 1;
            }
            let mut redraw = false;
            if j < lines.len() && lines[j] == format!("R,{chunk}") {
                redraw = true;
                j += 1;
            }
            if j < lines.len() && lines[j] == format!("C,{chunk}") {
                out.push(Item::Answer {
                    chunk,
                    body,
                    key,
                    redraw,
                });
                i = j + 1;
                continue;
            }
        }
        out.push(Item::Line(line.clone()));
        i += 1;
    }
    out
}

fn numbers_equal(a: &str, b: &str) -> bool {
    let fa: Vec<&str> = a.split(',').collect();
    let fb: Vec<&str> = b.split(',').collect();
    fa.len() == fb.len()
        && fa[0] == fb[0]
        && fa
            .iter()
            .zip(&fb)
            .skip(1)
            .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() < 1e-6,
                _ => x == y,
            })
}

/// Lines the original never sent that this server adds to its answers:
/// `/help` also lists the private-build commands (issue 12).
const EXTENSION_LINES: &[&str] = &["T,/private, /publish [check], /discard, /history, /rollback"];

fn line_matches(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    if expected == "E,*,600" {
        let f: Vec<&str> = actual.split(',').collect();
        return f.len() == 3 && f[0] == "E" && f[1].parse::<f64>().is_ok() && f[2] == "600";
    }
    if expected.starts_with("U,") || expected.starts_with("P,") {
        return numbers_equal(expected, actual);
    }
    if expected.starts_with("T,Visit ") && expected.ends_with(" to register!") {
        return actual.starts_with("T,Visit ") && actual.ends_with(" to register!");
    }
    if expected == "T,Welcome to Craft!" || expected == "T,Type \"/help\" for a list of commands." {
        return actual.starts_with("T,");
    }
    false
}

/// Compares what a client received with what the original sent; returns
/// every difference.
pub fn compare(who: &str, expected: &[String], actual: &[String]) -> Vec<String> {
    // Lines this server adds to the original's answers on purpose.
    let actual: Vec<String> = actual
        .iter()
        .filter(|l| !EXTENSION_LINES.contains(&l.as_str()))
        .cloned()
        .collect();
    let want = items(expected);
    let got = items(&actual);
    let mut problems = Vec::new();
    // Keys per chunk: (last expected, last actual).
    let mut keys: HashMap<String, (i64, i64)> = HashMap::new();
    for (n, pair) in want.iter().zip(&got).enumerate() {
        match pair {
            (Item::Line(w), Item::Line(g)) => {
                if !line_matches(w, g) {
                    problems.push(format!("{who} line item {n}: expected {w:?}, got {g:?}"));
                }
            }
            (
                Item::Answer {
                    chunk: wc,
                    body: wb,
                    key: wk,
                    redraw: wr,
                },
                Item::Answer {
                    chunk: gc,
                    body: gb,
                    key: gk,
                    redraw: gr,
                },
            ) => {
                let mut wb = wb.clone();
                let mut gb = gb.clone();
                wb.sort();
                gb.sort();
                if wc != gc || wb != gb || wr != gr || wk.is_some() != gk.is_some() {
                    problems.push(format!(
                        "{who} answer item {n} for chunk {wc}: expected {wb:?} K={wk:?} R={wr}, got chunk {gc} {gb:?} K={gk:?} R={gr}"
                    ));
                }
                if let (Some(wk), Some(gk)) = (wk, gk) {
                    let (wk, gk) = (
                        wk.parse::<i64>().unwrap_or(-1),
                        gk.parse::<i64>().unwrap_or(-1),
                    );
                    if !(0..=2_147_483_647).contains(&gk) {
                        problems.push(format!("{who}: key {gk} for {gc} out of range"));
                    }
                    let entry = keys.entry(gc.clone()).or_insert((0, 0));
                    if (wk > entry.0 && gk <= entry.1) || gk < entry.1 {
                        problems.push(format!(
                            "{who}: key for {gc} went from {} to {gk} while the original's went from {} to {wk}",
                            entry.1, entry.0
                        ));
                    }
                    *entry = (wk, gk);
                }
            }
            (w, g) => problems.push(format!("{who} item {n}: expected {w:?}, got {g:?}")),
        }
    }
    if want.len() != got.len() {
        let extra: Vec<&Item> = got.iter().skip(want.len()).collect();
        let missing: Vec<&Item> = want.iter().skip(got.len()).collect();
        problems.push(format!(
            "{who}: expected {} items, got {}; missing {missing:?}; extra {extra:?}",
            want.len(),
            got.len()
        ));
    }
    problems
}
