//! Busy servers: positions reach the nearest players within view, edits
//! the players within reach; the client's 128-player table is kept right
//! with `D`, `P` and `N`.

mod support;

use std::time::Duration;

use support::{Client, TestServer};

const WAIT: Duration = Duration::from_secs(10);

async fn join(server: &TestServer) -> Client {
    let mut c = server.connect().await;
    c.send("V,1").await;
    c.until(WAIT, |l| l.starts_with("N,")).await;
    c
}

/// Everything that arrives within `quiet` of silence.
async fn settle(c: &mut Client) -> Vec<String> {
    c.drain(Duration::from_millis(1600)).await
}

#[tokio::test]
async fn busy_servers_show_the_nearest_and_tell_the_client_who_left_its_view() {
    let server = TestServer::memory(|c| {
        c.interest.broadcast_all_up_to = 2;
        c.interest.max_visible = 1;
        c.interest.view_radius = 2;
        c.interest.edit_radius = 3;
    })
    .await;
    let mut a = join(&server).await; // id 1, at the spawn
    let mut b = join(&server).await; // id 2
    let mut c = join(&server).await; // id 3: the server is now busy
    b.send("P,5.00,20.00,5.00,0.00,0.00").await;
    c.send("P,3200.00,20.00,3200.00,0.00,0.00").await;
    settle(&mut a).await;
    settle(&mut b).await;
    settle(&mut c).await;

    // a sees b (near), not c (far): only b's moves reach a.
    b.send("P,6.00,20.00,5.00,0.00,0.00").await;
    c.send("P,3201.00,20.00,3200.00,0.00,0.00").await;
    let lines = settle(&mut a).await;
    assert!(lines.contains(&"P,2,6,20,5,0,0".to_owned()), "{lines:?}");
    assert!(lines.iter().all(|l| !l.starts_with("P,3,")), "{lines:?}");

    // Edits reach players within the edit radius only.
    c.send("B,3205,100,3205,5").await;
    b.send("B,7,100,7,5").await;
    let lines = settle(&mut a).await;
    assert!(lines.contains(&"B,0,0,7,100,7,5".to_owned()), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("3205")), "{lines:?}");

    // c comes closer than b: a is told b left its view and who c is.
    c.send("P,1.00,20.00,1.00,0.00,0.00").await;
    let lines = settle(&mut a).await;
    assert!(lines.contains(&"D,2".to_owned()), "{lines:?}");
    assert!(lines.contains(&"N,3,guest3".to_owned()), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("P,3,")), "{lines:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_quiet_server_sends_everything_to_everyone() {
    let server = TestServer::memory(|_| {}).await;
    let mut a = join(&server).await;
    let mut b = join(&server).await;
    b.send("P,5000.00,20.00,5000.00,0.00,0.00").await;
    b.send("B,5000,100,5000,5").await;
    let lines = a.until(WAIT, |l| l == "B,156,156,5000,100,5000,5").await;
    assert!(
        lines.contains(&"P,2,5000,20,5000,0,0".to_owned()),
        "{lines:?}"
    );
    server.stop().await;
}
