# ruff: noqa: T201 - a by-hand script that reports on stdout
"""By hand: the add-on's statistics through the Supervisor stand-in into a REAL Home Assistant.

Needs ../shared/tools/ha (root; ``bash ../shared/tools/ha/setup.sh`` once). Starts a
mosquitto, Home Assistant (run_ha.py), the simulator and the Supervisor stand-in, then
``python -m linky2mqtt run`` exactly as the Supervisor would (SUPERVISOR_TOKEN, options.json,
no -c). It waits for Home Assistant to list the imported statistic and prints its rows.

    .venv/bin/python scripts/addon-real-ha.py [--tools ../shared/tools/ha]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linky2mqtt.ha_statistics.client import HAConnection  # noqa: E402
from linky2mqtt.simulator import SimOptions, Simulator  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.supervisor import Broker, SupervisorStandIn  # noqa: E402

PDL = "22516914714270"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tools", default=str(ROOT.parent / "shared" / "tools" / "ha"))
    a = p.parse_args()
    tools = Path(a.tools)
    if not (tools / "run_ha.py").exists():
        tools = Path("/work/shared/tools/ha")
    tmp = Path(tempfile.mkdtemp(prefix="addon-real-ha-"))
    mq = Mosquitto(tmp)
    mq.start()
    session = tmp / "ha.json"
    ha = subprocess.Popen([sys.executable, str(tools / "run_ha.py"), "--mqtt-port",
                           str(mq.port), "--out", str(session), "--rm"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = Simulator(SimOptions(host="127.0.0.1", port=0))
    sim.start()
    addon = None
    sup = None
    try:
        deadline = time.monotonic() + 120
        while not session.exists():
            if time.monotonic() > deadline or ha.poll() is not None:
                raise SystemExit("Home Assistant did not start")
            time.sleep(0.5)
        info = json.loads(session.read_text())
        print(f"Home Assistant {info['ha_version']} at {info['base_url']}")
        sup = SupervisorStandIn(broker=Broker("127.0.0.1", mq.port), ha_url=info["base_url"],
                                ha_token=info["token"]).start()
        data = tmp / "data"
        data.mkdir()
        (data / "options.json").write_text(json.dumps({
            "accounts": [{"name": "biz", "provider": "dataconnect", "client_id": "sim-client",
                          "client_secret": "sim-secret", "base_url": sim.url}],
            "meters": [{"pdl": PDL, "steps": "day,hour", "backfill_day": 3,
                        "backfill_hour": 3}],
            "steps": "day,month,hour", "backfill_day": 365, "backfill_hour": 30,
            "statistics": True, "discovery": True, "log_level": "info"}))
        env = {**os.environ, **sup.env(), "LINKY2MQTT_ADDON_OPTIONS": str(data / "options.json")}
        env.pop("LINKY2MQTT_CONFIG", None)
        addon = subprocess.Popen([sys.executable, "-m", "linky2mqtt", "run"], cwd=ROOT,
                                 env=env, stderr=subprocess.PIPE, text=True)
        sid = f"linky2mqtt:{PDL}_consumption"
        ws = info["base_url"].replace("http://", "ws://") + "/api/websocket"
        deadline = time.monotonic() + 120
        rows: list[dict[str, object]] = []
        previous = -1
        while time.monotonic() < deadline:
            conn = HAConnection(ws, info["token"], timeout=10)
            try:
                start = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 5 * 86400))
                got = conn.call("recorder/statistics_during_period", start_time=start,
                                statistic_ids=[sid], period="hour", types=["state", "sum"])
            finally:
                conn.close()
            rows = got.get(sid, [])
            if len(rows) >= 24 and len(rows) == previous:  # imported, and settled
                break
            previous = len(rows)
            time.sleep(3)
        print(f"Supervisor stand-in: service calls {sup.service_calls}, "
              f"websocket auth with the Supervisor token: "
              f"{all(t == sup.token for t in sup.ws_auth)} ({len(sup.ws_auth)} connection(s)), "
              f"relayed {sorted(set(sup.relayed))}")
        print(f"Home Assistant holds {len(rows)} hourly rows of {sid}")
        for r in rows[:2] + rows[-2:]:
            print("   ", r)
        return 0 if len(rows) >= 24 else 1
    finally:
        if addon is not None:
            addon.send_signal(signal.SIGTERM)
            _, err = addon.communicate(timeout=30)
            print(f"add-on exit {addon.returncode}; its log:")
            for line in err.splitlines():
                print("   ", line[:200])
        if sup is not None:
            sup.stop()
        sim.stop()
        if session.exists():
            os.kill(json.loads(session.read_text())["runner_pid"], signal.SIGTERM)
        ha.wait(30)
        mq.stop()


if __name__ == "__main__":
    raise SystemExit(main())
