"""Folders of realistic assistants to benchmark with.

The content is shaped like what users and the Jan app write: a few hundred characters of
instructions, tools with Jan's extra keys, and ``created_at`` values shared by many assistants (a
bulk import stamps them all with one second), which is the case that tests the sort order's ties.
Some files are in older Jan forms: ``created_at`` in milliseconds, no ``id``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DEFAULT_ID = "jan"
_MODELS = ("llama3-8b-instruct", "mistral-7b-instruct", "gpt-4o-mini", "phi-3-mini", "*")
_ROLES = ("research", "writing", "code review", "support", "translation", "data", "planning")
_SENTENCES = (
    "You are a careful assistant that answers in plain language.",
    "Cite the documents you were given and say when you do not know.",
    "Keep answers short unless the user asks for detail.",
    "Ask one clarifying question when a request is ambiguous.",
    "Never invent file names, numbers or quotations.",
    "Format code in fenced blocks and explain what it changes.",
    "Prefer the user's terminology over your own.",
    "When a tool fails, say which one and what it returned.",
)
# Many assistants share one second: about this many per distinct `created_at`.
_SHARED_CREATED_AT = 40
_EPOCH = 1_700_000_000


def write_assistants(root: Path, count: int, *, seed: int = 2024) -> list[str]:
    """Write ``count`` assistant folders under ``root`` (``jan`` among them); return their ids."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [DEFAULT_ID] + [f"asst_{rng.getrandbits(96):024x}" for _ in range(count - 1)]
    for position, assistant_id in enumerate(ids):
        folder = root / assistant_id
        folder.mkdir()
        document = _document(rng, position, assistant_id)
        (folder / "assistant.json").write_text(json.dumps(document, indent=2) + "\n")
    return ids


def _document(rng: random.Random, position: int, assistant_id: str) -> dict[str, Any]:
    role = rng.choice(_ROLES)
    model = rng.choice(_MODELS)
    created_at: int | float = _EPOCH + (position // _SHARED_CREATED_AT) * 3600
    document: dict[str, Any] = {
        "id": assistant_id,
        "object": "assistant",
        "created_at": created_at,
        "name": f"{role.title()} helper {position}",
        "description": f"Helps with {role}: drafts, checks and summaries for the team.",
        "avatar": "",
        "model": model,
        "models": [model],
        "instructions": " ".join(rng.choices(_SENTENCES, k=rng.randint(4, 9))),
        "tools": [
            {
                "type": "retrieval",
                "enabled": rng.random() < 0.5,
                "useTimeWeightedRetriever": False,
                "settings": {"top_k": 2, "chunk_size": 1024, "chunk_overlap": 64},
            }
        ],
        "file_ids": [],
        "metadata": {"team": role, "revision": str(rng.randint(1, 9))},
    }
    if position % 10 == 3:
        # Older Jan versions wrote `Date.now()`: milliseconds, sometimes as a float.
        document["created_at"] = created_at * 1000.0
    if position % 20 == 7:
        del document["id"]  # the folder name is the id
    return document
