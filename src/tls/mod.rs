//! TLS: certificates from Secrets, SNI selection, and client configs for HTTPS backends.
