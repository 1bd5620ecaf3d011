//! One transaction in one round trip.
//!
//! tokio-postgres writes a request to the connection when its future is
//! first polled and matches replies to requests in order, so polling several
//! futures of one client together pipelines them. [`transaction`] sends
//! `BEGIN`, the statements and `COMMIT` back to back and then waits for all
//! the replies: one network round trip however many statements.
//!
//! Every statement ends with its own `Sync`, so when one fails the server
//! answers each later one with "current transaction is aborted" (`25P02`),
//! and the `COMMIT` ends the transaction as a rollback. Nothing of a failed
//! batch is kept. A statement that fails *before* being sent (a parameter
//! that cannot be encoded) would not abort the server's transaction: then
//! `ROLLBACK` is sent instead of `COMMIT`.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_postgres::{Client, Row};

/// A statement's reply.
pub(crate) enum Reply {
    /// Rows of a `query`.
    Rows(Vec<Row>),
    /// An `execute` (its row count is not needed).
    Done,
}

/// A statement already bound to its client and parameters.
pub(crate) type StatementFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Reply, tokio_postgres::Error>> + Send + 'a>>;

/// What each part of the transaction answered.
pub(crate) struct Outcome {
    /// `BEGIN`.
    pub(crate) begin: Answer,
    /// The statements, in order.
    pub(crate) statements: Vec<Answer>,
    /// `COMMIT` (or `ROLLBACK`, see [`Outcome::committed`]).
    pub(crate) end: Answer,
    /// Whether `COMMIT` was sent (rather than `ROLLBACK`).
    pub(crate) committed: bool,
}

/// A reply; `None` only if the future never finished, which
/// [`transaction`] rules out by polling until every one has.
pub(crate) type Answer = Option<Result<Reply, tokio_postgres::Error>>;

type Slot<'a> = (StatementFuture<'a>, Answer);

/// A statement of the simple query protocol (`BEGIN`, `COMMIT`).
pub(crate) fn simple<'a>(client: &'a Client, sql: &'static str) -> StatementFuture<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Reply::Done) })
}

/// Polls every unfinished slot once, in order; true when all are done.
fn poll_round(slots: &mut [Slot<'_>], cx: &mut std::task::Context<'_>) -> bool {
    let mut done = true;
    for (future, result) in slots.iter_mut() {
        if result.is_none() {
            match future.as_mut().poll(cx) {
                Poll::Ready(r) => *result = Some(r),
                Poll::Pending => done = false,
            }
        }
    }
    done
}

/// Runs `statements` (futures of queries on one client, not yet polled)
/// pipelined, inside whatever transaction the session has open: every
/// request is written, in order, before any reply is awaited.
pub(crate) async fn pipelined(statements: Vec<StatementFuture<'_>>) -> Vec<Answer> {
    let mut slots: Vec<Slot<'_>> = statements.into_iter().map(|f| (f, None)).collect();
    finish(&mut slots).await;
    slots.into_iter().map(|(_, answer)| answer).collect()
}

/// Polls `slots` until every one has its answer.
async fn finish(slots: &mut [Slot<'_>]) {
    std::future::poll_fn(|cx| {
        if poll_round(slots, cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Runs `statements` (futures of queries on `client`, not yet polled) in one
/// transaction, pipelined (see the module docs).
pub(crate) async fn transaction<'a>(
    client: &'a Client,
    statements: Vec<StatementFuture<'a>>,
) -> Outcome {
    let mut slots: Vec<Slot<'a>> = Vec::with_capacity(statements.len() + 2);
    slots.push((simple(client, "BEGIN"), None));
    slots.extend(statements.into_iter().map(|f| (f, None)));
    // First round: every request is written, in order, before any reply
    // can be awaited.
    std::future::poll_fn(|cx| {
        poll_round(&mut slots, cx);
        Poll::Ready(())
    })
    .await;
    let failed_unsent = slots.iter().any(|(_, r)| matches!(r, Some(Err(_))));
    let committed = !failed_unsent;
    slots.push((
        simple(client, if committed { "COMMIT" } else { "ROLLBACK" }),
        None,
    ));
    finish(&mut slots).await;

    let mut answers = slots.into_iter().map(|(_, answer)| answer);
    let begin = answers.next().flatten();
    let mut statements: Vec<Answer> = answers.collect();
    let end = statements.pop().flatten();
    Outcome {
        begin,
        statements,
        end,
        committed,
    }
}
