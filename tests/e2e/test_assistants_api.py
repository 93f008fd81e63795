"""The Assistants API end to end: the Python clients against a real daemon and real files.

Three daemons are shared by the tests of this module, each on its own root: ``api`` (an empty
root, so just ``jan``, where each test works on assistants of its own), ``crowd`` (50 folders
written by hand, 45 of them with one ``created_at``, for ordering and paging) and ``jan_style``
(files as the Jan app and people write them, some broken). Tests that must stall or break a
daemon start their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from assistantd.client import (
    Assistant,
    AssistantdError,
    AsyncClient,
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from tests.e2e.helpers import log_mark, short_tmp, wait_for_new_log, write_json
from tests.utils import DaemonProcess, running_daemon, spawned_daemon


def on_disk(daemon: DaemonProcess, assistant_id: str) -> dict[str, Any]:
    document = json.loads((daemon.root / assistant_id / "assistant.json").read_bytes())
    assert isinstance(document, dict)
    return document


def as_dict(assistant: Assistant) -> dict[str, Any]:
    return msgspec.to_builtins(assistant)  # type: ignore[no-any-return]


def visible(root: Path) -> set[str]:
    return {name for name in os.listdir(root) if not name.startswith(".")}


# ============================================================================================
# create, get, modify, delete (one daemon, each test on its own assistants)
# ============================================================================================


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("api") / "assistants"
    root.mkdir()
    with running_daemon(root) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def client(api: DaemonProcess) -> Iterator[Client]:
    with Client(command=api.command, timeout=10) as client:
        yield client


def test_create_gives_a_random_asst_id_and_writes_the_file(
    api: DaemonProcess, client: Client
) -> None:
    before = time.time()
    created = client.create_assistant(
        name="Ada",
        description="Counts things",
        model="llama3",
        instructions="Be brief.",
        tools=[{"type": "code_interpreter"}],
        metadata={"team": "maths"},
        temperature=0.5,
    )
    after = time.time()
    assert re.fullmatch(r"asst_[A-Za-z0-9]{24}", created.id), created.id
    assert int(before) <= created.created_at <= after
    assert (created.object, created.state, created.name, created.model, created.models) == (
        "assistant",
        "ready",
        "Ada",
        "llama3",
        ["llama3"],
    )
    assert (created.tools, created.metadata, created.temperature) == (
        [{"type": "code_interpreter"}],
        {"team": "maths"},
        0.5,
    )
    document = on_disk(api, created.id)
    reply = as_dict(created)
    for field in (
        "id",
        "object",
        "created_at",
        "name",
        "description",
        "model",
        "models",
        "instructions",
        "tools",
        "metadata",
        "temperature",
    ):
        assert document[field] == reply[field], field
    assert "state" not in document, "the runtime state is not part of the definition"
    assert client.get_assistant(created.id) == created
    assert client.create_assistant(name="Ada").id != created.id


def test_create_with_a_given_id(api: DaemonProcess, client: Client) -> None:
    created = client.create_assistant(id="given-id", name="Given")
    assert (created.id, created.name, created.state) == ("given-id", "Given", "ready")
    assert on_disk(api, "given-id")["id"] == "given-id"
    assert client.get_assistant("given-id") == created


def test_create_on_a_taken_id_is_a_409_and_keeps_the_first(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="taken", name="First")
    first = (api.root / "taken" / "assistant.json").read_bytes()
    with pytest.raises(ConflictError) as caught:
        client.create_assistant(id="taken", name="Second")
    assert (caught.value.status, caught.value.param, caught.value.code) == (409, "id", "id_taken")
    assert (api.root / "taken" / "assistant.json").read_bytes() == first
    assert client.get_assistant("taken").name == "First"
    jan = (api.root / "jan" / "assistant.json").read_bytes()
    with pytest.raises(ConflictError):
        client.create_assistant(id="jan", name="Not Jan")
    assert (api.root / "jan" / "assistant.json").read_bytes() == jan


def test_create_on_a_name_taken_by_hand_is_a_409(api: DaemonProcess, client: Client) -> None:
    write_json(api.root / "handmade" / "assistant.json", {"name": "Mine"})
    (api.root / "loose-file").write_text("not a folder")
    (api.root / "dangling").symlink_to(api.root / "nowhere")
    for taken in ("handmade", "loose-file", "dangling"):
        with pytest.raises(ConflictError):
            client.create_assistant(id=taken, name="Theirs")
    assert on_disk(api, "handmade") == {"name": "Mine"}
    assert (api.root / "loose-file").read_text() == "not a folder"
    assert not (api.root / "nowhere").exists()


def test_get_the_default_assistant(client: Client) -> None:
    jan = client.get_assistant("jan")
    assert (jan.id, jan.object, jan.name, jan.model, jan.models, jan.state) == (
        "jan",
        "assistant",
        "Jan",
        "*",
        ["*"],
        "ready",
    )
    assert jan.tools
    assert jan.tools[0]["type"] == "retrieval"
    assert jan.tools[0]["enabled"] is False
    assert "settings" in jan.tools[0]


def test_get_an_unknown_id_is_a_404(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_assistant("nobody-here")
    assert (caught.value.status, caught.value.param) == (404, "assistant_id")


def test_modify_changes_only_the_given_fields(api: DaemonProcess, client: Client) -> None:
    created = client.create_assistant(
        id="partial", name="Name", description="Old", instructions="Stay.", metadata={"a": "1"}
    )
    modified = client.modify_assistant("partial", description="New")
    expected = {**as_dict(created), "description": "New"}
    assert as_dict(modified) == expected
    assert client.get_assistant("partial") == modified
    document = on_disk(api, "partial")
    assert (document["name"], document["description"], document["instructions"]) == (
        "Name",
        "New",
        "Stay.",
    )
    assert document["created_at"] == created.created_at


def test_modify_with_null_clears_a_nullable_field(api: DaemonProcess, client: Client) -> None:
    client.create_assistant(id="nullable", name="Named", description="Described", top_p=0.5)
    cleared = client.modify_assistant("nullable", name=None, description=None, top_p=None)
    assert (cleared.name, cleared.description, cleared.top_p) == ("nullable", None, None)
    assert client.get_assistant("nullable") == cleared
    document = on_disk(api, "nullable")
    assert document.get("description") is None
    assert document.get("top_p") is None


def test_modify_keeps_fields_unknown_to_the_daemon_exactly(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="custom", name="Custom")
    document = on_disk(api, "custom")
    extras = {
        "x-custom": {"nested": [1, 2.5, "é"]},
        "x-big": 2**70,
        "x-null": None,
        "x-float": 0.1,
        "x-empty": {},
    }
    write_json(api.root / "custom" / "assistant.json", {**document, **extras})
    assert client.get_assistant("custom").name == "Custom"
    client.modify_assistant("custom", name="Changed")
    client.modify_assistant("custom", metadata={"k": "v"}, tools=[{"type": "retrieval"}])
    after = on_disk(api, "custom")
    for key, value in extras.items():
        assert key in after, key
        assert after[key] == value, key
        assert type(after[key]) is type(value), key
    assert after["x-custom"]["nested"][0] == 1
    assert isinstance(after["x-custom"]["nested"][1], float)
    assert (after["name"], after["metadata"]) == ("Changed", {"k": "v"})


@pytest.mark.parametrize(
    ("fields", "model", "models"),
    [
        ({}, "*", ["*"]),
        ({"model": "llama3"}, "llama3", ["llama3"]),
        ({"models": ["a", "b"]}, "a", ["a", "b"]),
        ({"model": ["a", "b"]}, "a", ["a", "b"]),  # the Jan spec's create example
        ({"model": "b", "models": ["a"]}, "b", ["b", "a"]),
        ({"model": "b", "models": ["a", "b"]}, "b", ["a", "b"]),
    ],
)
def test_model_and_models(
    client: Client, fields: dict[str, Any], model: str, models: list[str]
) -> None:
    created = client.create_assistant(**fields)
    assert (created.model, created.models) == (model, models)
    modified = client.modify_assistant(created.id, model="gpt-4o")
    assert modified.model == "gpt-4o"
    assert "gpt-4o" in modified.models


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"models": []}, "models", "array_below_min_length"),
        ({"model": ["a"], "models": ["b"]}, "model", "invalid_value"),
        ({"name": "n" * 257}, "name", "string_above_max_length"),
        ({"description": "d" * 513}, "description", "string_above_max_length"),
        ({"instructions": "i" * 256_001}, "instructions", "string_above_max_length"),
        ({"tools": [{"type": "retrieval"}] * 129}, "tools", "array_above_max_length"),
        ({"tools": [{"enabled": True}]}, "tools[0].type", "missing_required_parameter"),
        (
            {"metadata": {str(n): "v" for n in range(17)}},
            "metadata",
            "object_above_max_properties",
        ),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": -0.1}, "top_p", "decimal_below_min_value"),
    ],
)
def test_a_value_over_a_limit_is_a_400_naming_the_field(
    api: DaemonProcess, client: Client, fields: dict[str, Any], param: str, code: str
) -> None:
    before = visible(api.root)
    with pytest.raises(InvalidRequestError) as caught:
        client.create_assistant(**fields)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)
    assert visible(api.root) == before, "a refused create left a folder"
    # The same values are refused by modify, which then leaves the file as it was.
    client.create_assistant(id=f"limits-{param}-{code}", name="Within")
    document = on_disk(api, f"limits-{param}-{code}")
    with pytest.raises(InvalidRequestError) as caught:
        client.modify_assistant(f"limits-{param}-{code}", **fields)
    assert caught.value.param == param
    assert on_disk(api, f"limits-{param}-{code}") == document


@pytest.mark.parametrize(
    ("field", "value"), [("id", "renamed"), ("created_at", 1), ("object", "assistant.deleted")]
)
def test_id_created_at_and_object_cannot_be_changed(
    api: DaemonProcess, client: Client, field: str, value: Any
) -> None:
    assistant_id = f"fixed-{field}"
    created = client.create_assistant(id=assistant_id, name="Fixed")
    document = on_disk(api, assistant_id)
    with pytest.raises(InvalidRequestError) as caught:
        client.request("modifyAssistant", {"assistant_id": assistant_id, field: value})
    assert (caught.value.status, caught.value.param) == (400, field)
    assert on_disk(api, assistant_id) == document
    assert client.get_assistant(assistant_id) == created
    assert not (api.root / "renamed").exists()


def test_modify_an_unknown_id_is_a_404(api: DaemonProcess, client: Client) -> None:
    with pytest.raises(NotFoundError):
        client.modify_assistant("nobody-to-modify", name="x")
    assert not (api.root / "nobody-to-modify").exists()


def test_delete_removes_the_folder(api: DaemonProcess, client: Client) -> None:
    client.create_assistant(id="doomed", name="Doomed")
    deleted = client.request("deleteAssistant", {"assistant_id": "doomed"})
    assert deleted == {
        "id": "doomed",
        "object": "assistant.deleted",
        "deleted": True,
        "state": "to_download",
    }
    assert not (api.root / "doomed").exists()
    assert not any(name.startswith("doomed") for name in os.listdir(api.root / ".trash")), (
        "the deleted folder was left in the trash"
    )
    with pytest.raises(NotFoundError):
        client.get_assistant("doomed")
    with pytest.raises(NotFoundError):
        client.delete_assistant("doomed")
    assert "doomed" not in {a.id for a in client.iter_assistants()}
    # The id is free again.
    assert client.create_assistant(id="doomed", name="Again").name == "Again"


def test_deleting_the_default_assistant_is_refused(api: DaemonProcess, client: Client) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        client.delete_assistant("jan")
    assert caught.value.status == 403
    assert "jan" in caught.value.message
    assert (api.root / "jan" / "assistant.json").is_file()
    assert client.get_assistant("jan").id == "jan"


def test_a_folder_removed_by_hand_between_list_and_get_is_a_404(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="vanishing", name="Vanishing")
    assert "vanishing" in {a.id for a in client.iter_assistants()}
    shutil.rmtree(api.root / "vanishing")
    with pytest.raises(NotFoundError):
        client.get_assistant("vanishing")
    with pytest.raises(NotFoundError):
        client.modify_assistant("vanishing", name="Back?")
    with pytest.raises(NotFoundError):
        client.delete_assistant("vanishing")
    assert not (api.root / "vanishing").exists()
    assert "vanishing" not in {a.id for a in client.iter_assistants()}


def test_a_file_edited_by_hand_is_served_by_the_next_get(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="edited", name="AAAA")
    path = api.root / "edited" / "assistant.json"
    assert client.get_assistant("edited").name == "AAAA"
    # In place and to the same size, as some editors and scripts write. The mtime is moved
    # on explicitly: on kernels with coarse (per-tick) timestamps an edit within a few ms of
    # the daemon's own write could keep the same mtime, and this test is not about that race.
    written = path.stat()
    with path.open("r+b") as file:
        content = file.read()
        file.seek(0)
        file.write(content.replace(b'"AAAA"', b'"BBBB"'))
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns + 1_000_000_000))
    assert path.stat().st_size == written.st_size
    assert client.get_assistant("edited").name == "BBBB"
    # Replaced whole, with new content.
    write_json(path, {**json.loads(path.read_bytes()), "name": "By hand", "description": "d"})
    edited = client.get_assistant("edited")
    assert (edited.name, edited.description) == ("By hand", "d")
    # A modify starts from the file as it is now, not from what the daemon served before.
    modified = client.modify_assistant("edited", instructions="Hello")
    assert (modified.name, modified.description, modified.instructions) == (
        "By hand",
        "d",
        "Hello",
    )


def test_a_file_broken_by_hand_keeps_the_last_good_version_served(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="breakable", name="Good")
    path = api.root / "breakable" / "assistant.json"
    good = path.read_bytes()
    mark = log_mark(api)
    path.write_text("{ this is not json")
    assert client.get_assistant("breakable").name == "Good"
    line = wait_for_new_log(api, mark, lambda line: line.get("path") == str(path))
    assert line["level"] == "warning", line
    assert line.get("reason"), line
    with pytest.raises(AssistantdError) as caught:
        client.modify_assistant("breakable", name="Over a broken file")
    assert caught.value.status == 409
    assert path.read_text() == "{ this is not json", "a modify overwrote a file it could not read"
    path.write_bytes(good.replace(b'"Good"', b'"Fixed"'))
    assert client.get_assistant("breakable").name == "Fixed"


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_file_nested_too_deeply_by_hand_keeps_the_last_good_version(
    api: DaemonProcess, client: Client
) -> None:
    client.create_assistant(id="deep-by-hand", name="Good")
    path = api.root / "deep-by-hand" / "assistant.json"
    path.write_bytes(b'{"name": "Deep", "x": ' + DEEP + b"}")
    # Too deep to read is broken like any other unreadable file: not a 500.
    assert client.get_assistant("deep-by-hand").name == "Good"
    with pytest.raises(ConflictError):
        client.modify_assistant("deep-by-hand", name="Over a deep file")
    assert path.read_bytes().startswith(b'{"name": "Deep"')


# -- many clients at once ---------------------------------------------------------------------

FIELD_CHANGES: list[dict[str, Any]] = [
    {"name": "Renamed"},
    {"description": "Described"},
    {"instructions": "Instructed"},
    {"metadata": {"k": "v"}},
    {"temperature": 0.25},
    {"top_p": 0.5},
    {"avatar": "avatar.png"},
    {"thread_location": "threads"},
    {"tools": [{"type": "retrieval", "enabled": True}]},
    {"file_ids": ["file-1"]},
    {"response_format": "auto"},
    {"tool_resources": {"code_interpreter": {"file_ids": []}}},
    {"model": "llama3"},
]


def _applied(assistant: Assistant) -> int:
    served = as_dict(assistant)
    return sum(all(served[k] == v for k, v in change.items()) for change in FIELD_CHANGES)


async def test_concurrent_modifies_of_different_fields_lose_no_update(
    api: DaemonProcess,
) -> None:
    async with AsyncClient(command=api.command) as setup:
        await setup.create_assistant(id="many-fields", name="Start")
    clients = [AsyncClient(command=api.command) for _ in FIELD_CHANGES]
    try:
        replies = await asyncio.gather(
            *(
                each.modify_assistant("many-fields", **change)
                for each, change in zip(clients, FIELD_CHANGES, strict=True)
            )
        )
        final = await clients[0].get_assistant("many-fields")
    finally:
        for each in clients:
            await each.close()
    # Each modify reads the file its predecessor wrote: the k-th write holds k changes.
    assert sorted(_applied(reply) for reply in replies) == list(range(1, len(FIELD_CHANGES) + 1))
    last = max(replies, key=_applied)
    assert final == last
    document = on_disk(api, "many-fields")
    served = as_dict(final)
    for change in FIELD_CHANGES:
        for key, value in change.items():
            assert document[key] == value == served[key], key


async def test_fifty_concurrent_modifies_of_one_field_leave_one_whole_version(
    api: DaemonProcess,
) -> None:
    async with AsyncClient(command=api.command) as setup:
        await setup.create_assistant(id="contended", name="Start")
    path = api.root / "contended" / "assistant.json"
    write_json(path, {**json.loads(path.read_bytes()), "x-keep": {"nested": [1, 2.5, "é"]}})
    clients = [AsyncClient(command=api.command) for _ in range(10)]

    async def writer(n: int) -> Assistant:
        return await clients[n % len(clients)].modify_assistant(
            "contended", name=f"writer-{n}", description=f"by {n}", metadata={"writer": str(n)}
        )

    try:
        replies = await asyncio.gather(*(writer(n) for n in range(50)))
        final = await clients[0].get_assistant("contended")
    finally:
        for each in clients:
            await each.close()
    assert sorted(reply.name or "" for reply in replies) == sorted(f"writer-{n}" for n in range(50))
    document = json.loads(path.read_bytes())  # valid JSON, not a torn write
    writer_n = document["metadata"]["writer"]
    assert (document["name"], document["description"]) == (f"writer-{writer_n}", f"by {writer_n}")
    assert document["x-keep"] == {"nested": [1, 2.5, "é"]}
    (last,) = [reply for reply in replies if reply.name == document["name"]]
    assert final == last
    assert not [name for name in os.listdir(path.parent) if name.endswith(".tmp")]


async def test_concurrent_creates_of_one_id_let_exactly_one_win(api: DaemonProcess) -> None:
    clients = [AsyncClient(command=api.command) for _ in range(12)]
    try:
        outcomes = await asyncio.gather(
            *(
                each.create_assistant(id="contested", name=f"creator-{n}")
                for n, each in enumerate(clients)
            ),
            return_exceptions=True,
        )
    finally:
        for each in clients:
            await each.close()
    winners = [outcome for outcome in outcomes if isinstance(outcome, Assistant)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, Assistant)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(loser, ConflictError) and loser.status == 409 for loser in losers)
    assert on_disk(api, "contested")["name"] == winners[0].name
    assert winners[0].state == "ready"
    assert not os.listdir(api.root / ".staging"), "a losing create left a staged folder"


async def test_concurrent_creates_and_deletes(api: DaemonProcess) -> None:
    clients = [AsyncClient(command=api.command) for _ in range(6)]
    try:
        created = await asyncio.gather(
            *(clients[n % 6].create_assistant(name=f"bulk-{n}") for n in range(30))
        )
        assert len({a.id for a in created}) == 30
        assert all((api.root / a.id / "assistant.json").is_file() for a in created)
        assert all(a.state == "ready" for a in created)
        target = created[0].id
        outcomes = await asyncio.gather(
            *(each.delete_assistant(target) for each in clients), return_exceptions=True
        )
    finally:
        for each in clients:
            await each.close()
    deleted = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert len(deleted) == 1, outcomes
    assert all(isinstance(outcome, NotFoundError) for outcome in outcomes if outcome not in deleted)
    assert not (api.root / target).exists()


# ============================================================================================
# listing and paging (50 folders written by hand before the daemon starts)
# ============================================================================================

SHARED_CREATED_AT = 1_700_000_000


def _crowd() -> dict[str, int]:
    """id -> created_at: 45 ids sharing one created_at (in no particular order of their
    names), 4 earlier and one later."""
    crowd = {f"a{(n * 37) % 101:03d}": SHARED_CREATED_AT for n in range(45)}
    crowd.update({f"early-{n}": SHARED_CREATED_AT - 1000 + n for n in range(4)})
    crowd["zz-late"] = SHARED_CREATED_AT + 1
    crowd["b-late-too"] = SHARED_CREATED_AT + 1
    return crowd


CROWD = _crowd()
ASC = [assistant_id for _, assistant_id in sorted((t, i) for i, t in CROWD.items())]
DESC = ASC[::-1]


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    root = tmp_path_factory.mktemp("crowd") / "assistants"
    for assistant_id, created_at in CROWD.items():
        write_json(root / assistant_id / "assistant.json", {"created_at": created_at})
    with running_daemon(root) as daemon, Client(command=daemon.command, timeout=10) as client:
        assert not (root / "jan").exists(), "jan is written into an empty root only"
        yield client


def test_list_defaults_to_20_newest_first(crowd: Client) -> None:
    page = crowd.list_assistants()
    assert page.object == "list"
    assert [a.id for a in page.data] == DESC[:20]
    assert (page.first_id, page.last_id, page.has_more) == (DESC[0], DESC[19], True)
    assert all(a.state == "ready" for a in page.data)


def test_list_in_ascending_order(crowd: Client) -> None:
    page = crowd.list_assistants(order="asc", limit=30)
    assert [a.id for a in page.data] == ASC[:30]
    assert (page.first_id, page.last_id, page.has_more) == (ASC[0], ASC[29], True)


@pytest.mark.parametrize("limit", [1, 49, 50, 100])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_list_limit_and_has_more(crowd: Client, limit: int, order: str) -> None:
    page = crowd.request("listAssistants", {"limit": limit, "order": order})
    expected = (ASC if order == "asc" else DESC)[:limit]
    assert [a["id"] for a in page["data"]] == expected
    assert page["has_more"] is (limit < len(CROWD))
    assert (page["first_id"], page["last_id"]) == (expected[0], expected[-1])


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        (0, "integer_below_min_value"),
        (-1, "integer_below_min_value"),
        (101, "integer_above_max_value"),
    ],
)
def test_list_limit_out_of_bounds_is_a_400(crowd: Client, limit: int, code: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        crowd.list_assistants(limit=limit)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, "limit", code)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_with_after_visits_each_assistant_once(crowd: Client, order: str) -> None:
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = crowd.list_assistants(limit=7, order=order, after=after)  # type: ignore[arg-type]
        pages += 1
        assert len(page.data) == (7 if page.has_more else len(CROWD) - len(seen))
        seen += [a.id for a in page.data]
        if not page.has_more:
            break
        after = page.last_id
        assert pages < 20, "paging does not end"
    assert seen == (ASC if order == "asc" else DESC)
    assert pages == -(-len(CROWD) // 7)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_with_before_visits_each_assistant_once(crowd: Client, order: str) -> None:
    expected = ASC if order == "asc" else DESC
    cursor = expected[-1]
    seen: list[str] = []
    while True:
        page = crowd.list_assistants(limit=7, order=order, before=cursor)  # type: ignore[arg-type]
        ids = [a.id for a in page.data]
        # A page before the cursor is in the same order, and ends right before it.
        assert ids == expected[expected.index(cursor) - len(ids) : expected.index(cursor)]
        seen = ids + seen
        if not page.has_more:
            break
        assert page.first_id is not None
        cursor = page.first_id
    assert seen == expected[:-1]


def test_an_unknown_cursor_is_a_400(crowd: Client) -> None:
    for param in ("after", "before"):
        with pytest.raises(InvalidRequestError) as caught:
            crowd.request("listAssistants", {param: "nobody"})
        assert (caught.value.status, caught.value.param) == (400, param)
    with pytest.raises(InvalidRequestError):
        crowd.list_assistants(after=ASC[3], before=ASC[9])


def test_iterating_visits_every_assistant(crowd: Client) -> None:
    assert [a.id for a in crowd.iter_assistants(page_size=7)] == DESC
    assert [a.id for a in crowd.iter_assistants(order="asc", page_size=100)] == ASC


# ============================================================================================
# loading files as Jan and people write them
# ============================================================================================

JAN_TOOL = {
    "type": "retrieval",
    "enabled": True,
    "useTimeWeightedRetriever": False,
    "settings": {"top_k": 2, "chunk_size": 1024, "chunk_overlap": 64, "retrieval_template": "t"},
}
JAN_FILES: dict[str, Any] = {
    # Jan's own default assistant, as older Jan versions wrote it (ms, `model` only, no id).
    "jan": {
        "avatar": "",
        "object": "assistant",
        "created_at": 1_700_000_000_123,
        "name": "Jan",
        "description": "A default assistant that can use all downloaded models",
        "model": "*",
        "instructions": "",
        "tools": [JAN_TOOL],
        "file_ids": [],
    },
    "float-seconds": {"name": "Float", "created_at": 1_700_000_001.75, "models": ["*"]},
    "float-millis": {"created_at": 1_700_000_002_345.5},
    "other-id": {"id": "not-the-folder", "name": "Mismatch", "created_at": 1_700_000_003},
    "model-list": {"model": ["llama3", "mistral"], "created_at": 1_700_000_004},
    "bare": {},
}
BARE_MTIME = 1_650_000_000
BROKEN_FILES = {
    "broken": b"{ not json",
    "empty-file": b"",
    "array": b"[]",
    "invalid-name": b'{"name": 42}',
    "tool-without-type": b'{"tools": [{"enabled": true}]}',
    "negative-time": b'{"created_at": -5}',
}


@pytest.fixture(scope="module")
def jan_style(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    base = tmp_path_factory.mktemp("jan-style")
    root = base / "assistants"
    for assistant_id, document in JAN_FILES.items():
        write_json(root / assistant_id / "assistant.json", document)
    os.utime(root / "bare" / "assistant.json", (BARE_MTIME, BARE_MTIME + 0.5))
    for assistant_id, content in BROKEN_FILES.items():
        (root / assistant_id).mkdir()
        (root / assistant_id / "assistant.json").write_bytes(content)
    (root / "no-definition").mkdir()
    (root / "no-definition" / "README.md").write_text("not an assistant")
    write_json(root / ".hidden" / "assistant.json", {"name": "Hidden"})
    write_json(base / "outside" / "assistant.json", {"name": "Outside"})
    (root / "linked").symlink_to(base / "outside", target_is_directory=True)
    (root / "notes.txt").write_text("a loose file")
    with running_daemon(root) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def jan_client(jan_style: DaemonProcess) -> Iterator[Client]:
    with Client(command=jan_style.command, timeout=10) as client:
        yield client


def test_every_valid_folder_is_loaded_and_nothing_else(
    jan_style: DaemonProcess, jan_client: Client
) -> None:
    assert {a.id for a in jan_client.iter_assistants()} == set(JAN_FILES)
    ready = jan_style.wait_for_log(lambda line: line.get("event") == "ready")
    assert ready["assistants"] == len(JAN_FILES)
    for hidden in (".hidden", "linked", "no-definition", "broken"):
        with pytest.raises(AssistantdError) as caught:
            jan_client.get_assistant(hidden)
        assert caught.value.status in (400, 404)


def test_a_jan_default_file_loads_with_its_tool_settings(
    jan_style: DaemonProcess, jan_client: Client
) -> None:
    jan = jan_client.get_assistant("jan")
    assert (jan.id, jan.name, jan.created_at, jan.model, jan.models, jan.state) == (
        "jan",
        "Jan",
        1_700_000_000,
        "*",
        ["*"],
        "ready",
    )
    assert jan.tools == [JAN_TOOL]
    assert on_disk(jan_style, "jan") == JAN_FILES["jan"], "an existing jan was rewritten"


@pytest.mark.parametrize(
    ("assistant_id", "created_at"),
    [("float-seconds", 1_700_000_001), ("float-millis", 1_700_000_002), ("bare", BARE_MTIME)],
)
def test_created_at_in_any_unit_is_unix_seconds(
    jan_client: Client, assistant_id: str, created_at: int
) -> None:
    assert jan_client.get_assistant(assistant_id).created_at == created_at


def test_the_folder_name_is_the_id(jan_client: Client) -> None:
    other = jan_client.get_assistant("other-id")
    assert (other.id, other.name) == ("other-id", "Mismatch")
    with pytest.raises(NotFoundError):
        jan_client.get_assistant("not-the-folder")


def test_a_file_with_no_fields_gets_the_defaults(jan_client: Client) -> None:
    bare = jan_client.get_assistant("bare")
    assert as_dict(bare) == {
        **as_dict(Assistant(id="bare", created_at=BARE_MTIME)),
        "name": "bare",
        "state": "ready",
    }


def test_a_model_list_from_the_jan_spec_loads(jan_client: Client) -> None:
    listed = jan_client.get_assistant("model-list")
    assert (listed.model, listed.models) == ("llama3", ["llama3", "mistral"])


@pytest.mark.parametrize("assistant_id", sorted(BROKEN_FILES))
def test_a_broken_or_invalid_file_is_skipped_with_a_warning_naming_it(
    jan_style: DaemonProcess, jan_client: Client, assistant_id: str
) -> None:
    path = str(jan_style.root / assistant_id / "assistant.json")
    line = jan_style.wait_for_log(lambda line: line.get("path") == path)
    assert line["level"] == "warning", line
    assert line.get("reason"), line
    with pytest.raises(NotFoundError):
        jan_client.get_assistant(assistant_id)


def test_modifying_a_file_without_created_at_keeps_its_created_at(
    jan_style: DaemonProcess, jan_client: Client
) -> None:
    modified = jan_client.modify_assistant("bare", description="Now described")
    assert modified.created_at == BARE_MTIME
    assert on_disk(jan_style, "bare")["created_at"] == BARE_MTIME
    assert jan_client.get_assistant("bare").created_at == BARE_MTIME


# -- special files ----------------------------------------------------------------------------


def test_a_file_nested_too_deeply_does_not_stop_the_start(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    write_json(root / "good" / "assistant.json", {"name": "Good"})
    (root / "deep").mkdir()
    (root / "deep" / "assistant.json").write_bytes(b'{"x": ' + DEEP + b"}")
    with running_daemon(root) as daemon, Client(command=daemon.command, timeout=5) as client:
        assert {a.id for a in client.iter_assistants()} == {"good"}
        path = str(root / "deep" / "assistant.json")
        assert daemon.wait_for_log(lambda line: line.get("path") == path)["level"] == "warning"


def test_a_fifo_in_place_of_a_definition_does_not_stall_the_start(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    write_json(root / "good" / "assistant.json", {"name": "Good"})
    (root / "pipe").mkdir()
    os.mkfifo(root / "pipe" / "assistant.json")
    with (
        short_tmp() as runtime_dir,
        spawned_daemon(
            ("--root", str(root), "--runtime-dir", str(runtime_dir), "--log-format", "json"),
            env=os.environ,
            root=root,
            runtime_dir=runtime_dir,
            ready_timeout=5,
            stop_timeout=3,
        ) as daemon,
        Client(command=daemon.command, timeout=5) as client,
    ):
        assert {a.id for a in client.iter_assistants()} == {"good"}
        daemon.wait_for_log(lambda line: line.get("path") == str(root / "pipe" / "assistant.json"))


def test_a_definition_replaced_by_a_fifo_does_not_stall_the_daemon(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    root.mkdir()
    with (
        short_tmp() as runtime_dir,
        spawned_daemon(
            ("--root", str(root), "--runtime-dir", str(runtime_dir), "--log-format", "json"),
            env=os.environ,
            root=root,
            runtime_dir=runtime_dir,
            stop_timeout=3,
        ) as daemon,
        Client(command=daemon.command, timeout=3) as client,
    ):
        client.create_assistant(id="piped", name="Piped")
        path = root / "piped" / "assistant.json"
        path.unlink()
        os.mkfifo(path)
        try:
            outcome: object = client.get_assistant("piped").name
        except AssistantdError as error:
            outcome = error
        assert outcome == "Piped" or getattr(outcome, "status", None) == 404, outcome
        assert client.ping().protocol_version == 1
