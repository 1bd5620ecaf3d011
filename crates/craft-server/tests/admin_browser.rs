//! A real browser on the map: headless Chromium loads `/map` from a running
//! server while bots walk around; the page's DOM must show a marker with
//! each bot's nick, and a screenshot must show the map (not a blank
//! canvas).
//!
//! Chromium comes from Debian's `chromium` package (`apt-get install -y
//! --no-install-recommends chromium`; `.ci/run` installs it), or from
//! `$CRAFT_CHROMIUM`. Without it the test says so and passes, unless
//! `CRAFT_TEST_REQUIRE_SERVICES` is set.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::TestServer;
use support::admin::status_until;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
/// One Chromium run at most (a cold start on a busy machine is slow).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
const NICKS: [&str; 3] = ["alice", "bob", "carol"];
const WINDOW: (u32, u32) = (1000, 700);

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRAFT_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `args`, in a profile of its own.
async fn browse(browser: &Path, profile: &Path, url: &str, args: &[String]) -> Vec<u8> {
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            // Virtual time runs while no request is pending: the page's
            // first status and tiles load, then the DOM is taken (the
            // page opens its endless event stream only after a second).
            "--virtual-time-budget=500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .expect("chromium finished in time")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A bot that names itself and walks in a small circle until dropped.
async fn bot(
    addr: std::net::SocketAddr,
    nick: &'static str,
    index: usize,
) -> tokio::task::JoinHandle<()> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    tokio::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        // Keep reading so that the server never sees a slow client.
        let reader =
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let _ = write
            .write_all(format!("V,1\nT,/nick {nick}\n").as_bytes())
            .await;
        for step in 0u32.. {
            let angle = f64::from(step) * 0.2 + index as f64 * 2.0;
            let x = 20.0 * index as f64 + 8.0 * angle.cos();
            let z = -15.0 * index as f64 + 8.0 * angle.sin();
            let line = format!("P,{x:.2},40.00,{z:.2},0.00,0.00\n");
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reader.abort();
    })
}

fn distinct_colours(png_bytes: &[u8], top: u32) -> usize {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    let channels = info.color_type.samples();
    let row = info.line_size;
    let mut colours = HashSet::new();
    for y in top..info.height {
        let line = &pixels[y as usize * row..(y as usize + 1) * row];
        for p in line.chunks(channels) {
            colours.insert(p[..3].to_vec());
        }
    }
    colours.len()
}

#[tokio::test]
async fn a_browser_shows_the_map_with_the_players() {
    let Some(browser) = chromium() else {
        let help = "Chromium is not installed: `apt-get install -y --no-install-recommends chromium` \
                    (Debian), or set CRAFT_CHROMIUM to a Chromium or Chrome binary";
        assert!(
            std::env::var_os("CRAFT_TEST_REQUIRE_SERVICES").is_none(),
            "{help} (CRAFT_TEST_REQUIRE_SERVICES is set)"
        );
        eprintln!("skipping the browser test: {help}");
        return;
    };
    let server = TestServer::memory(|c| {
        c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let mut bots = Vec::new();
    for (i, nick) in NICKS.into_iter().enumerate() {
        bots.push(bot(server.addr, nick, i).await);
    }
    status_until(&server, WAIT, |s| {
        s["players"]
            .as_array()
            .is_some_and(|p| NICKS.iter().all(|n| p.iter().any(|p| p["nick"] == *n)))
    })
    .await;
    let admin = server.admin.expect("admin");
    let url = format!("http://{admin}/map");
    let dir = tempfile::tempdir().expect("tempdir");

    // The DOM: one marker per bot, with its nick.
    let mut dom = String::new();
    for attempt in 0..5 {
        let profile = dir.path().join(format!("dom-{attempt}"));
        dom = String::from_utf8_lossy(
            &browse(&browser, &profile, &url, &["--dump-dom".into()]).await,
        )
        .into_owned();
        if NICKS
            .iter()
            .all(|n| dom.contains(&format!("data-nick=\"{n}\"")))
        {
            break;
        }
    }
    for nick in NICKS {
        assert!(
            dom.contains(&format!("data-nick=\"{nick}\"")),
            "no marker for {nick} in:\n{dom}"
        );
    }
    assert_eq!(
        dom.matches("class=\"player-marker\"").count(),
        NICKS.len(),
        "{dom}"
    );
    assert!(dom.contains("<canvas id=\"map\""), "{dom}");

    // The screenshot: the map area below the header shows terrain.
    let shot = dir.path().join("map.png");
    let mut colours = 0;
    for attempt in 0..5 {
        let profile = dir.path().join(format!("shot-{attempt}"));
        browse(
            &browser,
            &profile,
            &url,
            &[format!("--screenshot={}", shot.display())],
        )
        .await;
        let png_bytes = std::fs::read(&shot).expect("screenshot written");
        colours = distinct_colours(&png_bytes, 60);
        if colours > 100 {
            break;
        }
    }
    if let Some(keep) = std::env::var_os("CRAFT_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
    assert!(
        colours > 100,
        "the map is blank: {colours} colours below the header"
    );
    for bot in bots {
        bot.abort();
    }
    server.stop().await;
}
