//! The BlockStore conformance suite against PostgreSQL, a schema per test.

mod common;

world_core::conformance_tests!(common::fresh_dyn);
world_core::history_conformance_tests!(common::fresh_dyn);
