//! The shared conformance suite against a real etcd.
mod common;

spiderpool_testkit::conformance_tests!(common::store().await);
