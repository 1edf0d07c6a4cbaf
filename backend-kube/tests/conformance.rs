//! The shared conformance suite through kube-rs against the mock API server.
mod common;

spiderpool_testkit::conformance_tests!(common::store());
