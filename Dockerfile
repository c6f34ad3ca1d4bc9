# syntax=docker/dockerfile:1
# driftwatch's container image: `docker build -t driftwatch .`
#
# Two stages: the build in Debian bookworm's Rust image, then only the binary
# on distroless cc (glibc and libgcc, no shell), running as its `nonroot`
# user 65532, the user the Helm chart's securityContext expects.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io downloads and the target folder
# between builds; the binary is copied out of the cached folder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin driftwatch \
    && install -D -m 0755 target/release/driftwatch /out/driftwatch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/driftwatch /usr/local/bin/driftwatch
USER 65532:65532
EXPOSE 9871
ENTRYPOINT ["/usr/local/bin/driftwatch"]
CMD ["--config.file=/etc/driftwatch/driftwatch.yml"]
