"""The sorted index, checked page by page against a brute-force reference on random data."""

from __future__ import annotations

import json
import random
from typing import Literal

import pytest

from assistantd.daemon.index import Entry, Index
from assistantd.daemon.store import Signature
from assistantd.protocol.assistant import Assistant
from assistantd.protocol.errors import InvalidRequestError

Order = Literal["asc", "desc"]
ORDERS: tuple[Order, ...] = ("asc", "desc")
LIMITS = range(1, 8)
SEEDS = range(12)


def entry(assistant_id: str, created_at: int, version: int = 0) -> Entry:
    return Entry(Assistant(id=assistant_id, created_at=created_at), Signature(version, 0, 0))


def random_entries(rng: random.Random) -> list[Entry]:
    """Up to 24 assistants, most sharing one of three `created_at` values."""
    alphabet = "abcAB_-9é"
    ids: set[str] = set()
    for _ in range(rng.randint(0, 24)):
        ids.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))))
    return [entry(assistant_id, rng.randint(0, 2)) for assistant_id in ids]


def build(entries: list[Entry], rng: random.Random) -> Index:
    index = Index()
    if rng.random() < 0.5:
        index.load(entries)
    else:
        for item in rng.sample(entries, len(entries)):
            index.put(item)
    return index


def reference(
    entries: list[Entry],
    order: Order,
    limit: int,
    after: str | None = None,
    before: str | None = None,
) -> tuple[list[str], bool]:
    """OpenAI's paging, by brute force: the whole order, then a cut."""
    ids = [
        e.assistant.id
        for e in sorted(entries, key=lambda e: (e.assistant.created_at, e.assistant.id))
    ]
    if order == "desc":
        ids.reverse()
    if after is not None:
        rest = ids[ids.index(after) + 1 :]
        return rest[:limit], len(rest) > limit
    if before is not None:
        prior = ids[: ids.index(before)]
        return prior[-limit:], len(prior) > limit
    return ids[:limit], len(ids) > limit


def ids_of(index: Index, **kwargs: object) -> tuple[list[str], bool]:
    page = index.page(**kwargs)  # type: ignore[arg-type]
    return [e.assistant.id for e in page.entries], page.has_more


@pytest.mark.parametrize("seed", SEEDS)
def test_pages_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    entries = random_entries(rng)
    index = build(entries, rng)
    assert len(index) == len(entries)
    cursors = [e.assistant.id for e in entries]
    for order in ORDERS:
        for limit in LIMITS:
            expected = reference(entries, order, limit)
            assert ids_of(index, limit=limit, order=order) == expected, (order, limit)
            for cursor in cursors:
                for side in ("after", "before"):
                    got = ids_of(index, limit=limit, order=order, **{side: cursor})
                    want = reference(entries, order, limit, **{side: cursor})  # type: ignore[arg-type]
                    assert got == want, (order, limit, side, cursor)


@pytest.mark.parametrize("seed", SEEDS)
def test_first_and_last_of_a_page(seed: int) -> None:
    rng = random.Random(seed)
    entries = random_entries(rng)
    if not entries:
        return
    index = build(entries, rng)
    for order in ORDERS:
        full, _ = reference(entries, order, len(entries))
        page = index.page(limit=3, order=order, after=full[0])
        got = [e.assistant.id for e in page.entries]
        assert got == full[1:4]
        if got:
            assert (got[0], got[-1]) == (full[1], full[min(3, len(full) - 1)])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("order", ORDERS)
def test_paging_forward_visits_every_assistant_once(seed: int, order: Order) -> None:
    rng = random.Random(seed)
    entries = random_entries(rng)
    index = build(entries, rng)
    everything, _ = reference(entries, order, len(entries) + 1)
    for limit in LIMITS:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            got, has_more = ids_of(index, limit=limit, order=order, after=cursor)
            pages += 1
            assert pages <= len(entries) + 1, "paging does not end"
            seen += got
            assert len(got) <= limit
            if not has_more:
                break
            assert len(got) == limit  # a short page means the end
            cursor = got[-1]
        assert seen == everything, limit
        assert pages == max(1, -(-len(entries) // limit))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("order", ORDERS)
def test_paging_backward_with_before_visits_every_assistant_once(seed: int, order: Order) -> None:
    rng = random.Random(seed)
    entries = random_entries(rng)
    index = build(entries, rng)
    everything, _ = reference(entries, order, len(entries) + 1)
    if not everything:
        return
    for limit in LIMITS:
        seen: list[str] = []
        cursor = everything[-1]
        for _ in range(len(entries) + 1):
            got, has_more = ids_of(index, limit=limit, order=order, before=cursor)
            seen = got + seen
            if not has_more:
                break
            cursor = got[0]
        else:
            pytest.fail("paging does not end")
        assert seen == everything[:-1], limit


def test_ties_on_created_at_are_broken_by_id() -> None:
    index = Index()
    index.load([entry(i, 100) for i in ("b", "c", "a")] + [entry("z", 50)])
    assert ids_of(index, limit=10, order="asc") == (["z", "a", "b", "c"], False)
    # desc reverses the whole key, the id included
    assert ids_of(index, limit=10, order="desc") == (["c", "b", "a", "z"], False)


def test_has_more_is_exact_at_the_edge() -> None:
    index = Index()
    index.load([entry(str(i), i) for i in range(4)])
    assert ids_of(index, limit=4, order="asc") == (["0", "1", "2", "3"], False)
    assert ids_of(index, limit=3, order="asc") == (["0", "1", "2"], True)
    assert ids_of(index, limit=3, order="desc") == (["3", "2", "1"], True)
    assert ids_of(index, limit=3, order="asc", after="0") == (["1", "2", "3"], False)
    assert ids_of(index, limit=2, order="asc", after="0") == (["1", "2"], True)
    assert ids_of(index, limit=2, order="asc", after="3") == ([], False)
    assert ids_of(index, limit=3, order="desc", after="3") == (["2", "1", "0"], False)
    assert ids_of(index, limit=3, order="asc", before="3") == (["0", "1", "2"], False)
    assert ids_of(index, limit=2, order="asc", before="3") == (["1", "2"], True)
    assert ids_of(index, limit=2, order="desc", before="0") == (["2", "1"], True)
    assert ids_of(index, limit=2, order="desc", before="3") == ([], False)


def test_empty_index() -> None:
    index = Index()
    for order in ORDERS:
        assert ids_of(index, limit=20, order=order) == ([], False)


@pytest.mark.parametrize("side", ["after", "before"])
def test_unknown_cursor_is_a_400(side: str) -> None:
    index = Index()
    index.load([entry("a", 1)])
    with pytest.raises(InvalidRequestError) as caught:
        index.page(limit=5, order="asc", **{side: "nobody"})  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400,
        side,
        "invalid_cursor",
    )


def test_after_and_before_together_is_a_400() -> None:
    index = Index()
    index.load([entry("a", 1), entry("b", 2)])
    with pytest.raises(InvalidRequestError) as caught:
        index.page(limit=5, order="asc", after="a", before="b")
    assert caught.value.status == 400
    assert caught.value.param in ("after", "before")


def test_a_removed_assistant_is_no_cursor() -> None:
    index = Index()
    index.load([entry("a", 1), entry("b", 2)])
    index.remove("a")
    with pytest.raises(InvalidRequestError):
        index.page(limit=5, order="asc", after="a")


def test_put_and_remove_keep_the_order_true() -> None:
    """Random puts (new ids, same key, changed `created_at`) and removes against a model."""
    rng = random.Random(1234)
    index = Index()
    model: dict[str, Entry] = {}
    pool = [f"id{i}" for i in range(30)]
    for step in range(600):
        assistant_id = rng.choice(pool)
        action = rng.random()
        if action < 0.25:
            removed = index.remove(assistant_id)
            assert removed is model.pop(assistant_id, None)
        else:
            created_at = rng.randint(0, 3)
            if action < 0.45 and assistant_id in model:
                created_at = model[assistant_id].assistant.created_at  # same key, new entry
            new = entry(assistant_id, created_at, version=step)
            index.put(new)
            model[assistant_id] = new
        assert len(index) == len(model)
        for order in ORDERS:
            got, has_more = ids_of(index, limit=len(pool) + 1, order=order)
            assert (got, has_more) == reference(list(model.values()), order, len(pool) + 1)
        for assistant_id, expected in model.items():
            assert index.get(assistant_id) is expected
            assert assistant_id in index
    assert {e.assistant.id for e in index} == set(model)


def test_put_moves_an_entry_whose_created_at_changed() -> None:
    index = Index()
    index.load([entry("a", 10), entry("b", 20), entry("c", 30)])
    index.put(entry("c", 5))
    assert ids_of(index, limit=10, order="asc") == (["c", "a", "b"], False)
    index.put(entry("c", 25))
    assert ids_of(index, limit=10, order="asc") == (["a", "b", "c"], False)
    assert ids_of(index, limit=10, order="asc", after="b") == (["c"], False)
    assert index.get("c") is not None
    assert index.get("c").assistant.created_at == 25  # type: ignore[union-attr]
    assert len(index) == 3


def test_remove_unknown_is_none() -> None:
    index = Index()
    index.load([entry("a", 1)])
    assert index.remove("zzz") is None
    assert len(index) == 1
    assert index.remove("a") is not None
    assert ids_of(index, limit=5, order="asc") == ([], False)
    assert "a" not in index


def test_entry_encoded_is_the_assistant_json() -> None:
    item = entry("ada", 7)
    decoded = json.loads(bytes(item.encoded))
    assert (decoded["id"], decoded["created_at"], decoded["object"]) == ("ada", 7, "assistant")
    assert item.encoded is item.encoded  # encoded once
