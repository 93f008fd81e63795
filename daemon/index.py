"""The in-memory index of assistants, ordered for paging.

Entries are kept in a dict by id and in one list sorted by ``(created_at, id)``, so a page is a
binary search plus a slice: O(log n + limit), whatever the number of assistants. Ties on
``created_at`` are broken by id, which makes the order total and paging with ``after`` visit every
assistant exactly once.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

import msgspec

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import encode
from assistantd.protocol.errors import InvalidRequestError

from .store import Signature

SortKey = tuple[int, str]


class Entry:
    """One assistant as served, with the version of the file it came from (None for one
    registered for download, which has no file yet)."""

    __slots__ = ("_encoded", "assistant", "signature")

    def __init__(self, assistant: Assistant, signature: Signature | None) -> None:
        self.assistant = assistant
        self.signature = signature
        self._encoded: msgspec.Raw | None = None

    @property
    def key(self) -> SortKey:
        return (self.assistant.created_at, self.assistant.id)

    @property
    def encoded(self) -> msgspec.Raw:
        """The assistant's JSON, encoded on first use and kept: replies splice it in as is."""
        if self._encoded is None:
            self._encoded = msgspec.Raw(encode(self.assistant))
        return self._encoded


class Page(NamedTuple):
    entries: list[Entry]
    has_more: bool


class Index:
    """Every valid assistant by id, and in ``(created_at, id)`` order."""

    def __init__(self) -> None:
        self._by_id: dict[str, Entry] = {}
        self._keys: list[SortKey] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, assistant_id: str) -> bool:
        return assistant_id in self._by_id

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._by_id.values())

    def in_order(self) -> list[Entry]:
        """Every entry, by ``(created_at, id)``."""
        by_id = self._by_id
        return [by_id[assistant_id] for _, assistant_id in self._keys]

    def get(self, assistant_id: str) -> Entry | None:
        return self._by_id.get(assistant_id)

    def load(self, entries: Iterable[Entry]) -> None:
        """Fill an empty index in one go (one sort rather than n insertions)."""
        self._by_id = {entry.assistant.id: entry for entry in entries}
        self._keys = sorted(entry.key for entry in self._by_id.values())

    def put(self, entry: Entry) -> None:
        """Add an entry or replace the one with the same id."""
        assistant_id = entry.assistant.id
        old = self._by_id.get(assistant_id)
        if old is not None and old.key != entry.key:
            self._remove_key(old.key)
            old = None
        self._by_id[assistant_id] = entry
        if old is None:
            bisect.insort(self._keys, entry.key)

    def remove(self, assistant_id: str) -> Entry | None:
        entry = self._by_id.pop(assistant_id, None)
        if entry is not None:
            self._remove_key(entry.key)
        return entry

    def _remove_key(self, key: SortKey) -> None:
        position = bisect.bisect_left(self._keys, key)
        del self._keys[position]

    def page(
        self,
        *,
        limit: int,
        order: Literal["asc", "desc"],
        after: str | None = None,
        before: str | None = None,
    ) -> Page:
        """One page of the listing, as OpenAI's ``list`` operations page.

        ``after`` gives the entries that follow the cursor in the chosen order, ``before`` the
        ``limit`` entries that come right before it (in the same order); ``has_more`` says
        whether there are more beyond the page in the direction of travel.
        """
        if after is not None and before is not None:
            raise InvalidRequestError(
                "Give at most one of 'after' and 'before'.", param="before", code="invalid_value"
            )
        keys, total = self._keys, len(self._keys)
        if after is not None:
            cursor = self._cursor_key(after, "after")
            if order == "asc":
                start = bisect.bisect_right(keys, cursor)
                selected, has_more = keys[start : start + limit], start + limit < total
            else:
                end = bisect.bisect_left(keys, cursor)
                start = max(0, end - limit)
                selected, has_more = keys[start:end][::-1], start > 0
        elif before is not None:
            cursor = self._cursor_key(before, "before")
            if order == "asc":
                end = bisect.bisect_left(keys, cursor)
                start = max(0, end - limit)
                selected, has_more = keys[start:end], start > 0
            else:
                start = bisect.bisect_right(keys, cursor)
                selected, has_more = keys[start : start + limit][::-1], start + limit < total
        elif order == "asc":
            selected, has_more = keys[:limit], limit < total
        else:
            selected, has_more = keys[max(0, total - limit) :][::-1], limit < total
        by_id = self._by_id
        return Page([by_id[assistant_id] for _, assistant_id in selected], has_more)

    def _cursor_key(self, assistant_id: str, param: str) -> SortKey:
        entry = self._by_id.get(assistant_id)
        if entry is None:
            raise InvalidRequestError(
                f"Invalid '{param}': no assistant with id {assistant_id!r} to page from.",
                param=param,
                code="invalid_cursor",
            )
        return entry.key
