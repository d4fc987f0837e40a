"""Benchmarks of linky2mqtt against the limits that bound it (``python -m bench``).

Not part of the test suite. Each figure module exposes ``run(quick: bool) -> list[Row]``
(rows of the results table); :mod:`bench.run` runs them all, prints the table and writes
``bench/RESULTS.md``.
"""
