//! Providers: where Kubernetes objects come from (manifest files; later the API).
