"""The filesystem broker (the single-machine default) never shows a worker half a message."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from config import broker


def _connection(folder: Path) -> Connection:
    return Connection(
        "filesystem://", transport_options={"data_folder_in": str(folder), "data_folder_out": str(folder)}
    )


def _send(folder: str, n: int) -> None:
    with _connection(Path(folder)) as conn:
        queue = conn.SimpleQueue("q")
        for i in range(n):
            queue.put({"i": i, "pad": "x" * 2000})


def test_filesystem_urls_use_the_transport_that_writes_messages_whole(tmp_path: Path) -> None:
    with _connection(tmp_path) as conn:
        assert isinstance(conn.transport, broker.Transport)


def test_a_message_appears_under_the_name_workers_take_only_once_it_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_before_rename: list[list[str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        seen_before_rename.append(sorted(p.name for p in tmp_path.iterdir()))
        assert Path(src).read_bytes().startswith(b"{") and Path(src).read_bytes().endswith(b"}")
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", replace)
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        queue.put({"hello": "world"})
        (names,) = seen_before_rename
        # only the partial file, under a name no worker takes
        assert len(names) == 1 and names[0].startswith(".") and not names[0].endswith(".msg")
        message = queue.get(timeout=1)
        assert message.payload == {"hello": "world"}
        message.ack()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_two_senders_and_a_reader_lose_and_break_no_message(tmp_path: Path) -> None:
    """kombu's own transport lost about one message in 6,000 here, and its reader died on it."""
    n = 1500
    ctx = multiprocessing.get_context("fork")
    senders = [ctx.Process(target=_send, args=(str(tmp_path), n)) for _ in range(2)]
    for p in senders:
        p.start()
    got: list[int] = []
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        while len(got) < 2 * n:
            message = queue.get(timeout=30)  # raises Empty if one went missing
            got.append(message.payload["i"])
            message.ack()
    for p in senders:
        p.join(timeout=30)
    assert sorted(got) == sorted([*range(n), *range(n)])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
