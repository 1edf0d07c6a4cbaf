//! The addresses this process's commits add, for
//! [`spiderpool_core::store::Store::in_flight`]: the planners of concurrent allocations pass
//! over them instead of all choosing the same lowest free address.
//!
//! A claim is open from just before its commit is sent. A commit that fails (or whose caller
//! gives up) withdraws it; one that is applied keeps it, with the revision it was applied at,
//! for planners still working from an older read of the pool (a read at that revision or later
//! shows the address anyway). The last [`KEPT`] applied addresses are kept (over all pools: a
//! busy pool may push another's out early). A commit whose outcome is unknown (the request
//! failed, the caller gave up) withdraws its claim though it may have been applied: a hint
//! lost costs at most a conflict, never a duplicate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Applied addresses kept (over all pools) for planners working from older reads.
const KEPT: usize = 256;

/// Open and recently applied claims.
#[derive(Default)]
pub(crate) struct Claims {
    next: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Addresses of commits on their way by pool, with the claim's id.
    open: HashMap<String, Vec<(u64, IpAddr)>>,
    /// Addresses of applied commits with the revision they were applied at, oldest first.
    applied: VecDeque<(String, i64, IpAddr)>,
}

/// One commit's claim: withdrawn when dropped unless [`Claim::applied`].
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    id: u64,
    adds: Vec<(String, IpAddr)>,
}

impl Claims {
    /// Claims `adds` (`(pool, address)`) for a commit about to be sent.
    pub(crate) fn claim(&self, adds: Vec<(String, IpAddr)>) -> Option<Claim<'_>> {
        if adds.is_empty() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        for (pool, addr) in &adds {
            state
                .open
                .entry(pool.clone())
                .or_default()
                .push((id, *addr));
        }
        drop(state);
        Some(Claim {
            claims: self,
            id,
            adds,
        })
    }

    /// The claimed addresses, by pool, sorted, that a read of the pool at the revision `seen`
    /// gives (`None`: not read, so not listed) does not show: those of commits on their way,
    /// and of commits applied after that revision.
    pub(crate) fn unseen(
        &self,
        seen: &dyn Fn(&str) -> Option<i64>,
    ) -> BTreeMap<String, Vec<IpAddr>> {
        // The pools claimed in, each asked about once, outside the lock (`seen` is the
        // caller's code).
        let mut pools: Vec<String> = Vec::new();
        {
            let state = self.lock();
            let names = state
                .open
                .keys()
                .chain(state.applied.iter().map(|(pool, _, _)| pool));
            for name in names {
                if !pools.contains(name) {
                    pools.push(name.clone());
                }
            }
        }
        let reads: Vec<(String, i64)> = pools
            .into_iter()
            .filter_map(|pool| seen(&pool).map(|r| (pool, r)))
            .collect();
        let read_of = |pool: &str| reads.iter().find(|(p, _)| p == pool).map(|(_, r)| *r);
        let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let state = self.lock();
        for (pool, open) in &state.open {
            if read_of(pool).is_some() {
                out.entry(pool.clone())
                    .or_default()
                    .extend(open.iter().map(|(_, a)| *a));
            }
        }
        for (pool, at, addr) in &state.applied {
            if read_of(pool).is_some_and(|read| read < *at) {
                out.entry(pool.clone()).or_default().push(*addr);
            }
        }
        drop(state);
        for addrs in out.values_mut() {
            addrs.sort_unstable();
            addrs.dedup();
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes claim `id`'s addresses out of the open ones; with `applied`, keeps them as
    /// applied at that revision.
    fn settle(&self, id: u64, adds: Vec<(String, IpAddr)>, applied: Option<i64>) {
        let mut state = self.lock();
        for (pool, addr) in adds {
            if let Some(open) = state.open.get_mut(&pool) {
                open.retain(|(i, _)| *i != id);
                if open.is_empty() {
                    state.open.remove(&pool);
                }
            }
            if let Some(revision) = applied {
                state.applied.push_back((pool, revision, addr));
                if state.applied.len() > KEPT {
                    state.applied.pop_front();
                }
            }
        }
    }
}

impl Claim<'_> {
    /// The commit was applied at `revision`: the claim stays for older reads.
    pub(crate) fn applied(mut self, revision: i64) {
        let adds = std::mem::take(&mut self.adds);
        self.claims.settle(self.id, adds, Some(revision));
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.adds.is_empty() {
            let adds = std::mem::take(&mut self.adds);
            self.claims.settle(self.id, adds, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_claim_is_listed_until_its_commit_fails_or_a_read_shows_it() {
        let claims = Claims::default();
        let read_at = |rev: i64| move |pool: &str| (pool == "p").then_some(rev);
        let first = claims.claim(vec![("p".into(), ip("10.0.0.1"))]).unwrap();
        let second = claims.claim(vec![("p".into(), ip("10.0.0.2"))]).unwrap();
        let both = BTreeMap::from([("p".to_string(), vec![ip("10.0.0.1"), ip("10.0.0.2")])]);
        assert_eq!(claims.unseen(&read_at(5)), both);
        // A pool not read: nothing to avoid in it.
        assert!(claims.unseen(&|_| None).is_empty());
        // Failed: withdrawn at once.
        drop(first);
        let second_only = BTreeMap::from([("p".to_string(), vec![ip("10.0.0.2")])]);
        assert_eq!(claims.unseen(&read_at(5)), second_only);
        // Applied at 7: still news to a read at 6, not to one at 7.
        second.applied(7);
        assert_eq!(claims.unseen(&read_at(6)), second_only);
        assert!(claims.unseen(&read_at(7)).is_empty());
        assert!(claims.claim(Vec::new()).is_none());
    }

    #[test]
    fn only_the_latest_applied_claims_are_kept() {
        let claims = Claims::default();
        for i in 0..(KEPT as u32 + 10) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            claims.claim(vec![("p".into(), addr)]).unwrap().applied(100);
        }
        let listed = claims.unseen(&|_| Some(0));
        assert_eq!(listed["p"].len(), KEPT);
        assert_eq!(listed["p"][0], ip("10.0.0.10"));
    }
}
