//! `chain`: a Middleware that runs other Middlewares, in order, as one step.

use std::sync::Arc;

use http::Request;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext, Terminal};
use crate::body::RequestBody;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    middlewares: Vec<String>,
}

/// Builds a `chain` from its config: each reference is resolved in the chain's namespace.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let steps = config
        .middlewares
        .iter()
        .map(|reference| cx.middleware(reference))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Nested {
        steps: steps.into(),
    }))
}

/// The built `chain`.
#[derive(Debug)]
struct Nested {
    steps: Arc<[Arc<dyn Middleware>]>,
}

/// Continues with the outer chain once the nested one has run.
struct Continue<'a>(Next<'a>);

impl Terminal for Continue<'_> {
    fn forward<'x>(
        &'x self,
        req: Request<RequestBody>,
        cx: &'x RequestContext,
    ) -> BoxFuture<'x, Outcome> {
        self.0.run(req, cx)
    }
}

impl Middleware for Nested {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let outer = Continue(next);
            Next::new(&self.steps, &outer).run(req, cx).await
        })
    }
}
