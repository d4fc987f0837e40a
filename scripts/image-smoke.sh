#!/usr/bin/env bash
# image-smoke.sh: build an image of this repository with ../shared/tools/docker (podman, no
# Docker engine needed) and smoke-test it the way a user runs it. Not run by CI (the publish
# workflow has a shorter smoke test); run it by hand, as root, from anywhere:
#
#   scripts/image-smoke.sh standalone     # ./Dockerfile            -> localhost/linky2mqtt:local
#   scripts/image-smoke.sh addon          # addon/Dockerfile        -> localhost/linky2mqtt-addon:local
#
# It builds the COMMITTED state (build.sh clones HEAD). Checks, each PASS/FAIL with figures:
#   --version; the demo with no network (amqtt from the demo extra; the add-on image has none: one line saying what
#   to install, exit 1); the bridge against the simulator and
#   a mosquitto (the add-on: through a Supervisor stand-in's /services/mqtt); the uid; /data
#   writable; the health check healthy, then unhealthy within the time the docs state after
#   the broker goes (Docker's schedule replayed: podman has no timer here), healthy again once
#   it is back; SIGTERM: exit 0 within 5 s and "offline" published; the image size.
# Knobs: DOCKER_TOOLS (default: ../shared/tools/docker beside the checkout, else
#   /work/shared/tools/docker), WORK (scratch, default ~/.cache/docker-tool), HEALTH=0 skips
#   the multi-minute unhealthy wait, PY (a python with this package, default .venv/bin/python).
set -uo pipefail

KIND=${1:-standalone}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER_TOOLS=${DOCKER_TOOLS:-$ROOT/../shared/tools/docker}
[ -f "$DOCKER_TOOLS/build.sh" ] || DOCKER_TOOLS=/work/shared/tools/docker
export WORK=${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/docker-tool}
PY=${PY:-$ROOT/.venv/bin/python}
HEALTH=${HEALTH:-1}
# the documented time to unhealthy after the broker goes (docs, Dockerfile comment)
UNHEALTHY_WITHIN=${UNHEALTHY_WITHIN:-360}
PDL=22516914714270
BASE_TOPIC=smoke

T0=$(date +%s)
declare -a RESULTS=()
FAILED=0
say() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
pass() { RESULTS+=("PASS  $*"); say "PASS: $*"; }
fail() { RESULTS+=("FAIL  $*"); say "FAIL: $*"; FAILED=1; }
summary() {
  echo; echo "================ $KIND image smoke test: $(( $(date +%s) - T0 )) s ================"
  local r; for r in "${RESULTS[@]}"; do echo "$r"; done
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case $KIND in
  standalone) IMAGE=localhost/linky2mqtt:local; FILE=Dockerfile ;;
  addon) IMAGE=localhost/linky2mqtt-addon:local; FILE=addon/Dockerfile ;;
  *) echo "usage: $0 standalone|addon" >&2; exit 2 ;;
esac
TMP=$(mktemp -d /tmp/image-smoke.XXXXXX)
NAME=l2m-smoke-$KIND-$$
PIDS=()
cleanup() {
  podman rm -f "$NAME" "$NAME-sim" "$NAME-demo" >/dev/null 2>&1
  local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# ------------------------------------------------------------------ build
say "=== build $FILE (committed state: $(git -C "$ROOT" log -1 --format='%h %s' | cut -c1-60))"
(cd "$ROOT" && IMAGE=localhost/linky2mqtt:local bash "$DOCKER_TOOLS/build.sh" > "$TMP/build.log" 2>&1) \
  || { tail -20 "$TMP/build.log"; fail "build.sh"; summary; exit 1; }
# shellcheck source=/dev/null
source "$DOCKER_TOOLS/env.sh"
if [ "$KIND" = addon ]; then
  # build.sh made a stand-in for python:3.12-slim (Debian 13 + python 3.13); the add-on's
  # Home Assistant base cannot be pulled either: the same stand-in goes under its tag.
  base=$(sed -n 's/^ARG BUILD_FROM=//p' "$ROOT/addon/Dockerfile")
  podman tag docker.io/library/python:3.12-slim "$base"
  say "add-on base $base: the Debian stand-in (the real one is Alpine + CPython 3.14)"
  args=(--format docker --network host -f "$WORK/src/addon/Dockerfile" -t "$IMAGE"
        --build-arg BUILD_VERSION=smoke --build-arg BUILD_ARCH=amd64
        -v "$WORK/sandbox/pip.conf:/etc/pip.conf:ro")
  [ -f /etc/ssl/certs/ca-certificates.crt ] && \
    args+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  b0=$(date +%s)
  podman build "${args[@]}" "$WORK/src" > "$TMP/build-addon.log" 2>&1 \
    || { tail -20 "$TMP/build-addon.log"; fail "podman build addon/Dockerfile"; summary; exit 1; }
  pass "podman build addon/Dockerfile in $(( $(date +%s) - b0 )) s"
else
  pass "build.sh ($(grep -o 'podman build (unchanged Dockerfile) in [0-9]* s' "$TMP/build.log"))"
fi
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
base_size=$(podman image inspect -f '{{.Size}}' docker.io/library/python:3.12-slim)
pass "image size $((size / 1000000)) MB (stand-in base $((base_size / 1000000)) MB, app +$(( (size - base_size) / 1000 )) kB)"
hc=$(podman image inspect -f '{{json .HealthCheck}}' "$IMAGE")
say "HEALTHCHECK $hc"
read -r interval retries < <("$PY" -c 'import json,sys; h=json.loads(sys.argv[1]); print(h["Interval"] // 10**9, h["Retries"])' "$hc")

# ------------------------------------------------------------------ --version
# (--health-cmd none: podman would try to reach systemd to time a health check)
v=$(podman run --rm --network none --health-cmd none "$IMAGE" --version 2>"$TMP/podman.err")
if [[ $v =~ ^linky2mqtt\ [0-9] ]]; then pass "--version: $v"; else fail "--version: $v"; fi

# ------------------------------------------------------------------ demo, no broker reachable
# The standalone image carries the `demo` extra (amqtt): with no network at all the demo runs
# its simulator against amqtt in its own process. The add-on image has no extra: the demo
# says in one line what is missing.
podman run --rm --name "$NAME-demo" --network none --health-cmd none "$IMAGE" demo --seconds 20 > "$TMP/demo.log" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q 'state="online"' "$TMP/demo.log" && grep -q 'consumption/day' "$TMP/demo.log" \
   && ! grep -q 'Traceback' "$TMP/demo.log"; then
  pass "demo with no network: exit 0, $(grep -c . "$TMP/demo.log") lines, $(grep -m1 -o 'started amqtt[^,]*' "$TMP/demo.log")"
elif [ $rc = 1 ] && grep -q "pip install 'linky2mqtt\[demo\]'" "$TMP/demo.log" \
   && ! grep -q 'Traceback' "$TMP/demo.log"; then
  pass "demo with no network and no broker (no demo extra): exit 1, one line: $(grep -m1 'linky2mqtt: error' "$TMP/demo.log")"
else
  tail -5 "$TMP/demo.log"; fail "demo with no network (exit $rc)"
fi

# ------------------------------------------------------------------ broker + simulator + bridge
MQ_PORT=$(free_port); SIM_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n' "$MQ_PORT" > "$TMP/mq.conf"
start_mosquitto() { mosquitto -c "$TMP/mq.conf" > "$TMP/mq.log" 2>&1 & MQ_PID=$!; PIDS+=("$MQ_PID"); sleep 0.5; }
start_mosquitto
podman run -d --name "$NAME-sim" --network host --health-cmd none --entrypoint linky2mqtt \
  "$IMAGE" simulator --host 127.0.0.1 --port "$SIM_PORT" > /dev/null
DATA=$TMP/data; mkdir -p "$DATA"
if [ "$KIND" = addon ]; then
  SUP_PORT=$(free_port)
  (cd "$ROOT" && exec "$PY" -m tests.support.supervisor --port "$SUP_PORT" --broker-port "$MQ_PORT") > "$TMP/sup.log" 2>&1 &
  PIDS+=($!)
  cat > "$DATA/options.json" <<JSON
{"accounts": [{"name": "biz", "provider": "dataconnect", "client_id": "sim-client",
  "client_secret": "sim-secret", "base_url": "http://127.0.0.1:$SIM_PORT"}],
 "meters": [{"pdl": "$PDL", "backfill_day": 30, "backfill_hour": 3}],
 "steps": "day,month,hour", "backfill_day": 365, "backfill_hour": 30, "statistics": false,
 "discovery": true, "base_topic": "$BASE_TOPIC", "log_level": "info"}
JSON
  RUN_ARGS=(-e SUPERVISOR_TOKEN=supervisor-token-for-the-addon-test
            -e "LINKY2MQTT_SUPERVISOR_URL=http://127.0.0.1:$SUP_PORT")
  WANT_UID=0
else
  chown 1000:1000 "$DATA"
  cat > "$DATA/config.yaml" <<YAML
mqtt: {url: "mqtt://127.0.0.1:$MQ_PORT", base_topic: $BASE_TOPIC}
store: {path: /data/linky2mqtt.db}
accounts:
  - name: biz
    provider: dataconnect
    client_id: sim-client
    client_secret: sim-secret
    base_url: "http://127.0.0.1:$SIM_PORT"
    meters: [{pdl: "$PDL", backfill_days: {day: 30, hour: 3}}]
YAML
  RUN_ARGS=()
  WANT_UID=1000
fi
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$SIM_PORT/" >/dev/null 2>&1 || [ $? = 22 ] && break; sleep 0.2; done
# (podman logs that systemd cannot time the health check: this script runs it instead)
podman run -d --name "$NAME" --network host -v "$DATA:/data" "${RUN_ARGS[@]}" "$IMAGE" \
  > /dev/null 2>>"$TMP/podman.err"
got=$(timeout 60 mosquitto_sub -p "$MQ_PORT" -t "$BASE_TOPIC/$PDL/consumption/day" -C 1 -W 60 2>&1)
if [[ $got == *'"value"'* ]]; then
  pass "bridge against the simulator and mosquitto: $BASE_TOPIC/$PDL/consumption/day = $got"
else
  podman logs "$NAME" 2>&1 | tail -10; fail "no consumption/day from the bridge ($got)"
fi
state=$(timeout 10 mosquitto_sub -p "$MQ_PORT" -t "$BASE_TOPIC/bridge/state" -C 1 -W 10)
[ "$state" = '{"state":"online"}' ] && pass "bridge/state $state (retained)" || fail "bridge/state: $state"
uid=$(podman exec "$NAME" id -u)
[ "$uid" = "$WANT_UID" ] && pass "runs as uid $uid" || fail "runs as uid $uid (wanted $WANT_UID)"
if podman exec "$NAME" sh -c 'touch /data/.w && rm /data/.w' && [ -s "$DATA/linky2mqtt.db" ]; then
  pass "/data writable; store $(du -ck "$DATA"/linky2mqtt.db* | tail -1 | cut -f1) kB on the host"
else
  fail "/data not writable or no store"
fi

# ------------------------------------------------------------------ health check
if podman healthcheck run "$NAME" > "$TMP/hc" 2>&1; then
  pass "health check healthy while connected"
else
  fail "health check while connected: $(cat "$TMP/hc")"
fi
if [ "$HEALTH" = 1 ]; then
  kill "$MQ_PID"; wait "$MQ_PID" 2>/dev/null; gone=$(date +%s)
  say "broker stopped; replaying Docker's schedule: a check every ${interval} s, unhealthy after $retries failure(s)"
  fails=0; unhealthy_after=""
  # Docker's first check after the loss comes 0..interval s later: the worst case is a full interval
  while [ $(( $(date +%s) - gone )) -le $(( UNHEALTHY_WITHIN + 2 * interval )) ]; do
    sleep "$interval"
    if podman healthcheck run "$NAME" > "$TMP/hc" 2>&1; then fails=0; else fails=$((fails + 1)); fi
    if [ $fails -ge "$retries" ]; then unhealthy_after=$(( $(date +%s) - gone )); break; fi
  done
  if [ -n "$unhealthy_after" ] && [ "$unhealthy_after" -le "$UNHEALTHY_WITHIN" ]; then
    pass "unhealthy ${unhealthy_after} s after the broker went (documented: within ${UNHEALTHY_WITHIN} s): $(tr '\n' ' ' < "$TMP/hc")"
  else
    fail "unhealthy after ${unhealthy_after:-never} s (documented: within ${UNHEALTHY_WITHIN} s)"
  fi
  start_mosquitto; back=$(date +%s)
  until podman healthcheck run "$NAME" > "$TMP/hc" 2>&1; do
    [ $(( $(date +%s) - back )) -gt 120 ] && break; sleep 2
  done
  if podman healthcheck run "$NAME" >/dev/null 2>&1; then
    pass "healthy again $(( $(date +%s) - back )) s after the broker came back"
  else
    fail "still unhealthy 120 s after the broker came back"
  fi
fi

# ------------------------------------------------------------------ SIGTERM
timeout 30 mosquitto_sub -p "$MQ_PORT" -t "$BASE_TOPIC/bridge/state" -W 30 > "$TMP/state.log" 2>&1 &
SUB=$!; PIDS+=("$SUB"); sleep 1
t=$(date +%s.%N)
podman kill -s TERM "$NAME" > /dev/null
rc=$(podman wait "$NAME")
dt=$("$PY" -c "import time; print(f'{time.time() - $t:.1f}')")
sleep 1; kill "$SUB" 2>/dev/null
if [ "$rc" = 0 ] && "$PY" -c "import sys; sys.exit(0 if $dt <= 5 else 1)" && grep -q '"offline"' "$TMP/state.log"; then
  pass "SIGTERM: exit $rc in $dt s, bridge/state offline published"
else
  fail "SIGTERM: exit $rc in $dt s, state seen: $(tr '\n' ' ' < "$TMP/state.log")"
fi
podman logs "$NAME" > "$TMP/bridge.log" 2>&1
say "bridge log (last lines):"; tail -8 "$TMP/bridge.log" | cut -c1-200 | sed 's/^/    /'

summary
exit $FAILED
