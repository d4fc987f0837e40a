"""``python -m bench [--quick] [--at INSTANT]``.

The clock is pinned (:mod:`bench.pin`) before any module of the bridge is imported.
"""

import sys

from bench.pin import at_from_argv, pin

try:
    pin(at_from_argv(sys.argv[1:]))
except ValueError as exc:
    raise SystemExit(f"python -m bench: {exc}") from None

from bench.run import main

raise SystemExit(main())
