"""Benchmarks: the daemon measured against a floor in the same run (see BENCHMARKS.md).

Run them all from the repository root with ``.venv/bin/python -m tests.bench``, or one of them
with ``.venv/bin/python -m tests.bench.NAME``. They are scripts, not tests: pytest skips this
folder, and a missed target is reported, not failed.
"""
