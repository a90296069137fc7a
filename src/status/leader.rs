//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one
//! replica writes Ingress status. Every replica serves traffic; leadership only
//! gates status writes.
//!
//! The usual client-go protocol: the holder renews `renewTime` every
//! `retry_period`; another replica takes the Lease over only once
//! `renewTime + leaseDurationSeconds` has passed; every write carries the
//! Lease's `resourceVersion`, so two replicas racing for an expired Lease
//! cannot both win (the loser gets 409 Conflict). A leader that cannot renew
//! within `renew_deadline` steps down at once, before its Lease can expire for
//! the others: two replicas never write status at the same time.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

/// Where the Lease is and who we are.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's namespace (the controller's own).
    pub namespace: String,
    /// The Lease's name (`--election-id`).
    pub name: String,
    /// This replica's identity, the Lease's `holderIdentity` while it leads:
    /// unique per process (see [`unique_identity`]), never just a pod or host
    /// name two processes could share.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often the leader renews and the others retry.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults (15 s lease, 10 s renew deadline, 2 s retry).
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// This process's identity in the leader election, `<name>_<suffix>`: the
/// name is `POD_NAME` (set from the downward API in deploy/), else the host
/// name, else `sluice-<pid>`; the suffix is 16 random hex digits (64 bits
/// from `rand`'s thread-local generator, a CSPRNG seeded by the operating
/// system). Each call draws a new suffix: call it once per process.
///
/// The name alone is not unique: two sluice processes on one host without
/// `POD_NAME` would share the host name, both see themselves as the Lease's
/// holder, and both write status. client-go's users add a UUID for the same
/// reason. The cost: a restarted process is a new candidate and does not
/// resume its predecessor's Lease, which a graceful stop releases and a crash
/// leaves to lapse.
pub fn unique_identity() -> String {
    let name = std::env::var("POD_NAME")
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("sluice-{}", std::process::id()));
    with_random_suffix(&name)
}

/// `name` plus `_` and 16 random hex digits.
fn with_random_suffix(name: &str) -> String {
    format!("{name}_{:016x}", rand::random::<u64>())
}

/// What one attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease (created, renewed or taken over).
    Held,
    /// Someone else holds a valid Lease.
    Other,
}

/// Runs the election until `stop` fires, publishing leadership on `leading`.
/// Never returns an error: API failures are logged and retried; a leader that
/// cannot renew in time publishes `false` before its Lease can lapse.
pub async fn run_election(
    client: Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    tracing::info!(identity = %settings.identity, lease = %settings.name, namespace = %settings.namespace, "leader election: running for the lease");
    let mut last_renewed: Option<tokio::time::Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &settings).await {
            Ok(Attempt::Held) => {
                last_renewed = Some(tokio::time::Instant::now());
                if !*leading.borrow() {
                    tracing::info!(identity = %settings.identity, lease = %settings.name, "became the leader; writing Ingress status");
                }
                leading.send_replace(true);
            }
            Ok(Attempt::Other) => {
                last_renewed = None;
                step_down(&leading, &settings, "another replica holds the lease");
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %settings.name, "leader election: lease request failed");
                let lapsed = last_renewed.is_none_or(|at| at.elapsed() >= settings.renew_deadline);
                if lapsed {
                    step_down(&leading, &settings, "could not renew the lease in time");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(settings.retry_period) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if *leading.borrow() {
        // Give the Lease up so another replica takes over without waiting.
        let _ = release(&api, &settings).await;
    }
    leading.send_replace(false);
}

fn step_down(leading: &watch::Sender<bool>, settings: &LeaseSettings, why: &str) {
    if *leading.borrow() {
        tracing::warn!(identity = %settings.identity, why, "stopped being the leader; no more status writes");
    }
    leading.send_replace(false);
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    settings: &LeaseSettings,
) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    let Some(current) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                namespace: Some(settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec(settings, now, now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            // Someone created it first.
            Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                Ok(Attempt::Other)
            }
            Err(e) => Err(e),
        };
    };
    let spec_now = current.spec.clone().unwrap_or_default();
    let holder = spec_now.holder_identity.as_deref().unwrap_or("");
    let ours = holder == settings.identity;
    if !ours && !holder.is_empty() && !expired(&spec_now, now, settings) {
        return Ok(Attempt::Other);
    }
    let transitions = spec_now.lease_transitions.unwrap_or(0);
    let (acquired, transitions) = if ours {
        let acquired = spec_now.acquire_time.as_ref().map_or(now, |t| t.0);
        (acquired, transitions)
    } else {
        (now, transitions.saturating_add(1))
    };
    let mut next = current;
    next.spec = Some(spec(settings, acquired, now, transitions));
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    match api
        .replace(&settings.name, &PostParams::default(), &next)
        .await
    {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Attempt::Other),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<(), kube::Error> {
    let Some(mut current) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let spec = current.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&settings.name, &PostParams::default(), &current)
        .await
        .map(|_| ())
}

fn spec(
    settings: &LeaseSettings,
    acquired: Timestamp,
    renewed: Timestamp,
    transitions: i32,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(
            i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX),
        ),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(renewed)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Whether the holder's Lease has lapsed at `now`.
fn expired(spec: &LeaseSpec, now: Timestamp, settings: &LeaseSettings) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = spec
        .lease_duration_seconds
        .map_or(settings.lease_duration.as_secs(), |s| {
            u64::try_from(s).unwrap_or(0)
        });
    let lapses_at_ms = renewed
        .as_millisecond()
        .saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX));
    now.as_millisecond() >= lapses_at_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings::new("sluice".into(), "sluice-leader".into(), "a".into())
    }

    #[test]
    fn a_lease_lapses_after_its_duration() {
        let s = settings();
        let renewed = Timestamp::from_second(1_000).unwrap();
        let spec = LeaseSpec {
            holder_identity: Some("b".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec, Timestamp::from_second(1_014).unwrap(), &s));
        assert!(expired(&spec, Timestamp::from_second(1_015).unwrap(), &s));
        let never_renewed = LeaseSpec {
            holder_identity: Some("b".into()),
            ..LeaseSpec::default()
        };
        assert!(expired(&never_renewed, renewed, &s));
    }

    #[test]
    fn identities_keep_the_name_and_differ_per_call() {
        let a = with_random_suffix("node-1");
        let b = with_random_suffix("node-1");
        assert_ne!(a, b);
        for id in [&a, &b] {
            let suffix = id.strip_prefix("node-1_").expect("the name, then _");
            assert_eq!(suffix.len(), 16, "{id}");
            assert!(suffix.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
    }
}
