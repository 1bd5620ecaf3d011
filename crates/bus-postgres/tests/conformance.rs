//! The bus conformance suite against PostgreSQL, a role and a namespace
//! per check.

mod common;

bus_core::bus_conformance_tests!(common::fresh);
