"""The floor for a cold start: read and JSON-parse every `<root>/<id>/assistant.json`, no more.

    python tests/bench/readall.py ROOT

Uses only the stdlib (json), keeps every parsed document (as an index would), and prints one line,
``<files parsed> <VmRSS in kB>``, once it is done: the benchmark times the process from its start
to that line, as it times the daemon from its start to its first answer.
"""

from __future__ import annotations

import json
import os
import sys


def read_all(root: str) -> list[object]:
    documents = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                with open(os.path.join(entry.path, "assistant.json"), "rb") as file:
                    documents.append(json.loads(file.read()))
            except FileNotFoundError:
                continue
    return documents


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    documents = read_all(sys.argv[1])
    print(len(documents), rss_kb(), flush=True)


if __name__ == "__main__":
    main()
