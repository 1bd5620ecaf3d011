//! An in-process bus: several handles on one [`MemoryHub`], each standing
//! for a server. Tests simulate a fleet in one process with it, outages
//! included ([`MemoryHub::set_connected`]); the conformance suite checks it
//! like the real backends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;

use crate::bus::{Bus, BusCounter, BusStatus};
use crate::config::{BusOptions, Namespace, ServerId};
use crate::error::{BusError, BusResult};
use crate::inbox::{BusReceiver, Inbox, channel};
use crate::topic::Topic;

/// Default [`Bus::max_payload`] of a memory bus: NATS's order of magnitude.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// The shared medium of memory buses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MemoryHub {
    inner: Arc<Mutex<Hub>>,
}

#[derive(Debug)]
struct Hub {
    connected: bool,
    max_payload: usize,
    next_handle: u64,
    members: BTreeMap<u64, Member>,
}

#[derive(Debug)]
struct Member {
    server: ServerId,
    namespace: Namespace,
    inbox: Inbox,
    interest: BTreeSet<Topic>,
}

impl Member {
    fn receives(&self, topic: Topic) -> bool {
        match topic {
            Topic::Fleet => true,
            Topic::Server(id) if id == self.server => true,
            other => self.interest.contains(&other),
        }
    }
}

impl Default for MemoryHub {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryHub {
    /// A connected hub with [`DEFAULT_MAX_PAYLOAD`].
    pub fn new() -> Self {
        Self::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }

    /// A connected hub whose buses carry at most `max_payload` bytes per
    /// message (a small one exercises splitting).
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Hub {
                connected: true,
                max_payload: max_payload.max(1),
                next_handle: 0,
                members: BTreeMap::new(),
            })),
        }
    }

    /// Joins a new server to the hub.
    pub fn open(&self, options: BusOptions) -> (MemoryBus, BusReceiver) {
        let (inbox, receiver) = channel("memory", options.queue);
        let mut hub = self.lock();
        if hub.connected {
            inbox.connected();
        } else {
            inbox.disconnected("the memory hub is down");
        }
        let handle = hub.next_handle;
        hub.next_handle += 1;
        hub.members.insert(
            handle,
            Member {
                server: options.server,
                namespace: options.namespace.clone(),
                inbox: inbox.clone(),
                interest: BTreeSet::new(),
            },
        );
        let bus = MemoryBus {
            hub: self.clone(),
            handle,
            server: options.server,
            namespace: options.namespace,
            max_payload: hub.max_payload,
            inbox,
        };
        (bus, receiver)
    }

    /// Takes the hub down (every bus reports disconnected, publishing
    /// fails, nothing is delivered) or back up (every bus reconnects).
    pub fn set_connected(&self, connected: bool) {
        let mut hub = self.lock();
        if hub.connected == connected {
            return;
        }
        hub.connected = connected;
        for member in hub.members.values() {
            if connected {
                member.inbox.connected();
            } else {
                member.inbox.disconnected("the memory hub is down");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One server's handle on a [`MemoryHub`].
#[derive(Debug)]
pub struct MemoryBus {
    hub: MemoryHub,
    handle: u64,
    server: ServerId,
    namespace: Namespace,
    max_payload: usize,
    inbox: Inbox,
}

#[async_trait]
impl Bus for MemoryBus {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn server(&self) -> ServerId {
        self.server
    }

    fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    fn max_payload(&self) -> usize {
        self.max_payload
    }

    async fn publish(&self, messages: &[(Topic, Bytes)]) -> BusResult<()> {
        self.inbox.admit(messages, self.max_payload)?;
        let hub = self.hub.lock();
        if !hub.connected {
            self.inbox.counters().publish_failed();
            return Err(BusError::unavailable("the memory hub is down"));
        }
        for (topic, payload) in messages {
            self.inbox.counters().published(topic.kind(), payload.len());
            let receivers = hub.members.iter().filter(|(handle, member)| {
                **handle != self.handle
                    && member.namespace == self.namespace
                    && member.receives(*topic)
            });
            for (_, member) in receivers {
                member.inbox.deliver(*topic, payload.clone());
            }
        }
        Ok(())
    }

    async fn set_interest(&self, topics: &[Topic]) -> BusResult<()> {
        if self.inbox.is_closed() {
            return Err(BusError::Closed);
        }
        let mut hub = self.hub.lock();
        if let Some(member) = hub.members.get_mut(&self.handle) {
            member.interest = topics
                .iter()
                .copied()
                .filter(|t| *t != Topic::Fleet)
                .collect();
        }
        Ok(())
    }

    fn status(&self) -> BusStatus {
        self.inbox.status()
    }

    fn counters(&self) -> Vec<BusCounter> {
        self.inbox.counters().snapshot()
    }

    async fn close(&self) -> BusResult<()> {
        self.hub.lock().members.remove(&self.handle);
        self.inbox.close();
        Ok(())
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        self.hub.lock().members.remove(&self.handle);
        self.inbox.close();
    }
}

/// The bus conformance suite against the memory bus (a hub per check; a
/// small `max_payload` so that splitting is exercised with small batches),
/// and what only the memory hub does.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::Harness;
    use crate::{BusEvent, BusReceiver};
    use async_trait::async_trait;

    /// A hub per check; a small `max_payload` so that splitting is exercised
    /// with small batches.
    struct MemoryHarness {
        hub: MemoryHub,
    }

    #[async_trait]
    impl Harness for MemoryHarness {
        async fn open(&self, server: ServerId, queue: usize) -> (Arc<dyn Bus>, BusReceiver) {
            let (bus, rx) = self.hub.open(BusOptions::new(server).queue(queue));
            (Arc::new(bus), rx)
        }

        async fn interrupt(&self) {
            self.hub.set_connected(false);
        }

        async fn restore(&self) {
            self.hub.set_connected(true);
        }
    }

    async fn fresh() -> Option<MemoryHarness> {
        Some(MemoryHarness {
            hub: MemoryHub::with_max_payload(4096),
        })
    }

    crate::bus_conformance_tests!(fresh);

    #[tokio::test]
    async fn namespaces_do_not_mix() {
        let hub = MemoryHub::new();
        let world = |name: &str| Namespace::new(name).expect("valid");
        let (a, _a_rx) = hub.open(BusOptions::new(ServerId::new(1)).namespace(world("one")));
        let (_b, mut b_rx) = hub.open(BusOptions::new(ServerId::new(2)).namespace(world("two")));
        let (_c, mut c_rx) = hub.open(BusOptions::new(ServerId::new(3)).namespace(world("one")));
        a.publish(&[(Topic::Fleet, "x".into())])
            .await
            .expect("publish");
        loop {
            match c_rx.recv().await {
                Some(BusEvent::Message(d)) => break assert_eq!(d.payload, "x"),
                Some(BusEvent::State(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(b_rx.try_recv(), Some(BusEvent::State(s)) if s.connected));
        assert!(b_rx.try_recv().is_none());
        assert_eq!(a.namespace().as_str(), "one");
    }
}
