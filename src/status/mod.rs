//! Ingress status: the address sluice is reachable at, written into
//! `status.loadBalancer.ingress` of every Ingress it serves, by the elected
//! leader only ([`leader`]).
//!
//! The address comes from `--publish-status-address` (fixed), or from the
//! `--publish-service` Service: its load-balancer ingress, else its external
//! IPs, else its ExternalName, else its cluster IP (ingress-nginx's order).
//! Writes are merge patches of the status subresource, sent only when the
//! value differs from what the Ingress shows and from what was last written;
//! Ingresses of other classes are never touched.

pub mod gateway;
pub mod leader;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::router::{served_ingresses, CompileOptions};
use crate::watch::ProviderUpdate;

pub use gateway::GatewayPorts;
pub use leader::{run_election, unique_identity, LeaseSettings};

/// Where the published address comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSettings {
    /// `--publish-service ns/name`.
    pub publish_service: Option<(String, String)>,
    /// `--publish-status-address a,b` (wins over the Service).
    pub publish_addresses: Vec<String>,
    /// How often the Service's address is looked at again.
    pub refresh: Duration,
}

impl StatusSettings {
    /// Whether there is anything to publish at all.
    pub fn enabled(&self) -> bool {
        self.publish_service.is_some() || !self.publish_addresses.is_empty()
    }
}

/// Turns addresses (IPs or host names) into status entries.
pub fn entries(addresses: &[String]) -> Vec<IngressLoadBalancerIngress> {
    let mut out: Vec<IngressLoadBalancerIngress> = addresses
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.parse::<IpAddr>().is_ok() {
                IngressLoadBalancerIngress {
                    ip: Some(a.to_owned()),
                    ..IngressLoadBalancerIngress::default()
                }
            } else {
                IngressLoadBalancerIngress {
                    hostname: Some(a.to_owned()),
                    ..IngressLoadBalancerIngress::default()
                }
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    out.dedup();
    out
}

/// The addresses a Service makes sluice reachable at (ingress-nginx's order).
pub fn service_addresses(service: &Service) -> Vec<String> {
    let lb: Vec<String> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect()
        })
        .unwrap_or_default();
    if !lb.is_empty() {
        return lb;
    }
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if let Some(external) = spec.external_ips.as_ref().filter(|e| !e.is_empty()) {
        return external.clone();
    }
    if let Some(name) = spec.external_name.as_ref().filter(|n| !n.is_empty()) {
        return vec![name.clone()];
    }
    spec.cluster_ip
        .iter()
        .filter(|ip| !ip.is_empty() && ip.as_str() != "None")
        .cloned()
        .collect()
}

/// Keeps the status of served Ingresses pointing at sluice, and sluice's part
/// of the Gateway API objects' status ([`gateway`]) up to date, while `leading`.
pub async fn run_status_writer(
    client: Client,
    settings: StatusSettings,
    options: CompileOptions,
    ports: GatewayPorts,
    mut updates: watch::Receiver<Option<Arc<ProviderUpdate>>>,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut written: HashMap<(String, String), Vec<IngressLoadBalancerIngress>> = HashMap::new();
    let mut gateways = gateway::GatewayStatusState::default();
    loop {
        if *leading.borrow() {
            let update = updates.borrow().clone();
            if let Some(update) = update {
                // Without --publish-service / --publish-status-address no
                // Ingress address is written (nor cleared); Gateway API
                // status is written either way.
                let want = if settings.enabled() {
                    desired(&client, &settings).await.map(Some)
                } else {
                    Ok(None)
                };
                match want {
                    Ok(want) => {
                        if let Some(want) = &want {
                            write_all(&client, &options, &update, want, &leading, &mut written)
                                .await;
                        }
                        let addresses = want
                            .iter()
                            .flatten()
                            .filter_map(|a| a.ip.clone().or_else(|| a.hostname.clone()))
                            .collect();
                        gateway::write_gateway_status(
                            &client,
                            &update.snapshot,
                            ports,
                            addresses,
                            settings.refresh,
                            &leading,
                            &mut gateways,
                        )
                        .await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "status: reading the publish Service failed")
                    }
                }
            }
        } else {
            // A new leader may have written something else: re-check everything.
            written.clear();
            gateways.clear();
        }
        tokio::select! {
            r = updates.changed() => if r.is_err() { break },
            r = leading.changed() => if r.is_err() { break },
            () = tokio::time::sleep(settings.refresh) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

async fn desired(
    client: &Client,
    settings: &StatusSettings,
) -> Result<Vec<IngressLoadBalancerIngress>, kube::Error> {
    if !settings.publish_addresses.is_empty() {
        return Ok(entries(&settings.publish_addresses));
    }
    let Some((ns, name)) = &settings.publish_service else {
        return Ok(Vec::new());
    };
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(entries(&service_addresses(&service)))
}

async fn write_all(
    client: &Client,
    options: &CompileOptions,
    update: &ProviderUpdate,
    want: &[IngressLoadBalancerIngress],
    leading: &watch::Receiver<bool>,
    written: &mut HashMap<(String, String), Vec<IngressLoadBalancerIngress>>,
) {
    for ingress in served_ingresses(&update.snapshot, options) {
        // Losing the lease stops writing at once, even mid-pass.
        if !*leading.borrow() {
            return;
        }
        let Some(name) = ingress.metadata.name.clone() else {
            continue;
        };
        let ns = ingress
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let key = (ns, name);
        if current(ingress) == want || written.get(&key).is_some_and(|w| w == want) {
            continue;
        }
        match patch(client, &key.0, &key.1, want).await {
            Ok(()) => {
                tracing::info!(namespace = %key.0, ingress = %key.1, "status: published the load-balancer address");
                written.insert(key, want.to_vec());
            }
            Err(e) => {
                tracing::warn!(namespace = %key.0, ingress = %key.1, error = %e, "status: patch failed; will retry")
            }
        }
    }
}

fn current(ingress: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    let mut now = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    now.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    now
}

async fn patch(
    client: &Client,
    ns: &str,
    name: &str,
    want: &[IngressLoadBalancerIngress],
) -> Result<(), kube::Error> {
    let body = serde_json::json!({ "status": { "loadBalancer": { "ingress": want } } });
    Api::<Ingress>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    #[test]
    fn addresses_follow_ingress_nginx_order() {
        let mut svc = Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        assert_eq!(service_addresses(&svc), ["10.96.0.10"]);
        svc.spec.as_mut().unwrap().external_ips = Some(vec!["192.0.2.7".into()]);
        assert_eq!(service_addresses(&svc), ["192.0.2.7"]);
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    hostname: Some("lb.example.com".into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        assert_eq!(service_addresses(&svc), ["lb.example.com"]);
        let headless = Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        assert!(service_addresses(&headless).is_empty());
    }

    #[test]
    fn entries_split_ips_from_host_names() {
        let e = entries(&[
            "lb.example.com".into(),
            " 192.0.2.1".into(),
            "".into(),
            "192.0.2.1".into(),
        ]);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].hostname.as_deref(), Some("lb.example.com"));
        assert_eq!(e[1].ip.as_deref(), Some("192.0.2.1"));
    }
}
