//! The bus conformance suite against NATS, a private `nats-server` per
//! check.

mod common;

bus_core::bus_conformance_tests!(common::fresh);
