"""Decision exports: streamed, the same rows as the database, the same from the page and the command."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.urls import reverse

from reviewapp.models import AuditEvent, Decision
from reviewapp.services.exports import HEADER, decision_rows, export_chunks
from reviewapp.tokens import token_hash

from .test_auditor import TOKEN, build_scene


@pytest.fixture
def scene(store, reviewer, other_reviewer, supervisor) -> Any:
    return build_scene(store, reviewer, other_reviewer, supervisor)


def page_export(client: Any, fmt: str, **params: Any) -> bytes:
    response = client.get(reverse(f"auditor:export-{fmt}"), params)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert "attachment" in response["Content-Disposition"]
    return b"".join(response.streaming_content)


def command_export(fmt: str, **options: Any) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out.{fmt}"
        call_command("export_decisions", format=fmt, out=str(out), stderr=io.StringIO(), **options)
        return out.read_bytes()


def expected_row(d: Decision) -> dict[str, Any]:
    return {
        "decision": str(d.code),
        "created_at": d.created_at.isoformat(timespec="microseconds"),
        "store": d.transaction.store.name,
        "transaction": str(d.transaction.code),
        "visit": d.transaction.visit.external_id,
        "token_last4": d.transaction.visit.token_last4,
        "reviewer": d.reviewer.username,
        "outcome": d.outcome,
        "amount_minor": d.amount,
        "currency": d.currency,
        "proposed_amount_minor": d.transaction.proposed_amount,
        "diff": d.diff,
        "note": d.note,
        "time_spent_ms": d.time_spent_ms,
        "by_supervisor": d.by_supervisor,
        "task_kind": d.task.kind,
        "undone_at": None,  # none of these was taken back (test_undo covers one that was)
    }


def test_the_page_streams_csv_rows_equal_to_the_database(client, auditor, scene) -> None:
    client.force_login(auditor)
    rows = list(csv.DictReader(io.StringIO(page_export(client, "csv").decode())))
    decisions = list(Decision.objects.order_by("id"))
    assert len(rows) == len(decisions) == 4
    for row, decision in zip(rows, decisions, strict=True):
        want = expected_row(decision)
        want.update(
            amount_minor=str(decision.amount),
            proposed_amount_minor=str(want["proposed_amount_minor"]),
            time_spent_ms=str(decision.time_spent_ms),
            by_supervisor="true" if decision.by_supervisor else "false",
            undone_at="",
        )
        assert json.loads(row.pop("diff")) == want.pop("diff")
        if decision.note.startswith("="):
            # a spreadsheet must not run it as a formula
            assert row["note"] == "'" + decision.note
            row["note"] = decision.note
        assert row == want


def test_the_page_streams_jsonl_rows_equal_to_the_database(client, auditor, scene) -> None:
    client.force_login(auditor)
    lines = page_export(client, "jsonl").decode().splitlines()
    decisions = list(Decision.objects.order_by("id"))
    assert [json.loads(line) for line in lines] == [expected_row(d) for d in decisions]
    assert list(json.loads(lines[0])) == list(HEADER)


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"outcome": "adjusted"}, 1),
        ({"reviewer": "rita"}, 2),
        ({"since": "2025-03-10"}, 3),
        ({"until": "2025-03-01"}, 1),
        ({"min_amount": "5"}, 2),
        ({"token": TOKEN}, 1),
        ({"token": "4242"}, 1),  # the look-alike card has no decision
    ],
)
def test_the_filters_apply_to_the_export(client, auditor, scene, params, count) -> None:
    client.force_login(auditor)
    assert len(page_export(client, "jsonl", **params).splitlines()) == count


def test_the_export_filters_by_store(client, auditor, scene) -> None:
    client.force_login(auditor)
    lines = page_export(client, "jsonl", store=str(scene.harbour.code)).splitlines()
    assert {json.loads(line)["store"] for line in lines} == {"Harbour"} and len(lines) == 2


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_command_writes_what_the_page_sends(client, auditor, scene, fmt) -> None:
    client.force_login(auditor)
    assert command_export(fmt) == page_export(client, fmt)
    assert command_export(fmt, store="Harbour", since="2025-03-15", outcome="voided") == page_export(
        client, fmt, store=str(scene.harbour.code), since="2025-03-15", outcome="voided"
    )
    assert command_export(fmt, token=TOKEN) == page_export(client, fmt, token_hash=token_hash(TOKEN))


def test_the_command_refuses_bad_filters(db) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since"):
        call_command("export_decisions", since="yesterday", out="-")


def test_an_export_is_an_audit_event(client, auditor, scene) -> None:
    client.force_login(auditor)
    page_export(client, "csv", outcome="adjusted", token=TOKEN)
    event = AuditEvent.objects.get(action="export.decisions")
    assert event.actor_id == auditor.id
    assert event.data["format"] == "csv" and event.data["via"] == "page"
    assert event.data["filters"] == {"outcome": "adjusted", "token_hash": token_hash(TOKEN)}
    assert TOKEN not in json.dumps(event.data)
    command_export("jsonl", store="Harbour")
    event = AuditEvent.objects.filter(action="export.decisions").latest("id")
    assert event.actor_label == "command:export_decisions" and event.actor_id is None
    assert event.data["filters"] == {"store": str(scene.harbour.code)} and event.store_id == scene.harbour.id


def test_keyset_pages_cover_every_row_once(scene) -> None:
    rows = list(decision_rows(filters={}, page_size=1))
    assert [r[0] for r in rows] == [
        str(code) for code in Decision.objects.order_by("id").values_list("code", flat=True)
    ]
    pages: list[int] = []
    chunks = list(export_chunks(filters={}, fmt="jsonl", page_size=3, on_page=pages.append))
    assert pages == [3, 1] and len(chunks) == 2


def test_an_empty_export_is_only_the_header(client, auditor, db) -> None:
    client.force_login(auditor)
    assert page_export(client, "csv") == (",".join(HEADER) + "\n").encode()
    assert page_export(client, "jsonl") == b""


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_pages_are_fetched_ahead_on_a_thread(
    store, reviewer, other_reviewer, supervisor
) -> None:
    import threading

    from django.db import connection

    build_scene(store, reviewer, other_reviewer, supervisor)
    assert not connection.in_atomic_block
    want = [str(code) for code in Decision.objects.order_by("id").values_list("code", flat=True)]
    assert [r[0] for r in decision_rows(filters={}, page_size=1)] == want
    rows = decision_rows(filters={}, page_size=1)
    next(rows)
    assert any(t.name == "export-prefetch" for t in threading.enumerate())
    rows.close()  # the client went away: the fetching thread stops
    assert not any(t.name == "export-prefetch" for t in threading.enumerate())
