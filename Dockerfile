# syntax=docker/dockerfile:1
#
# craft-server and dataapi-local in one small, non-root image.
#
#   docker build -t craft-server:local .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/craft-server:TAG --push .
#
# Every platform is compiled natively inside its own build container (buildx
# runs the arm64 one under QEMU on an amd64 host, or on a native arm64 node
# added with `docker buildx create --append`): no cross-compilation toolchain.
# Under QEMU expect the arm64 half to take several times longer; OPERATIONS.md
# has the details.
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) ->
# builder (dependencies in their own cached layer, then the workspace) ->
# runtime (debian slim, the two binaries, nothing else).

# Keep at least the highest `rust-version` of the locked dependencies
# (scripts/validate-deploy.sh checks it).
ARG RUST_VERSION=1.95
# Builder and runtime must share the Debian release: the binaries link
# against its glibc.
ARG DEBIAN_RELEASE=bookworm

# The slim Rust image has the C compiler that aws-lc-sys (rustls' crypto) and
# the bundled SQLite need; nothing else is installed.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
# Same profile for the cached dependencies and the final build, or the cache
# misses. Symbols stay (panics still name their functions); DWARF goes.
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Every store backend is built in; the store URL picks one at start-up.
ARG CRAFT_FEATURES="craft-server/sqlite craft-server/postgres craft-server/dynamodb craft-server/dataapi"
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: rebuilt only when Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        -p craft-server -p dataapi-local --features "${CRAFT_FEATURES}"
COPY Cargo.toml Cargo.lock craft-server.example.toml ./
COPY crates ./crates
RUN cargo build --release --locked -p craft-server -p dataapi-local --features "${CRAFT_FEATURES}" \
    && install -D -m 0755 target/release/craft-server /out/craft-server \
    && install -D -m 0755 target/release/dataapi-local /out/dataapi-local

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to AWS APIs, RDS and the identity service.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 craft \
    && useradd --system --uid 10001 --gid craft --home-dir /var/lib/craft \
        --no-create-home --shell /usr/sbin/nologin craft \
    && install -d -o craft -g craft -m 0750 /var/lib/craft
COPY --from=builder /out/craft-server /out/dataapi-local /usr/local/bin/
COPY scripts/craft-healthcheck /usr/local/bin/craft-healthcheck
COPY craft-server.example.toml /etc/craft/craft-server.example.toml

# The default store, sqlite:craft.db, lands here: mount a volume to keep it.
WORKDIR /var/lib/craft
USER 10001:10001
# 4080: the game (Craft clients). 9090: admin HTTP (/healthz, /readyz, /metrics).
EXPOSE 4080/tcp 9090/tcp
# Plain logs (no colour codes) for CloudWatch, Loki, `docker logs`.
ENV RUST_LOG=info NO_COLOR=1
# SIGTERM makes the server warn its players, write every pending edit and
# exit 0 within shutdown.timeout (90 s by default): give `docker stop` a
# longer -t than that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["craft-healthcheck", "http", "127.0.0.1:9090", "/healthz"]
ENTRYPOINT ["craft-server"]
CMD ["--admin-listen", "0.0.0.0:9090"]
