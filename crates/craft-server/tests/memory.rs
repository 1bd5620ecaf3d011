//! Many idle connections at once: each is greeted and the server keeps
//! serving. What an idle connection costs in memory is measured by the
//! benchmark (`craft-bench idle`, run by `scripts/bench.sh`, figures in
//! BENCHMARKS.md and OPERATIONS.md), not asserted here: resident memory
//! on a shared machine is not a test's business.

mod support;

use std::time::Duration;

use support::{Client, TestServer};

const CONNECTIONS: usize = 500;
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_are_served() {
    let server = TestServer::memory(|_| {}).await;
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut c = Client::connect(server.addr).await;
        c.send("V,1").await;
        clients.push(c);
    }
    // Every one is greeted with its own id (ids are the smallest free).
    for (i, c) in clients.iter_mut().enumerate() {
        let id = i + 1;
        c.until(WAIT, |l| l == format!("N,{id},guest{id}")).await;
    }
    // The last one heard of everyone before it.
    let mut newest = clients.pop().expect("clients");
    newest.send("T,/list").await;
    let list = newest.until(WAIT, |l| l.starts_with("T,Players: ")).await;
    let names = list.last().map(|l| l.matches("guest").count());
    assert_eq!(names, Some(CONNECTIONS));
    // And the server still answers a newcomer at once.
    let mut late = Client::connect(server.addr).await;
    late.send("V,1").await;
    late.send("T,hello").await;
    late.until(WAIT, |l| l == format!("T,guest{}> hello", CONNECTIONS + 1))
        .await;
    drop(clients);
    server.stop().await;
}
