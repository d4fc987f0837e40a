# linky2mqtt standalone image (Docker, Compose, Kubernetes): non-root, store and config in /data.
# Multi-arch: linux/amd64, linux/arm64 and linux/arm/v7 (python:3.12-slim has all three).
# The Home Assistant add-on uses addon/Dockerfile (Home Assistant's base image, aarch64/amd64).
# Build: docker build -t linky2mqtt .   (buildx: --platform linux/amd64,linux/arm64,linux/arm/v7)

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY linky2mqtt ./linky2mqtt
# installed under /install, copied whole into the final image: no wheel files left behind;
# with the `demo` extra (amqtt), so that `docker run --network none IMAGE demo` works alone
RUN pip install --no-cache-dir --no-compile --prefix=/install ".[demo]" \
 && python -m compileall -q /install

FROM python:3.12-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="linky2mqtt" \
      org.opencontainers.image.description="French Linky smart-meter data (Enedis) on MQTT" \
      org.opencontainers.image.source="https://github.com/linky2mqtt/linky2mqtt" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --system --gid 1000 linky \
 && useradd --system --uid 1000 --gid linky --home-dir /data --shell /usr/sbin/nologin linky \
 && mkdir -p /data && chown linky:linky /data
COPY --from=build /install /usr/local
USER linky
WORKDIR /data
VOLUME ["/data"]
ENV LINKY2MQTT_CONFIG=/data/config.yaml \
    PYTHONUNBUFFERED=1
# Healthy = the bridge's heartbeat file (<store.path>.health, rewritten every 30 s) is at
# most 120 s old and MQTT has not been disconnected for more than 300 s. One failed check
# (retries=1) marks the container unhealthy: Docker says "unhealthy" 5 to 6 minutes after
# the broker goes (300 s + up to 30 s until the next heartbeat + up to 30 s until the
# next check), and "healthy" again within about 2 minutes after it is back (reconnection
# attempts are up to 60 s apart, then the next heartbeat and check; measured 27-58 s).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=1 \
  CMD ["linky2mqtt", "healthcheck"]
ENTRYPOINT ["linky2mqtt"]
CMD ["run"]
