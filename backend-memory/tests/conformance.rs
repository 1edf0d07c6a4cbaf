//! The shared conformance suite, on an atomic and on a write-by-write memory store.

mod atomic {
    spiderpool_testkit::conformance_tests!(backend_memory::MemoryStore::new());
}

mod write_by_write {
    spiderpool_testkit::conformance_tests!(backend_memory::MemoryStore::non_atomic());
}
