//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the holder renews `renewTime` before `leaseDurationSeconds` runs out; anyone may take an
//! expired lease. Every write carries the Lease's resourceVersion, so of two candidates
//! racing for the same expired lease exactly one wins (the other gets a 409).
//!
//! [`decide`] is the pure rule; [`LeaderElector::step`] reads, decides and writes once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use spiderpool_core::Error;

/// What a candidate does with the lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It holds the lease: renew it.
    Renew,
    /// The lease is free or expired: take it.
    Take,
    /// Someone else holds a live lease.
    Wait {
        /// The holder's identity.
        holder: String,
    },
}

/// The outcome of one election step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This candidate leads until the lease it just wrote expires.
    Leading,
    /// Another candidate leads (or won the race this step).
    Following {
        /// Who holds the lease, as far as this step saw.
        holder: String,
    },
}

/// The rule: renew my own lease, take a free or expired one, otherwise wait. `now_us` is the
/// current time in microseconds since the Unix epoch.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now_us: i64) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_microsecond());
    let duration_us = i64::from(spec.lease_duration_seconds.unwrap_or(0)).saturating_mul(1_000_000);
    match renewed {
        Some(at) if now_us < at.saturating_add(duration_us) => Decision::Wait { holder },
        _ => Decision::Take,
    }
}

/// One candidate for leadership.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_seconds: i32,
}

fn micro_time(now_us: i64) -> Result<MicroTime, Error> {
    k8s_openapi::jiff::Timestamp::from_microsecond(now_us)
        .map(MicroTime)
        .map_err(|e| Error::Unavailable {
            reason: format!("clock reading {now_us} µs is not a time: {e}"),
        })
}

fn lease_error(name: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict {
            key: format!("Lease {name}"),
            expected: String::new(),
        },
        e => Error::Unavailable {
            reason: format!("Lease {name}: {e}"),
        },
    }
}

impl LeaderElector {
    /// A candidate `identity` for Lease `namespace/name`, leading for `duration_seconds` after
    /// each renewal.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration_seconds: i32,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration_seconds,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Reads the lease, decides, and takes or renews it (one write at most). Losing a race
    /// (409) is following, not an error.
    pub async fn step(&self, now_us: i64) -> Result<Leadership, Error> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| lease_error(&self.name, e))?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, now_us);
        let holder_now = || {
            spec.and_then(|s| s.holder_identity.clone())
                .unwrap_or_default()
        };
        let now = micro_time(now_us)?;
        let result = match (&decision, current.clone()) {
            (Decision::Wait { holder }, _) => {
                return Ok(Leadership::Following {
                    holder: holder.clone(),
                })
            }
            (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.duration_seconds),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (_, Some(mut lease)) => {
                let mut spec = lease.spec.take().unwrap_or_default();
                if decision == Decision::Take {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(self.duration_seconds);
                spec.renew_time = Some(now);
                lease.spec = Some(spec);
                // `lease` carries the resourceVersion read: a concurrent write makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(Leadership::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Leadership::Following {
                holder: holder_now(),
            }),
            Err(e) => Err(lease_error(&self.name, e)),
        }
    }

    /// Gives the lease up if this candidate holds it (on shutdown), so that another takes
    /// over without waiting for it to expire.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| lease_error(&self.name, e))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| lease_error(&self.name, e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_us: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(micro_time(renewed_us).unwrap()),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn renew_own_take_free_or_expired_wait_otherwise() {
        let s = 1_000_000_000_000i64;
        assert_eq!(decide(None, "a", s), Decision::Take);
        assert_eq!(decide(Some(&spec("a", s, 15)), "a", s), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("b", s, 15)), "a", s + 14_999_999),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&spec("b", s, 15)), "a", s + 15_000_000),
            Decision::Take
        );
        assert_eq!(decide(Some(&spec("", s, 15)), "a", s), Decision::Take);
        assert_eq!(decide(Some(&LeaseSpec::default()), "a", s), Decision::Take);
    }
}
