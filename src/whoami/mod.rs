//! The built-in echo backend.
