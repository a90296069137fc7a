//! Client-connection counters the listeners write and `/metrics` reads.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The number of client connections open right now, per listener.
#[derive(Debug, Default)]
pub struct OpenConnections(AtomicI64);

impl OpenConnections {
    /// Counts a newly accepted connection.
    pub fn open(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection that has ended.
    pub fn close(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// TLS handshakes by outcome and protocol version.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Completed with TLS 1.2.
    pub ok_tls12: AtomicU64,
    /// Completed with TLS 1.3.
    pub ok_tls13: AtomicU64,
    /// Failed (bad hello, no shared version or cipher, timeout, reset).
    pub failed: AtomicU64,
}
