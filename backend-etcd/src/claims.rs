//! The addresses this process's commits add, for
//! [`spiderpool_core::store::Store::in_flight`]: the planners of concurrent allocations pass
//! over them instead of all choosing the same lowest free address.
//!
//! A claim is open from just before its commit is sent. A commit that fails (or whose caller
//! gives up) withdraws it; one that is applied keeps it, with the revision it was applied at,
//! for planners still working from an older read of the pool (a read at that revision or later
//! shows the address anyway). The last [`KEPT`] applied claims are kept.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Applied claims kept for planners working from older reads.
const KEPT: usize = 256;

/// Open and recently applied claims.
#[derive(Default)]
pub(crate) struct Claims {
    next: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Claims by id.
    open: HashMap<u64, Entry>,
    /// Applied claims, oldest first.
    applied: VecDeque<u64>,
}

/// One commit's `(pool, address)` pairs, and the revision it was applied at.
struct Entry {
    adds: Vec<(String, IpAddr)>,
    applied: Option<i64>,
}

/// One commit's claim: withdrawn when dropped unless [`Claim::applied`].
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    id: u64,
}

impl Claims {
    /// Claims `adds` (`(pool, address)`) for a commit about to be sent.
    pub(crate) fn claim(&self, adds: Vec<(String, IpAddr)>) -> Option<Claim<'_>> {
        if adds.is_empty() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().open.insert(
            id,
            Entry {
                adds,
                applied: None,
            },
        );
        Some(Claim { claims: self, id })
    }

    /// The claimed addresses, by pool, sorted, that a read of the pool at the revision `seen`
    /// gives (`None`: not read, so not listed) does not show: those of commits on their way,
    /// and of commits applied after that revision.
    pub(crate) fn unseen(
        &self,
        seen: &dyn Fn(&str) -> Option<i64>,
    ) -> BTreeMap<String, Vec<IpAddr>> {
        let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let state = self.lock();
        for entry in state.open.values() {
            for (pool, addr) in &entry.adds {
                let Some(read) = seen(pool) else { continue };
                if entry.applied.is_none_or(|at| read < at) {
                    out.entry(pool.clone()).or_default().push(*addr);
                }
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
}

impl Claim<'_> {
    /// The commit was applied at `revision`: the claim stays for older reads.
    pub(crate) fn applied(self, revision: i64) {
        let mut state = self.claims.lock();
        if let Some(entry) = state.open.get_mut(&self.id) {
            entry.applied = Some(revision);
            state.applied.push_back(self.id);
        }
        while state.applied.len() > KEPT {
            if let Some(old) = state.applied.pop_front() {
                state.open.remove(&old);
            }
        }
        drop(state);
        std::mem::forget(self);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.claims.lock().open.remove(&self.id);
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
