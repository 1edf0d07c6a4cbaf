//! Leader election through the mock API server: one leader at a time, takeover after expiry,
//! a race for an expired lease won by exactly one, and a graceful hand-over.
#![allow(clippy::unwrap_used)]

use backend_kube::lease::{LeaderElector, Leadership};
use spiderpool_testkit::kube_api::{client, client_with};

const T0: i64 = 1_780_000_000_000_000;
const SECOND: i64 = 1_000_000;

#[tokio::test]
async fn one_leader_renews_and_another_takes_over_after_expiry() {
    let (ca, state) = client();
    let a = LeaderElector::new(ca, "kube-system", "spiderpool-rs-controller", "a", 15);
    let b = LeaderElector::new(
        client_with(state.clone()),
        "kube-system",
        "spiderpool-rs-controller",
        "b",
        15,
    );
    assert_eq!(a.step(T0).await.unwrap(), Leadership::Leading);
    assert_eq!(
        b.step(T0 + SECOND).await.unwrap(),
        Leadership::Following { holder: "a".into() }
    );
    // a renews at 10 s: still leading at 20 s.
    assert_eq!(a.step(T0 + 10 * SECOND).await.unwrap(), Leadership::Leading);
    assert_eq!(
        b.step(T0 + 20 * SECOND).await.unwrap(),
        Leadership::Following { holder: "a".into() }
    );
    // a stops renewing: 15 s after its last renewal b takes over.
    assert_eq!(b.step(T0 + 25 * SECOND).await.unwrap(), Leadership::Leading);
    assert_eq!(
        a.step(T0 + 26 * SECOND).await.unwrap(),
        Leadership::Following { holder: "b".into() }
    );
    let lease = state
        .lock()
        .unwrap()
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("kube-system"),
            "spiderpool-rs-controller",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn a_race_for_an_expired_lease_has_one_winner() {
    let (c0, state) = client();
    let old = LeaderElector::new(c0, "kube-system", "l", "old", 15);
    assert_eq!(old.step(T0).await.unwrap(), Leadership::Leading);
    let later = T0 + 60 * SECOND;
    for round in 0..5 {
        let candidates: Vec<LeaderElector> = (0..4)
            .map(|i| {
                LeaderElector::new(
                    client_with(state.clone()),
                    "kube-system",
                    "l",
                    &format!("c{round}-{i}"),
                    15,
                )
            })
            .collect();
        let at = later + round * 60 * SECOND;
        let results = futures::future::join_all(candidates.iter().map(|c| c.step(at))).await;
        let leaders = results
            .iter()
            .filter(|r| matches!(r, Ok(Leadership::Leading)))
            .count();
        assert_eq!(leaders, 1, "round {round}: {results:?}");
    }
    assert!(
        state.lock().unwrap().conflicts > 0,
        "the candidates never raced"
    );
}

#[tokio::test]
async fn releasing_hands_over_without_waiting_for_expiry() {
    let (ca, state) = client();
    let a = LeaderElector::new(ca, "kube-system", "l", "a", 15);
    let b = LeaderElector::new(client_with(state), "kube-system", "l", "b", 15);
    assert_eq!(a.step(T0).await.unwrap(), Leadership::Leading);
    // Releasing a lease one does not hold changes nothing.
    b.release().await.unwrap();
    assert_eq!(
        b.step(T0 + SECOND).await.unwrap(),
        Leadership::Following { holder: "a".into() }
    );
    a.release().await.unwrap();
    assert_eq!(b.step(T0 + 2 * SECOND).await.unwrap(), Leadership::Leading);
}
