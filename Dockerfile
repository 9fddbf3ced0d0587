# syntax=docker/dockerfile:1
# The gmsa image: `gmsa-webhook` (the entrypoint) and `gmsa` (run by the chart's certificate
# Jobs as /usr/local/bin/gmsa), on distroless/cc (glibc, CA certificates, no shell), non-root.
#
#   docker build -t gmsa/gmsa:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REPO/gmsa:0.1.0 --push .
#
# Multi-arch: the build stage runs on the builder's own platform (BUILDPLATFORM) and
# cross-compiles for TARGETARCH (amd64 or arm64) with Debian's cross gcc, which `ring` needs
# for its C and assembly parts; no emulation is involved. TLS is rustls + ring: no OpenSSL.
# Needs BuildKit (the default builder since Docker 23; TARGETARCH and RUN --mount come from it).
# Not built in this repository's CI (no container engine there); e2e/tests/chart.rs checks
# the file's essentials and, given GMSA_E2E_IMAGE, installs the chart with the built image.

FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
# Toolchain for the target: the Rust target triple, and a cross gcc when it differs from the builder.
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; pkgs="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /rust-target; \
    : > /cross-env; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; apt-get install -y --no-install-recommends $pkgs; rm -rf /var/lib/apt/lists/*; \
      upper="$(echo "$triple" | tr 'a-z-' 'A-Z_')"; \
      printf 'export CARGO_TARGET_%s_LINKER=%s-gcc CC_%s=%s-gcc AR_%s=%s-ar\n' \
        "$upper" "$gnu" "$(echo "$triple" | tr - _)" "$gnu" "$(echo "$triple" | tr - _)" "$gnu" > /cross-env; \
    fi; \
    rustup target add "$triple"
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; . /cross-env; triple="$(cat /rust-target)"; \
    cargo build --release --locked -p gmsa-webhook -p gmsa --target "$triple"; \
    mkdir -p /out; \
    cp "target/$triple/release/gmsa-webhook" "target/$triple/release/gmsa" /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gmsa-webhook /usr/local/bin/gmsa-webhook
COPY --from=build /out/gmsa /usr/local/bin/gmsa
# 8443: admission HTTPS (the chart's containerPort); 9090: /metrics, /ready, /live.
EXPOSE 8443 9090
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gmsa-webhook"]
