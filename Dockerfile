# syntax=docker/dockerfile:1
# The dag image: `docker build -t dag .`, or `docker compose up --build`.
# Multi-stage: build with the pinned Rust toolchain, ship a slim Debian with
# only the binary, the pipeline (models/, data/) and dag.toml.

# ---- build ---------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# mold: linker; zlib/zstd/pkg-config/cmake: librdkafka's C build (rdkafka-sys).
RUN apt-get update \
 && apt-get install -y --no-install-recommends mold zlib1g-dev libzstd-dev pkg-config cmake \
 && rm -rf /var/lib/apt/lists/*

ENV CARGO_TERM_PROGRESS_WHEN=never \
    RUSTFLAGS="-C link-arg=-fuse-ld=mold"

WORKDIR /src
COPY . .

# Profile `dist` (Cargo.toml: release + thin LTO, one codegen unit) writes
# target/dist/dag. The cache mounts keep the registry and the target dir
# between builds (BuildKit), so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p dag --bin dag \
 && install -m 0755 target/dist/dag /usr/local/bin/dag

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g libzstd1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --uid 10001 dag

COPY --from=builder /usr/local/bin/dag /usr/local/bin/dag
COPY --chown=dag:dag models/ /app/models/
COPY --chown=dag:dag data/ /app/data/
COPY --chown=dag:dag dag.toml /app/dag.toml

# /app must be writable: the default lake (lake.uri = ./lake) lives there
# when no s3:// lake is configured.
RUN chown dag:dag /app
WORKDIR /app
USER dag

# Prometheus /metrics of `dag scheduler`.
EXPOSE 9464

ENTRYPOINT ["dag"]
CMD ["--help"]
