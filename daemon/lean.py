"""Imported first by the daemon's entry point, to keep what the daemon never uses out of its start.

structlog's ``dev`` module imports rich whenever it is installed (assistantctl's progress bar
brings it in): 30 - 40 ms of the daemon's start (BENCHMARKS.md, cold start), for tracebacks the
daemon never renders that way. Marked missing in the daemon's process, structlog goes without.
"""

import sys

sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
