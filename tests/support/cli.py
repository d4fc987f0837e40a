"""In-process CLI helpers: ``run_cli`` (``cli.main`` on the suite's pinned clock, with
captured stdout/stderr and a temporary environment) and ``saved_root_logging``
(``cli.main`` configures the root logger; this puts its level and handlers back)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator

from linky2mqtt import cli
from tests.support.clock import SUITE_CLOCK


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``cli.main(argv)`` with ``env`` added to os.environ for the call: (rc, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    if env:
        os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(list(argv), clock=SUITE_CLOCK)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def saved_root_logging() -> Iterator[None]:
    """Restore the root logger's level and remove handlers added inside the block."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
