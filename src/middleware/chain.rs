//! What a route carries: its compiled middlewares, or why it has none it can run.

use std::fmt;
use std::sync::Arc;

use super::Middleware;

/// A route's middleware chain, built once per table.
#[derive(Clone, Default)]
pub enum Chain {
    /// No middlewares: the request path skips the engine entirely.
    #[default]
    Empty,
    /// Middlewares to run in order, with the references they came from.
    Ready {
        /// The steps, outermost first.
        steps: Arc<[Arc<dyn Middleware>]>,
        /// The references as written on the Ingress (for the admin API).
        names: Arc<[String]>,
    },
    /// A referenced middleware is missing or invalid: the route answers 500
    /// rather than serving without it (fail closed).
    Broken {
        /// Why, for logs and the admin API (never sent to clients).
        reason: Arc<str>,
        /// The references as written on the Ingress.
        names: Arc<[String]>,
    },
}

impl Chain {
    /// The references the chain was built from.
    pub fn names(&self) -> &[String] {
        match self {
            Self::Empty => &[],
            Self::Ready { names, .. } | Self::Broken { names, .. } => names,
        }
    }

    /// Whether both chains run the same middleware instances from the same references.
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Empty, Self::Empty) => true,
            (
                Self::Ready {
                    steps: a,
                    names: na,
                },
                Self::Ready {
                    steps: b,
                    names: nb,
                },
            ) => {
                na == nb
                    && a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|(x, y)| Arc::ptr_eq(x, y))
            }
            (
                Self::Broken {
                    reason: a,
                    names: na,
                },
                Self::Broken {
                    reason: b,
                    names: nb,
                },
            ) => a == b && na == nb,
            _ => false,
        }
    }

    /// Why the chain cannot run, if it cannot.
    pub fn broken(&self) -> Option<&str> {
        match self {
            Self::Broken { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Chain::Empty"),
            Self::Ready { names, .. } => f.debug_tuple("Chain::Ready").field(names).finish(),
            Self::Broken { reason, names } => f
                .debug_struct("Chain::Broken")
                .field("reason", reason)
                .field("names", names)
                .finish(),
        }
    }
}
