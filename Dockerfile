# syntax=docker/dockerfile:1
# linky2mqtt: multi-stage build, runs as a non-root user, store and config in /data.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY linky2mqtt ./linky2mqtt
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN groupadd --system --gid 1000 linky \
 && useradd --system --uid 1000 --gid linky --home-dir /data --shell /usr/sbin/nologin linky \
 && mkdir -p /data && chown linky:linky /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER linky
WORKDIR /data
VOLUME ["/data"]
ENV LINKY2MQTT_CONFIG=/data/config.yaml \
    PYTHONUNBUFFERED=1
# Healthy = the bridge process answers and its store is readable and migrated.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
  CMD ["linky2mqtt", "healthcheck"]
ENTRYPOINT ["linky2mqtt"]
CMD ["run"]
