//! Group commit: the concurrent requests of one process share etcd round trips.
//!
//! A request is queued; whoever holds the flush lock (the *leader*) takes everything queued,
//! sends it to etcd as one transaction and answers every waiter. Requests that arrive while a
//! transaction is in flight wait for the next one, so a read still reflects every write that
//! completed before it was made (reads stay linearizable), and a commit is never merged with
//! one that was already on its way. There is no background task: the leader is one of the
//! callers, and if it is cancelled mid-flight, the waiters it took learn that the outcome is
//! unknown ([`Batcher::submit`] answers `None`).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;

use etcd_client::{Compare, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use tokio::sync::oneshot::{self, error::TryRecvError};

/// A queue of requests `Q` answered with `A`, flushed by one caller at a time.
pub(crate) struct Batcher<Q, A> {
    queue: Mutex<Vec<(Q, oneshot::Sender<A>)>>,
    flush: tokio::sync::Mutex<()>,
}

impl<Q, A> Default for Batcher<Q, A> {
    fn default() -> Self {
        Batcher {
            queue: Mutex::new(Vec::new()),
            flush: tokio::sync::Mutex::new(()),
        }
    }
}

impl<Q: Send, A: Send> Batcher<Q, A> {
    /// Queues `q` and waits for its answer; `run` flushes a batch (it takes what it sends out
    /// of the vector it is given and must answer or drop every sender it takes; what it leaves
    /// is queued again, in front). `None` when the leader that took `q` was cancelled.
    pub(crate) async fn submit<F, Fut>(&self, q: Q, run: F) -> Option<A>
    where
        F: Fn(Vec<(Q, oneshot::Sender<A>)>) -> Fut,
        Fut: Future<Output = Vec<(Q, oneshot::Sender<A>)>>,
    {
        let (tx, mut rx) = oneshot::channel();
        self.lock_queue().push((q, tx));
        loop {
            tokio::select! {
                biased;
                answer = &mut rx => return answer.ok(),
                guard = self.flush.lock() => {
                    match rx.try_recv() {
                        Ok(a) => return Some(a),
                        Err(TryRecvError::Closed) => return None,
                        Err(TryRecvError::Empty) => {}
                    }
                    // Let the tasks woken together with this one (by the answers of the last
                    // batch) queue their requests first, so that they share this round trip
                    // rather than wait for the next.
                    tokio::task::yield_now().await;
                    let batch = std::mem::take(&mut *self.lock_queue());
                    let left = run(batch).await;
                    if !left.is_empty() {
                        let mut queue = self.lock_queue();
                        let newer = std::mem::replace(&mut *queue, left);
                        queue.extend(newer);
                    }
                    drop(guard);
                    match rx.try_recv() {
                        Ok(a) => return Some(a),
                        Err(TryRecvError::Closed) => return None,
                        Err(TryRecvError::Empty) => {}
                    }
                }
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(Q, oneshot::Sender<A>)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ranges read together, at one revision: `(key, whole prefix)`.
pub(crate) type ReadQ = Vec<(String, bool)>;
/// The key-values of each range, in order.
pub(crate) type ReadA = Result<Vec<Vec<KeyValue>>, spiderpool_core::Error>;

/// Distinct ranges in one read transaction (etcd's default `--max-txn-ops` is 128).
const MAX_READ_RANGES: usize = 120;

/// Sends the queued reads (up to [`MAX_READ_RANGES`] distinct ranges) as one read-only
/// transaction; returns the requests left for the next one.
pub(crate) async fn flush_reads(
    client: &etcd_client::Client,
    mut batch: Vec<(ReadQ, oneshot::Sender<ReadA>)>,
) -> Vec<(ReadQ, oneshot::Sender<ReadA>)> {
    let mut index: HashMap<(String, bool), usize> = HashMap::new();
    let mut ops = Vec::new();
    let mut take = 0;
    for (q, _) in &batch {
        let new = q.iter().filter(|r| !index.contains_key(*r)).count();
        if take > 0 && index.len() + new > MAX_READ_RANGES {
            break;
        }
        for r in q {
            index.entry(r.clone()).or_insert_with(|| {
                ops.push(TxnOp::get(
                    r.0.as_str(),
                    r.1.then(|| GetOptions::new().with_prefix()),
                ));
                ops.len() - 1
            });
        }
        take += 1;
    }
    let left = batch.split_off(take);
    let answer = client
        .kv_client()
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(crate::request);
    let ranges: Result<Vec<Vec<KeyValue>>, _> = answer.map(|resp| {
        resp.op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().to_vec(),
                _ => Vec::new(),
            })
            .collect()
    });
    for (q, tx) in batch {
        let a = match &ranges {
            Ok(all) => Ok(q
                .iter()
                .map(|r| index.get(r).and_then(|&i| all.get(i)).cloned())
                .map(Option::unwrap_or_default)
                .collect()),
            Err(e) => Err(e.clone()),
        };
        let _ = tx.send(a);
    }
    left
}

/// One transaction of a plan: its compares, its operations, and what to read if it fails.
pub(crate) struct CommitQ {
    pub(crate) cmps: Vec<Compare>,
    pub(crate) ops: Vec<TxnOp>,
    /// Gets run when a compare fails, to explain why.
    pub(crate) on_failure: Vec<TxnOp>,
    /// Keys it puts or deletes (etcd refuses a transaction that writes a key twice).
    pub(crate) writes: BTreeSet<String>,
    /// Approximate size of the request in bytes.
    pub(crate) bytes: usize,
    /// Sent in a transaction of its own (prefix deletes, big plans).
    pub(crate) alone: bool,
}

/// How a queued transaction ended.
pub(crate) enum CommitA {
    /// Applied at this store revision.
    Applied(i64),
    /// A compare failed; the answers of `on_failure`.
    Failed(Vec<TxnOpResponse>),
    /// Another transaction of the same batch writes one of its keys first: it would fail its
    /// compares if that one is applied (a conflict), and etcd refuses both in one request.
    Overlap,
    /// The request failed.
    Error(spiderpool_core::Error),
}

/// Transactions merged into one request (each stays all-or-nothing on its own compares).
const MAX_COMMITS: usize = 64;
/// Bytes merged into one request (etcd's default `--max-request-bytes` is 1.5 MiB).
const MAX_COMMIT_BYTES: usize = 1 << 20;

/// Sends queued transactions: one alone as it is, several as nested transactions of one
/// request, so that they cost one round trip and one raft entry (one fsync) together.
pub(crate) async fn flush_commits(
    client: &etcd_client::Client,
    batch: Vec<(CommitQ, oneshot::Sender<CommitA>)>,
) -> Vec<(CommitQ, oneshot::Sender<CommitA>)> {
    let mut chosen: Vec<(CommitQ, oneshot::Sender<CommitA>)> = Vec::new();
    let mut left = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut bytes = 0;
    for (q, tx) in batch {
        let full = chosen.len() >= MAX_COMMITS
            || (!chosen.is_empty() && bytes + q.bytes > MAX_COMMIT_BYTES)
            || chosen.first().is_some_and(|(c, _)| c.alone)
            || (!chosen.is_empty() && q.alone);
        if full {
            left.push((q, tx));
        } else if q.writes.iter().any(|k| written.contains(k)) {
            let _ = tx.send(CommitA::Overlap);
        } else {
            written.extend(q.writes.iter().cloned());
            bytes += q.bytes;
            chosen.push((q, tx));
        }
    }
    if chosen.len() <= 1 {
        let Some((q, tx)) = chosen.pop() else {
            return left;
        };
        let answer = client
            .kv_client()
            .txn(
                Txn::new()
                    .when(q.cmps)
                    .and_then(q.ops)
                    .or_else(q.on_failure),
            )
            .await;
        let _ = tx.send(match answer {
            Ok(r) if r.succeeded() => CommitA::Applied(revision(&r)),
            Ok(r) => CommitA::Failed(r.op_responses()),
            Err(e) => CommitA::Error(crate::request(e)),
        });
        return left;
    }
    let (queries, senders): (Vec<CommitQ>, Vec<_>) = chosen.into_iter().unzip();
    let nested: Vec<TxnOp> = queries
        .into_iter()
        .map(|q| {
            TxnOp::txn(
                Txn::new()
                    .when(q.cmps)
                    .and_then(q.ops)
                    .or_else(q.on_failure),
            )
        })
        .collect();
    match client.kv_client().txn(Txn::new().and_then(nested)).await {
        Ok(r) => {
            let rev = revision(&r);
            let mut answers = r.op_responses().into_iter();
            for tx in senders {
                let _ = tx.send(match answers.next() {
                    Some(TxnOpResponse::Txn(t)) if t.succeeded() => CommitA::Applied(rev),
                    Some(TxnOpResponse::Txn(t)) => CommitA::Failed(t.op_responses()),
                    _ => CommitA::Error(spiderpool_core::Error::Unavailable {
                        reason: "etcd answered a batched transaction without its result".into(),
                    }),
                });
            }
        }
        Err(e) => {
            let e = crate::request(e);
            for tx in senders {
                let _ = tx.send(CommitA::Error(e.clone()));
            }
        }
    }
    left
}

fn revision(r: &etcd_client::TxnResponse) -> i64 {
    r.header().map(|h| h.revision()).unwrap_or(0)
}
