"""When to restart a worker that exited unexpectedly, and when to give up: a pure policy.

- Exponential backoff with jitter: the n-th restart in a row waits ``initial * 2**n`` seconds,
  capped at ``maximum``, times a random factor in [0.5, 1) ("equal jitter"), so that workers
  that crashed together (a shared dependency went away) do not all come back in the same
  instant.
- A worker that stayed up ``stable_after`` seconds was a stable start: the next crash waits
  ``initial`` again. (supervisord's complaint: a worker that crashes once a day should not
  wait as long as one that crashes every second.)
- At most ``limit`` restarts within any ``window`` seconds (systemd's StartLimitBurst and
  StartLimitIntervalSec); the one past it gives up, and the worker stays down until someone
  starts it again. A worker that dies at once, for ever, so costs ``limit`` restarts and waits
  in between: no busy loop.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The restart policy of one worker, fed with the times of its starts and exits.

    >>> policy = Backoff(initial=0.1, maximum=1.0, stable_after=5.0, limit=3, window=60.0,
    ...                  jitter=lambda: 1.0)
    >>> [policy.next_delay(now=t, up_for=0.0) for t in (0.0, 1.0, 2.0)]
    [0.1, 0.2, 0.4]
    >>> policy.next_delay(now=3.0, up_for=0.0) is None  # a fourth restart within 60 s
    True
    >>> policy.reset()  # a start command: a fresh count
    >>> policy.next_delay(now=4.0, up_for=0.0)
    0.1
    """

    initial: float
    maximum: float
    stable_after: float
    limit: int
    window: float
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.5, 1.0), repr=False)
    """The jitter factor for each delay (tests give a fixed one)."""
    _streak: int = 0
    _restarts: deque[float] = field(default_factory=deque)

    @property
    def restarts(self) -> int:
        """The restarts counted in the current window."""
        return len(self._restarts)

    def next_delay(self, *, now: float, up_for: float) -> float | None:
        """Seconds to wait before restarting a worker that exited at ``now`` after being up
        ``up_for`` seconds, or None if it has used up its restarts."""
        while self._restarts and self._restarts[0] <= now - self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.limit:
            return None
        if up_for >= self.stable_after:
            self._streak = 0
        base = min(self.maximum, self.initial * 2.0**self._streak)
        self._streak += 1
        self._restarts.append(now)
        return base * self.jitter()

    def reset(self) -> None:
        self._streak = 0
        self._restarts.clear()
