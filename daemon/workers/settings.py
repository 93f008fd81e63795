"""The worker settings: the ``[workers]`` table of the config file, with safe defaults.

Example (every key is optional)::

    [workers]
    node = "/usr/bin/node"          # the Node.js to run, looked up on the daemon's PATH
    pass-env = ["OPENAI_API_KEY"]   # variables of the daemon's environment a worker gets
    start-timeout = 30              # seconds for a worker to say it is up
    stop-timeout = 5                # seconds for each step of a stop
    invoke-timeout = 60             # seconds an invoke waits by default
    restart-limit = 10              # automatic restarts allowed within restart-window...
    restart-window = 300            # ...seconds, before the daemon gives up
    backoff-initial = 0.1           # seconds before the first automatic restart
    backoff-max = 30                # the longest wait between restarts
    stable-after = 10               # seconds up after which the backoff starts again from
                                    # backoff-initial
    npm-scripts = false             # let `npm install` run packages' install scripts
    install-timeout = 600           # seconds for `npm install`
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..tables import from_table


@dataclass(frozen=True)
class WorkerSettings:
    node: str = "node"
    pass_env: tuple[str, ...] = ()
    start_timeout: float = 30.0
    stop_timeout: float = 5.0
    invoke_timeout: float = 60.0
    restart_limit: int = 10
    restart_window: float = 300.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    stable_after: float = 10.0
    npm_scripts: bool = False
    install_timeout: float = 600.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> WorkerSettings:
        """The settings a ``[workers]`` table gives; ValueError naming the key for a bad one.

        >>> WorkerSettings.from_table({"stop-timeout": 2, "pass-env": ["A"]}, "config")
        ... # doctest: +ELLIPSIS
        WorkerSettings(node='node', pass_env=('A',), start_timeout=30.0, stop_timeout=2.0, ...)
        >>> WorkerSettings.from_table({"stop-timeout": -1}, "config")
        Traceback (most recent call last):
        ...
        ValueError: config: [workers] stop-timeout must be a positive number
        """
        settings = from_table(cls, table, section="workers", where=where)
        if settings.backoff_max < settings.backoff_initial:
            raise ValueError(f"{where}: [workers] backoff-max is less than backoff-initial")
        return settings
