//! Which accepted sockets go on to the game loop.
//!
//! Every socket takes a slot before its connection task starts: there are
//! `max_players + limits.connection_margin` of them, so a flood of
//! connections costs a refused socket each, not a task, buffers and a
//! player. The margin lets the game loop tell players past `max_players`
//! that the server is full, and covers the sockets of players who just
//! left. At most `limits.max_connections_per_ip` sockets come from one
//! address. A refused socket gets one `T` line saying why (if its send
//! buffer takes it at once) and is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// Told to a player when the server has no room.
pub const FULL_MESSAGE: &str = "The server is full; try again later.";
/// Told to a connection over the per-address limit.
pub const PER_IP_MESSAGE: &str = "Too many connections from your address; try again later.";

/// Why a socket was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    AcceptLimit,
    /// Its address has `limits.max_connections_per_ip` sockets already.
    PerIp,
}

impl Refusal {
    /// The `reason` label of `craft_connections_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::AcceptLimit => "accept_limit",
            Refusal::PerIp => "per_ip",
        }
    }

    /// The `T` line text for the client.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AcceptLimit => FULL_MESSAGE,
            Refusal::PerIp => PER_IP_MESSAGE,
        }
    }
}

type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The slots and the per-address counts.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    per_ip_limit: usize,
    per_ip: PerIp,
}

/// A connection's slot, given back when it is dropped (its task ends).
#[derive(Debug)]
pub struct Ticket {
    _slot: OwnedSemaphorePermit,
    ip: Option<(IpAddr, PerIp)>,
}

impl Admission {
    /// Slots for `config`.
    pub fn new(config: &Config) -> Self {
        let slots = config
            .max_players
            .saturating_add(config.limits.connection_margin)
            .min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            per_ip_limit: config.limits.max_connections_per_ip,
            per_ip: PerIp::default(),
        }
    }

    /// A slot for a socket from `ip`, or why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Ticket, Refusal> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::AcceptLimit)?;
        if self.per_ip_limit == 0 {
            return Ok(Ticket {
                _slot: slot,
                ip: None,
            });
        }
        let mut counts = lock(&self.per_ip);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.per_ip_limit {
            return Err(Refusal::PerIp);
        }
        *count += 1;
        Ok(Ticket {
            _slot: slot,
            ip: Some((ip, self.per_ip.clone())),
        })
    }
}

fn lock(per_ip: &PerIp) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    // Plain counts: a panic elsewhere cannot leave them inconsistent.
    per_ip.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((ip, per_ip)) = self.ip.take() {
            let mut counts = lock(&per_ip);
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// Tells a refused socket why, if that does not have to wait, and closes it.
pub fn refuse(stream: tokio::net::TcpStream, refusal: Refusal) {
    let line = format!("T,{}\n", refusal.message());
    let _ = stream.try_write(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_players: usize, margin: usize, per_ip: usize) -> Config {
        let mut c = Config {
            max_players,
            ..Config::default()
        };
        c.limits.connection_margin = margin;
        c.limits.max_connections_per_ip = per_ip;
        c
    }

    #[test]
    fn slots_are_max_players_plus_the_margin_and_come_back() {
        let admission = Admission::new(&config(2, 1, 0));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let tickets: Vec<Ticket> = (0..3).map(|_| admission.admit(ip).expect("slot")).collect();
        assert_eq!(admission.admit(ip).err(), Some(Refusal::AcceptLimit));
        drop(tickets);
        assert!(admission.admit(ip).is_ok());
    }

    #[test]
    fn one_address_has_its_own_limit() {
        let admission = Admission::new(&config(100, 0, 2));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let first = admission.admit(a).expect("first");
        let _second = admission.admit(a).expect("second");
        assert_eq!(admission.admit(a).err(), Some(Refusal::PerIp));
        assert!(admission.admit(b).is_ok(), "another address");
        drop(first);
        assert!(admission.admit(a).is_ok(), "a slot came back");
    }
}
