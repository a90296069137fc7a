//! Placeholder, being written.

use std::sync::Arc;

use serde_json::Value;

use crate::middleware::build::{BuildError, Context};
use crate::middleware::Middleware;

pub(super) fn build(
    _config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    Err(cx.invalid("not built yet".to_owned()))
}
