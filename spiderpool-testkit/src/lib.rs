//! The conformance suite every spiderpool-rs store runs, and fixtures for tests.
//!
//! A backend runs the whole suite with one line in a test file:
//!
//! ```text
//! spiderpool_testkit::conformance_tests!(backend_memory::MemoryStore::new());
//! ```
//!
//! which expands to one `#[tokio::test]` per scenario, each on a fresh store built by the
//! expression. Scenarios cover the store primitives (CRUD, compare-and-swap, atomic commits,
//! the change feed when offered) and the allocation behaviour of [`spiderpool_core::ipam`]
//! (selection, reserved IPs, stateless and stateful ownership, idempotence, dual-stack and
//! multi-NIC all-or-nothing, concurrent allocators). After every allocation scenario the
//! store's invariants are checked with [`check_invariants`].
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::panic)]

pub mod etcd;
pub mod fixtures;
pub mod invariants;
pub mod kube_api;
pub mod scenarios;

pub use invariants::check_invariants;

/// Expands to one `#[tokio::test]` per conformance scenario, each run on a fresh store made by
/// `$make` (an expression evaluated once per test).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@tests $make;
            crud_create_get_list_delete,
            crud_create_twice_is_already_exists,
            crud_stale_update_and_delete_conflict,
            crud_missing_objects_are_not_found,
            crud_commit_is_all_or_nothing_when_atomic,
            crud_change_feed_when_offered,
            alloc_lowest_free_and_reuse_after_release,
            alloc_reserved_ips_seed_003,
            alloc_reserved_ips_outside_the_subnet,
            alloc_idempotent_add_and_del,
            alloc_stateless_new_uid_gets_fresh_ip,
            alloc_stateful_keeps_ip_across_restarts,
            alloc_stateful_lost_record_is_not_retaken_when_reserved,
            alloc_stateful_released_when_scaled_down_or_owner_gone,
            alloc_kubevirt_vm_keeps_ip,
            alloc_dual_stack_all_or_nothing,
            alloc_multi_nic_from_one_pool,
            alloc_precedence_of_sources,
            alloc_filters_explain_themselves,
            alloc_wildcards_and_priority_keep_written_order,
            alloc_bad_annotations_are_wrong_input,
            alloc_concurrent_allocators_get_distinct_ips,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::scenarios::$name(::std::sync::Arc::new($make)).await;
            }
        )*
    };
}
