# syntax=docker/dockerfile:1
#
# The sluice image: `docker build -t sluice:0.1.0 .`
# Build stage: the toolchain rust-toolchain.toml pins, on Debian 12.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds; the binary is
# copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
    && cp target/release/sluice /usr/local/bin/sluice

# Runtime: distroless glibc (matches the Debian 12 build), no shell, no
# package manager, user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
USER 65532:65532
# web, websecure, admin
EXPOSE 8080 8443 9000
ENTRYPOINT ["/usr/local/bin/sluice"]
