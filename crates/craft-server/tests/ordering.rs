//! What clients see comes in a deterministic order: players in join order
//! (greetings, `/list`), and lines of different players in the order the
//! server read them.

mod support;

use std::time::Duration;

use support::{Client, TestServer};

const WAIT: Duration = Duration::from_secs(10);

async fn join(server: &TestServer) -> Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

/// Players 1..=12 join, 3 and 7 leave, two more join (taking ids 3 and 7
/// again, but joining after everyone): a newcomer (13) hears of the others
/// in join order, which is neither id order nor any hash order, and
/// `/list` names them in that order.
async fn newcomer_hears_of_everyone_in_join_order(busy: bool) {
    let server = TestServer::memory(|c| {
        if busy {
            // Past this many players, who sees whom comes from the
            // visibility sets (everyone here is near the spawn).
            c.interest.broadcast_all_up_to = 4;
        }
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(Some(join(&server).await));
    }
    let mut witness = join(&server).await; // id 13, joined 13th
    for id in [3, 7] {
        clients[id - 1] = None;
        witness
            .until(WAIT, |l| {
                l == format!("T,guest{id} has disconnected from the server.")
            })
            .await;
    }
    let late_three = join(&server).await;
    let late_seven = join(&server).await;
    let mut newcomer = server.connect().await;
    newcomer.send("V,1").await;
    newcomer.send("T,/list").await;
    let lines = newcomer.until(WAIT, |l| l.starts_with("T,Players: ")).await;
    let order = [1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 3, 7];
    let positions: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("P,"))
        .map(|l| l.split(',').nth(1).unwrap_or_default().to_owned())
        .collect();
    let want: Vec<String> = order.iter().map(u32::to_string).collect();
    assert_eq!(positions, want, "P lines: {lines:?}");
    let nicks: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("N,") && *l != "N,14,guest14")
        .collect();
    let want: Vec<String> = order.iter().map(|id| format!("N,{id},guest{id}")).collect();
    assert_eq!(nicks, want.iter().collect::<Vec<_>>(), "N lines: {lines:?}");
    let mut names: Vec<String> = order.iter().map(|id| format!("guest{id}")).collect();
    names.push("guest14".into());
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("T,Players: {}", names.join(", ")).as_str())
    );
    drop((clients, late_three, late_seven));
    server.stop().await;
}

#[tokio::test]
async fn players_are_listed_in_join_order() {
    newcomer_hears_of_everyone_in_join_order(false).await;
}

#[tokio::test]
async fn busy_servers_list_visible_players_in_join_order_too() {
    newcomer_hears_of_everyone_in_join_order(true).await;
}

/// Two players alternate chat lines 5 ms apart: a third one sees them in
/// exactly the order they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_different_players_keep_their_order() {
    let server = TestServer::memory(|_| {}).await;
    let mut a = join(&server).await;
    let mut b = join(&server).await;
    let mut watcher = join(&server).await;
    watcher.until(WAIT, |l| l == "N,2,guest2").await;
    const LINES: usize = 40;
    let mut sent = Vec::new();
    for i in 0..LINES {
        let (who, client) = if i % 2 == 0 { (1, &mut a) } else { (2, &mut b) };
        client.send(&format!("T,line {i}")).await;
        sent.push(format!("T,guest{who}> line {i}"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = sent.last().cloned().unwrap_or_default();
    let seen: Vec<String> = watcher
        .until(WAIT, |l| l == last)
        .await
        .into_iter()
        .filter(|l| l.starts_with("T,guest"))
        .collect();
    assert_eq!(seen, sent);
    server.stop().await;
}
