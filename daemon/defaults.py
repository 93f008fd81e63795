"""The default assistant, written into an empty root as the Jan app writes it."""

from __future__ import annotations

from typing import Any

from assistantd.protocol.ids import DEFAULT_ASSISTANT_ID


def default_assistant_document(created_at: int) -> dict[str, Any]:
    """Jan's own default assistant: any model, retrieval available but off."""
    return {
        "avatar": "",
        "id": DEFAULT_ASSISTANT_ID,
        "object": "assistant",
        "created_at": created_at,
        "name": "Jan",
        "description": "A default assistant that can use all downloaded models",
        "model": "*",
        "models": ["*"],
        "instructions": "",
        "tools": [
            {
                "type": "retrieval",
                "enabled": False,
                "useTimeWeightedRetriever": False,
                "settings": {"top_k": 2, "chunk_size": 1024, "chunk_overlap": 64},
            }
        ],
        "file_ids": [],
    }
