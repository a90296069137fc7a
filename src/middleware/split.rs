//! The last step of a Gateway API rule with several `backendRefs` (or one
//! with filters of its own): picks a backend by weight and runs that
//! backend's own filters, then forwards to it.
//!
//! Each entry is a route of its own (target, client, the backendRef's
//! filters as its chain), built by the compiler and never in a table; the
//! request goes on as if it had matched that route, so the terminal sends it
//! to the entry's backend. An entry that could not be resolved has an
//! `Unavailable` target (500): its share of the traffic gets 500, as the
//! specification asks.

use std::sync::Arc;

use http::Request;
use rand::Rng;

use super::{BoxFuture, Chain, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;
use crate::exchange::ProxyError;
use crate::router::Route;

/// Backends by weight.
#[derive(Debug)]
pub struct WeightedSplit {
    /// (cumulative weight, route), weights above zero only.
    entries: Vec<(u64, Arc<Route>)>,
    total: u64,
}

impl WeightedSplit {
    /// A split over `(weight, route)`; entries of weight 0 get nothing.
    /// `None` when no entry has a weight (the caller answers 500).
    pub fn new(weighted: Vec<(u32, Arc<Route>)>) -> Option<Self> {
        let mut total = 0u64;
        let mut entries = Vec::with_capacity(weighted.len());
        for (weight, route) in weighted {
            if weight == 0 {
                continue;
            }
            total += u64::from(weight);
            entries.push((total, route));
        }
        (total > 0).then_some(Self { entries, total })
    }

    /// The entries' routes, in order (for the admin API).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.entries.iter().map(|(_, r)| r)
    }

    /// The entry for a draw in `0..total`.
    fn pick(&self, draw: u64) -> Option<&Arc<Route>> {
        let at = self.entries.partition_point(|(upto, _)| *upto <= draw);
        self.entries.get(at).map(|(_, r)| r)
    }
}

impl Middleware for WeightedSplit {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let draw = if self.entries.len() == 1 {
            0
        } else {
            rand::rng().random_range(0..self.total)
        };
        let Some(entry) = self.pick(draw) else {
            return Box::pin(async {
                Err(ProxyError::Unavailable(
                    "no backend".into(),
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                )
                .into())
            });
        };
        Box::pin(async move {
            let entry_cx = RequestContext {
                client: cx.client.clone(),
                route: entry.clone(),
            };
            match &entry.middlewares {
                Chain::Empty => next.with_steps(&[]).run(req, &entry_cx).await,
                Chain::Ready { steps, .. } => next.with_steps(steps).run(req, &entry_cx).await,
                Chain::Broken { reason, .. } => {
                    Err(ProxyError::MiddlewareUnavailable(reason.clone()).into())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::support::detached_route;

    #[test]
    fn draws_land_by_cumulative_weight_and_zero_weights_get_nothing() {
        let (a, b, c) = (
            detached_route("a"),
            detached_route("b"),
            detached_route("c"),
        );
        let split = WeightedSplit::new(vec![(1, a), (0, b), (3, c)]).expect("weighted");
        let names: Vec<_> = (0..4)
            .map(|d| split.pick(d).map(|r| r.name.to_string()))
            .collect();
        assert_eq!(
            names,
            [Some("a"), Some("c"), Some("c"), Some("c")].map(|n| n.map(str::to_owned))
        );
        assert!(split.pick(4).is_none());
        assert!(WeightedSplit::new(vec![(0, detached_route("z"))]).is_none());
    }
}
