//! ingress-nginx annotations: the `limits` group (see the parent module).

use super::{Annotations, Translation};

/// Reads this group's annotations into `out`.
pub(super) fn translate(_a: &Annotations<'_>, _out: &mut Translation) {}
