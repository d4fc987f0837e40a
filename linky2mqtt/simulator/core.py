"""``Simulator``: the upstream stand-in as a Python object (start, stop, control, truth)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from linky2mqtt.model import Kind
from linky2mqtt.simulator import auth, data
from linky2mqtt.simulator.app import App
from linky2mqtt.simulator.options import SimOptions
from linky2mqtt.simulator.server import ServerThread


class Simulator:
    """One HTTP server speaking Conso API, Data Connect and MyElectricalData.

    ``start()`` serves in a background thread; ``stop()`` closes every connection;
    ``start()`` again serves on the same port (to simulate an outage).
    """

    def __init__(self, options: SimOptions | None = None) -> None:
        self.options = options or SimOptions()
        self.app = App(self.options)
        self._server: ServerThread | None = None
        self._port = self.options.port

    # ----- lifecycle -----------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is None:
            server = ServerThread(self.app, self.options.host, self._port)
            self._port = server.port
            server.start()
            self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL for all three providers, e.g. ``http://127.0.0.1:8080``."""
        host = self.options.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    # ----- control (same as the /_sim/ endpoints) ------------------------------------

    def stats(self) -> dict[str, Any]:
        """``{"total": n, "by": [{"provider","pdl","endpoint","status","count"}, ...]}``."""
        return self.app.stats.snapshot()

    def count(self, provider: str | None = None, pdl: str | None = None,
              endpoint: str | None = None, status: int | None = None) -> int:
        """Requests counted so far matching every given field."""
        return self.app.stats.count(provider, pdl, endpoint, status)

    def reset_stats(self) -> None:
        self.app.stats.reset()

    def reset(self) -> None:
        """Back to the start options: no stats, scripts, hidden days or quota history."""
        self.app.reset()

    def script(self, path_regex: str, faults: Iterable[str]) -> None:
        """Queue ``faults`` for requests whose path (and query) matches ``path_regex``."""
        self.app.faults.script(path_regex, faults)

    def set(self, **settings: Any) -> None:
        """latency, fault_rate, fault_kinds, rate_per_second, rate_per_hour, rate_per_12h,
        hide=[{"pdl","day","until"?,"kind"?}], unhide=True."""
        self.app.set(**settings)

    def config(self) -> dict[str, Any]:
        return self.app.config()

    def hide(self, pdl: str, day: date, until: datetime | None = None,
             kind: Kind | str | None = None) -> None:
        """Make ``day`` of ``pdl`` missing until the clock reaches ``until`` (None: for good)."""
        self.app.hide_day(pdl, day, until, kind)

    def make_conso_token(self, pdls: Sequence[str],
                         lifetime: float = auth.CONSO_LIFETIME) -> str:
        """A Conso API JWT covering ``pdls``, valid ``lifetime`` seconds of the sim clock."""
        return self.app.make_conso_token(list(pdls), lifetime)

    # ----- ground truth (what the meter measured; ignores availability and hiding) ---

    def daily_wh(self, pdl: str, kind: Kind | str, day: date) -> int | None:
        """Wh of the day (VA for ``max_power``), or None when the meter has none that day."""
        if Kind(kind) is Kind.MAX_POWER:
            peak = data.max_power(pdl, day)
            return None if peak is None else peak[0]
        return data.daily_wh(pdl, kind, day)

    def curve(self, pdl: str, kind: Kind | str, day: date
              ) -> list[tuple[datetime, int, int]] | None:
        """[(UTC end of interval, W, minutes)] in time order, or None (no curve that day)."""
        if not data.profile(pdl).curve_enabled:
            return None
        points = data.curve(pdl, kind, day)
        return None if points is None else [(p.end, p.watts, p.minutes) for p in points]

    def max_power(self, pdl: str, day: date) -> tuple[int, datetime] | None:
        """(VA, UTC instant of the peak) or None."""
        return data.max_power(pdl, day)

    @staticmethod
    def profile(pdl: str) -> data.Profile:
        return data.profile(pdl)
