//! Shared pieces of the benchmarks: concurrent allocators over any store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use spiderpool_core::ipam::{Ipam, Pause};
use spiderpool_core::store::Store;
use spiderpool_testkit::fixtures::{add, put_pool};

/// Jittered exponential backoff, as the CNI plugin uses.
pub struct Backoff(pub u64);

#[async_trait::async_trait]
impl Pause for Backoff {
    async fn pause(&self, attempt: u32) {
        let cap = 2u64.saturating_pow(attempt.min(7)).min(100);
        let jitter = self.0.rotate_left(attempt) % (cap + 1);
        tokio::time::sleep(Duration::from_millis(cap / 2 + jitter)).await;
    }
}

/// `allocators` tasks each allocate `per_allocator` pods from one fresh pool `name` of
/// `store`; returns the wall time. Panics on a duplicate address.
pub async fn concurrent_allocations<S: Store + 'static>(
    store: Arc<S>,
    name: &str,
    allocators: usize,
    per_allocator: usize,
) -> Duration {
    let total = allocators * per_allocator;
    put_pool(
        &*store,
        name,
        &format!(
            "subnet: 10.64.0.0/16\nips: [10.64.0.1-10.64.{}.255]\ndefault: true",
            total / 256 + 1
        ),
    )
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..allocators {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let ipam = Ipam::new(store).with_retries(10_000, Backoff(a as u64 * 0x9E37_79B9));
            let mut ips = Vec::new();
            for i in 0..per_allocator {
                let got = ipam
                    .allocate(&add(
                        "bench",
                        &format!("pod-{a}-{i}"),
                        &format!("u-{a}-{i}"),
                    ))
                    .await
                    .unwrap();
                ips.push(got[0].ipv4.clone().unwrap());
            }
            ips
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "duplicate addresses");
    elapsed
}
