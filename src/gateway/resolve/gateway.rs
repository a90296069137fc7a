//! GatewayClass acceptance, and a Gateway's own conditions (`Accepted`,
//! `Programmed`) and `status.addresses`.

use std::net::IpAddr;

use super::conditions::{reasons, types, Condition};
use super::listeners::ListenerOutcome;
use super::status::{GatewayClassStatus, GatewayStatusAddress, SupportedFeature};
use crate::gateway::{Gateway, GatewayClass, CONTROLLER_NAME};

/// `IPAddress` (Gateway address type).
const IP_ADDRESS: &str = "IPAddress";
/// `Hostname` (Gateway address type).
const HOSTNAME: &str = "Hostname";

/// Whether `class` is served by sluice.
pub(super) fn is_ours(class: &GatewayClass) -> bool {
    class.spec.controller_name == CONTROLLER_NAME
}

/// The status of one of sluice's GatewayClasses and, if not accepted, why.
pub(super) fn class_status(
    class: &GatewayClass,
    supported_features: &[String],
) -> (GatewayClassStatus, Result<(), String>) {
    let generation = class.metadata.generation;
    let verdict = match &class.spec.parameters_ref {
        None => Ok(()),
        Some(p) => Err(format!(
            "parametersRef {}/{} {:?} is not supported: sluice takes no GatewayClass parameters",
            p.group, p.kind, p.name
        )),
    };
    let accepted = match &verdict {
        Ok(()) => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "", generation),
        Err(why) => Condition::new(
            types::ACCEPTED,
            false,
            reasons::INVALID_PARAMETERS,
            why.clone(),
            generation,
        ),
    };
    let supported_version = Condition::new(
        types::SUPPORTED_VERSION,
        true,
        reasons::SUPPORTED_VERSION,
        "",
        generation,
    );
    let mut features: Vec<SupportedFeature> = supported_features
        .iter()
        .map(|name| SupportedFeature { name: name.clone() })
        .collect();
    features.sort();
    features.dedup();
    let status = GatewayClassStatus {
        conditions: vec![accepted, supported_version],
        supported_features: features,
    };
    (status, verdict)
}

/// The addresses sluice is reachable on, typed.
pub(super) fn typed_addresses(addresses: &[String]) -> Vec<GatewayStatusAddress> {
    addresses
        .iter()
        .filter(|a| !a.is_empty())
        .map(|value| GatewayStatusAddress {
            type_: if value.parse::<IpAddr>().is_ok() {
                IP_ADDRESS
            } else {
                HOSTNAME
            }
            .to_owned(),
            value: value.clone(),
        })
        .collect()
}

/// What `spec.addresses` asks for, against what sluice has.
#[derive(Debug, Default)]
struct AddressCheck {
    /// The status addresses.
    addresses: Vec<GatewayStatusAddress>,
    /// Requested types sluice does not support.
    unsupported: Vec<String>,
    /// Requested values sluice is not reachable on.
    not_usable: Vec<String>,
    /// Requested types (with no value) of which sluice has no address.
    not_assigned: Vec<String>,
}

impl AddressCheck {
    fn add(&mut self, address: &GatewayStatusAddress) {
        if !self.addresses.contains(address) {
            self.addresses.push(address.clone());
        }
    }
}

fn check_addresses(gateway: &Gateway, ours: Option<&[GatewayStatusAddress]>) -> AddressCheck {
    let mut check = AddressCheck::default();
    let Some(ours) = ours else {
        // Not known here: what the Gateway asks for is taken as usable.
        for requested in &gateway.spec.addresses {
            check.add(&GatewayStatusAddress {
                type_: if requested.type_.is_empty() {
                    IP_ADDRESS.to_owned()
                } else {
                    requested.type_.clone()
                },
                value: requested.value.clone(),
            });
        }
        return check;
    };
    if gateway.spec.addresses.is_empty() {
        check.addresses = ours.to_vec();
        return check;
    }
    for requested in &gateway.spec.addresses {
        let type_ = if requested.type_.is_empty() {
            IP_ADDRESS
        } else {
            requested.type_.as_str()
        };
        if type_ != IP_ADDRESS && type_ != HOSTNAME {
            check.unsupported.push(type_.to_owned());
            continue;
        }
        let mut of_type = ours.iter().filter(|a| a.type_ == type_).peekable();
        if requested.value.is_empty() {
            if of_type.peek().is_none() {
                check.not_assigned.push(type_.to_owned());
            }
            for address in of_type {
                check.add(address);
            }
        } else if let Some(address) = ours
            .iter()
            .find(|a| a.type_ == type_ && a.value == requested.value)
        {
            check.add(address);
        } else {
            check.not_usable.push(requested.value.clone());
        }
    }
    check
}

/// A Gateway's verdict: its status conditions and addresses, and whether it
/// is programmed (`Err`: why not).
pub(super) struct GatewayVerdict {
    /// `Accepted`, `Programmed`.
    pub conditions: Vec<Condition>,
    /// `status.addresses`.
    pub addresses: Vec<GatewayStatusAddress>,
    /// Whether traffic is served (`Err`: why not).
    pub programmed: Result<(), String>,
}

/// Judges a Gateway of one of sluice's classes (`class`: whether that class
/// is accepted) from its validated listeners.
pub(super) fn verdict(
    gateway: &Gateway,
    class: Result<(), &str>,
    listeners: &[ListenerOutcome],
    ours: Option<&[GatewayStatusAddress]>,
) -> GatewayVerdict {
    let generation = gateway.metadata.generation;
    let addresses = check_addresses(gateway, ours);
    let invalid: Vec<String> = listeners
        .iter()
        .filter_map(|l| Some(format!("{} ({})", l.listener.name, l.unready.as_deref()?)))
        .collect();
    let valid: Vec<&str> = listeners
        .iter()
        .filter(|l| l.unready.is_none())
        .map(|l| l.listener.name.as_str())
        .collect();
    let accepted: Result<(&str, String), (&str, String)> = if let Err(why) = class {
        Err((
            reasons::INVALID,
            format!(
                "GatewayClass {:?} is not accepted: {why}",
                gateway.spec.gateway_class_name
            ),
        ))
    } else if !addresses.unsupported.is_empty() {
        Err((
            reasons::UNSUPPORTED_ADDRESS,
            format!(
                "address types {} are not supported (IPAddress, Hostname)",
                addresses.unsupported.join(", ")
            ),
        ))
    } else if valid.is_empty() {
        Err((
            reasons::LISTENERS_NOT_VALID,
            if invalid.is_empty() {
                "the Gateway has no listeners".to_owned()
            } else {
                format!("no valid listener: {}", invalid.join("; "))
            },
        ))
    } else if !invalid.is_empty() {
        Ok((
            reasons::LISTENERS_NOT_VALID,
            format!(
                "invalid listeners: {}; accepted listeners: {}",
                invalid.join("; "),
                valid.join(", ")
            ),
        ))
    } else {
        Ok((reasons::ACCEPTED, String::new()))
    };
    let programmed: Result<(), (&str, String)> = match &accepted {
        Err((_, why)) => Err((reasons::INVALID, why.clone())),
        Ok(_) if !addresses.not_usable.is_empty() => Err((
            reasons::ADDRESS_NOT_USABLE,
            format!(
                "sluice is not reachable on {} (its addresses: {})",
                addresses.not_usable.join(", "),
                list(ours.unwrap_or_default())
            ),
        )),
        Ok(_) if !addresses.not_assigned.is_empty() => Err((
            reasons::ADDRESS_NOT_ASSIGNED,
            format!(
                "sluice has no address of type {}",
                addresses.not_assigned.join(", ")
            ),
        )),
        Ok(_) => Ok(()),
    };
    let accepted_condition = match accepted {
        Ok((reason, message)) => Condition::new(types::ACCEPTED, true, reason, message, generation),
        Err((reason, message)) => {
            Condition::new(types::ACCEPTED, false, reason, message, generation)
        }
    };
    let programmed_condition = match &programmed {
        Ok(()) => Condition::new(types::PROGRAMMED, true, reasons::PROGRAMMED, "", generation),
        Err((reason, message)) => Condition::new(
            types::PROGRAMMED,
            false,
            reason,
            message.clone(),
            generation,
        ),
    };
    GatewayVerdict {
        conditions: vec![accepted_condition, programmed_condition],
        addresses: addresses.addresses,
        programmed: programmed.map_err(|(_, why)| why),
    }
}

fn list(addresses: &[GatewayStatusAddress]) -> String {
    if addresses.is_empty() {
        return "none".to_owned();
    }
    addresses
        .iter()
        .map(|a| a.value.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
