"""The auditor's pages: search by each filter, a transaction's history, chain verification, access."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from reviewapp.models import (
    Camera,
    Charge,
    Clip,
    Decision,
    EvidenceEvent,
    Footage,
    Product,
    ProposedLine,
    ReviewTask,
    Store,
    Transaction,
    Visit,
    WebhookDelivery,
)
from reviewapp.services.audit import audit_record, audit_seal
from reviewapp.tokens import token_hash, token_last4

from .test_audit_log import tampering

TOKEN = "pm_live_5551234242"
LOOKALIKE_TOKEN = "pm_other_9994242"  # same last four


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


@dataclass
class Scene:
    store: Store
    harbour: Store
    t1: Transaction  # Corner Shop, 1 March, approved by rita, 5.00, TOKEN
    t2: Transaction  # Corner Shop, 10 March, adjusted by oscar, 12.00
    t3: Transaction  # Harbour, 20 March, escalated by rita then voided by sue
    t4: Transaction  # Harbour, 21 March, no decision yet, LOOKALIKE_TOKEN
    decisions: list[Decision]


def make_txn(
    store: Store, token: str, created: datetime, state: str, proposed: int, final: int | None
) -> Any:
    visit = Visit.objects.create(
        store=store,
        external_id=f"ext-{created:%d}",
        token_hash=token_hash(token),
        token_last4=token_last4(token),
        entered_at=created - timedelta(minutes=10),
        exited_at=created - timedelta(minutes=2),
    )
    txn = Transaction.objects.create(
        store=store,
        visit=visit,
        state=state,
        currency=store.currency,
        proposed_amount=proposed,
        final_amount=final,
        confidence=0.7,
    )
    Transaction.objects.filter(pk=txn.pk).update(created_at=created)
    txn.refresh_from_db()
    return txn


def decide(txn: Any, who: Any, outcome: str, amount: int, when: datetime, **extra: Any) -> Decision:
    task = ReviewTask.objects.create(
        transaction=txn,
        kind=extra.pop("kind", "primary"),
        state="done",
        settle_by=when + timedelta(hours=1),
        assignee=who,
        done_at=when,
    )
    decision = Decision.objects.create(
        task=task,
        transaction=txn,
        reviewer=who,
        outcome=outcome,
        amount=amount,
        currency=txn.currency,
        **extra,
    )
    Decision.objects.filter(pk=decision.pk).update(created_at=when)
    decision.refresh_from_db()
    return decision


def build_scene(store: Store, reviewer: Any, other_reviewer: Any, supervisor: Any) -> Scene:
    harbour = Store.objects.create(name="Harbour", currency="EUR")
    t1 = make_txn(store, TOKEN, at(1), "settled", 500, 500)
    t2 = make_txn(store, "pm_live_0000000001", at(10), "settled", 900, 1200)
    t3 = make_txn(harbour, "pm_live_0000000002", at(20), "voided", 800, 0)
    t4 = make_txn(harbour, LOOKALIKE_TOKEN, at(21), "needs_review", 300, None)
    decisions = [
        decide(t1, reviewer, "approved", 500, at(1, 13), time_spent_ms=4100, note="ok"),
        decide(
            t2,
            other_reviewer,
            "adjusted",
            1200,
            at(10, 13),
            diff=[{"sku": "B", "proposed": 1, "final": 2, "reason": "wrong_quantity"}],
            note='=HYPERLINK("x"), with a comma\nand a second line',
            time_spent_ms=20500,
        ),
        decide(t3, reviewer, "escalated", 0, at(20, 13), note="cannot tell"),
        decide(t3, supervisor, "voided", 0, at(20, 15), kind="escalation", by_supervisor=True),
    ]
    return Scene(store, harbour, t1, t2, t3, t4, decisions)


@pytest.fixture
def scene(store, reviewer, other_reviewer, supervisor) -> Scene:
    return build_scene(store, reviewer, other_reviewer, supervisor)


def listed(client: Any, **params: Any) -> list[str]:
    response = client.get(reverse("auditor:search"), params)
    assert response.status_code == 200, response.content[:500]
    return [txn.visit.external_id for txn in response.context["rows"]]


# --------------------------------------------------------------------------- search


def test_it_lists_the_newest_transactions_without_filters(client, auditor, scene) -> None:
    client.force_login(auditor)
    assert listed(client) == ["ext-21", "ext-20", "ext-10", "ext-01"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2025-03-10"}, ["ext-21", "ext-20", "ext-10"]),
        ({"until": "2025-03-10"}, ["ext-10", "ext-01"]),
        ({"since": "2025-03-02", "until": "2025-03-20"}, ["ext-20", "ext-10"]),
        ({"reviewer": "oscar"}, ["ext-10"]),
        ({"reviewer": "rita"}, ["ext-20", "ext-01"]),
        ({"outcome": "voided"}, ["ext-20"]),
        ({"reviewer": "rita", "outcome": "voided"}, []),  # both on one decision
        ({"min_amount": "5.00"}, ["ext-10", "ext-01"]),
        ({"max_amount": "5"}, ["ext-21", "ext-20", "ext-01"]),
        ({"min_amount": "3", "max_amount": "8.50"}, ["ext-21", "ext-01"]),
        ({"token": "4242"}, ["ext-21", "ext-01"]),
    ],
)
def test_it_filters(client, auditor, scene, params, expected) -> None:
    client.force_login(auditor)
    assert listed(client, **params) == expected


def test_it_filters_by_store(client, auditor, scene) -> None:
    client.force_login(auditor)
    assert listed(client, store=str(scene.harbour.code)) == ["ext-21", "ext-20"]


def test_it_finds_a_transaction_by_its_code_its_short_code_or_its_visits_id(client, auditor, scene) -> None:
    """What a dispute arrives with: the 8 characters a reviewer or a dashboard showed, the whole
    code, or the store system's visit id. The dashboard's escalation links search by code."""
    client.force_login(auditor)
    code = str(scene.t2.code)
    assert listed(client, q=code) == ["ext-10"]
    assert listed(client, q=code[:8]) == ["ext-10"]
    assert listed(client, q=code[:8].upper()) == ["ext-10"]
    assert listed(client, q="ext-20") == ["ext-20"]
    assert listed(client, q=" ext-20 ") == ["ext-20"]
    assert listed(client, q="nothing-like-it") == []
    assert listed(client, q=code[:8], store=str(scene.harbour.code)) == []  # with the other filters
    # the export takes it too
    response = client.get(reverse("auditor:export-csv"), {"q": code[:8]})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["transaction"] for row in rows] == [code]


def test_a_full_token_is_searched_by_its_hash_and_never_shown(client, auditor, scene) -> None:
    client.force_login(auditor)
    response = client.get(reverse("auditor:search"), {"token": TOKEN})
    assert response.status_code == 302
    assert TOKEN not in response["Location"] and token_hash(TOKEN) in response["Location"]
    response = client.get(response["Location"])
    body = response.content.decode()
    assert [t.visit.external_id for t in response.context["rows"]] == ["ext-01"]  # not the look-alike
    assert TOKEN not in body and "…4242" in body
    assert "5551" not in body  # nothing but the last four


def test_bad_filters_are_explained(client, auditor, scene) -> None:
    client.force_login(auditor)
    response = client.get(reverse("auditor:search"), {"since": "2025-03-10", "until": "2025-03-01"})
    assert response.status_code == 200 and "after" in response.content.decode()


def test_paging_is_capped(client, auditor, scene) -> None:
    client.force_login(auditor)
    response = client.get(reverse("auditor:search"), {"page": "100000"})
    assert response.context["page"] == 200 and response.context["rows"] == []


# --------------------------------------------------------------------------- history


@pytest.fixture
def detailed(scene, store, reviewer) -> Transaction:
    """t2 with a proposal, events, footage (purged), a clip someone watched, a charge and a webhook."""
    txn = scene.t2
    camera = Camera.objects.create(store=store, name="aisle-3", width=1280, height=720, fps=15)
    footage = Footage.objects.create(
        store=store,
        camera=camera,
        started_at=at(10, 11),
        status="processed",
        purged_at=at(20),
        purge_reason="retention: 10 days",
    )
    product = Product.objects.create(store=store, sku="B", name="Oat Milk", price=450, currency="USD")
    ProposedLine.objects.create(transaction=txn, product=product, qty=1, unit_price=450, confidence=0.61)
    EvidenceEvent.objects.create(
        transaction=txn,
        footage=footage,
        product=product,
        kind="pick",
        qty=1,
        t_start=12.5,
        t_end=14.0,
        confidence=0.61,
        attribution_margin=0.137,
    )
    clip = Clip.objects.create(transaction=txn, footage=footage, t_start=10.0, t_end=16.0)
    audit_record(actor=reviewer, action="clip.viewed", obj=clip, txn=txn)
    Charge.objects.create(
        transaction=txn,
        amount=1200,
        currency="USD",
        state="captured",
        idempotency_key="k-2",
        gateway_reference="gw_ref_777",
        attempts=2,
        last_error="timeout on first try",
    )
    WebhookDelivery.objects.create(
        store=store,
        transaction=txn,
        event="transaction.settled",
        url="https://store.example/hook",
        body="{}",
        signature="s",
        status="delivered",
        attempts=1,
        response_code=200,
    )
    audit_record(actor="system", action="charge.captured", object_type="charge", object_code="c", txn=txn)
    return txn


def test_the_history_page_shows_every_part(client, auditor, detailed) -> None:
    client.force_login(auditor)
    response = client.get(reverse("auditor:history", args=[detailed.code]))
    assert response.status_code == 200
    body = response.content.decode()
    for expected in (
        "Oat Milk",  # proposal line
        "0.610",  # its confidence
        "0.137",  # the event's attribution margin
        "aisle-3",  # the event's camera
        "oscar",  # who decided
        "Approved with corrections",
        "wrong_quantity",  # the diff
        "20.5 s",  # time spent
        "Primary review",  # the task
        "rita 20",  # clip viewed by rita, when
        "retention: 10 days",  # purged footage and why
        "gw_ref_777",  # the charge
        "timeout on first try",
        "transaction.settled",  # webhook
        "clip.viewed",  # the audit trail
        "charge.captured",
        "…0001",
    ):
        assert expected in body, expected
    assert "pm_live_0000000001" not in body


def test_supervisors_can_read_the_history_too(client, supervisor, scene) -> None:
    client.force_login(supervisor)
    response = client.get(reverse("auditor:history", args=[scene.t3.code]))
    assert response.status_code == 200
    assert "Voided" in response.content.decode() and "supervisor" in response.content.decode()


def test_the_history_plays_each_clip_without_fetching_it_first(client, auditor, detailed) -> None:
    from django.core.files.base import ContentFile

    clip = Clip.objects.get(transaction=detailed)
    clip.file.save("c.mp4", ContentFile(b"\0" * 16), save=True)
    client.force_login(auditor)
    body = client.get(reverse("auditor:history", args=[detailed.code])).content.decode()
    assert f'src="{reverse("media:clip", args=[clip.code])}"' in body and 'preload="none"' in body
    # an auditor is offered neither the original nor a supervisor's actions
    assert "Open original" not in body and "supervisor-actions" not in body


def test_a_supervisor_marks_gold_and_places_a_hold_from_the_history(client, supervisor, detailed) -> None:
    from django.core.files.base import ContentFile

    from reviewapp.models import AuditEvent, GoldAnswer

    Clip.objects.get(transaction=detailed).file.save("c.mp4", ContentFile(b"\0" * 16), save=True)
    client.force_login(supervisor)
    url = reverse("auditor:history", args=[detailed.code])
    body = client.get(url).content.decode()
    assert "Use as a gold check" in body and "Place hold" in body and "Open original" in body

    response = client.post(reverse("supervisor:mark-gold", args=[detailed.code]), follow=True)
    assert response.redirect_chain[-1][0] == url
    gold = GoldAnswer.objects.get(transaction=detailed)
    assert gold.lines == [{"sku": line["sku"], "qty": line["qty"]} for line in detailed.decisions.get().lines]
    body = response.content.decode()
    assert "Use as a gold check" not in body and "the answer:" in body

    hold = reverse("supervisor:legal-hold", args=[detailed.code])
    body = client.post(hold, {"hold": "1", "reason": "no"}, follow=True).content.decode()
    assert "Say why" in body
    detailed.refresh_from_db()
    assert not detailed.legal_hold
    body = client.post(hold, {"hold": "1", "reason": "case 2026-118"}, follow=True).content.decode()
    detailed.refresh_from_db()
    assert detailed.legal_hold and "Release the legal hold" in body
    assert AuditEvent.objects.filter(transaction=detailed, action="transaction.legal_hold").exists()


def test_an_unknown_transaction_is_404(client, auditor, db) -> None:
    client.force_login(auditor)
    import uuid

    assert client.get(reverse("auditor:history", args=[uuid.uuid4()])).status_code == 404


# --------------------------------------------------------------------------- verification


def _verify_from_the_page(client) -> Any:
    """Ask on the page, then do what the worker does with the check (its task body)."""
    from reviewapp.models import ChainCheck
    from reviewapp.services.audit import chain_check_run

    response = client.get(reverse("auditor:verify"), {"run": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("auditor:verify")
    check = ChainCheck.objects.order_by("-id").first()
    following = client.get(reverse("auditor:verify")).content.decode()
    assert "Waiting for a worker" in following and 'http-equiv="refresh"' in following
    assert chain_check_run(check_id=check.pk) in ("intact", "broken")
    assert chain_check_run(check_id=check.pk) == "taken"  # delivered twice, run once
    return client.get(reverse("auditor:verify"))


def test_verification_from_the_page_reads_only_and_finds_an_edit(client, auditor, scene) -> None:
    from reviewapp.models import AuditEvent

    events = [
        audit_record(actor="system", action=f"a{i}", object_type="x", object_code=str(i)) for i in range(4)
    ]
    audit_seal()
    audit_record(actor="system", action="late", object_type="x", object_code="9")  # stays unsealed
    client.force_login(auditor)
    response = _verify_from_the_page(client)
    latest = response.context["latest"]
    # unsealed: "late", and the record of asking for this check
    assert latest.ok and latest.unsealed == 2 and "The chain is intact" in response.content.decode()
    # the page did not seal (the check and its result are logged, unsealed, besides "late")
    assert AuditEvent.objects.filter(seq__isnull=True).exclude(action__startswith="audit.").count() == 1
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET object_code = 'forged' WHERE id = %s", [events[2].id]
        )
    response = _verify_from_the_page(client)
    body = response.content.decode()
    assert not response.context["latest"].ok
    assert f"id {events[2].id}, seq 3" in body and "edited" in body
    assert body.count("<tr>") >= 3  # both checks listed, newest first


def test_asking_twice_while_a_check_runs_starts_no_second_one(client, auditor, db) -> None:
    from reviewapp.models import ChainCheck

    client.force_login(auditor)
    client.get(reverse("auditor:verify"), {"run": "1"})
    response = client.get(reverse("auditor:verify"), {"run": "1"}, follow=True)
    assert ChainCheck.objects.count() == 1
    assert "already under way" in response.content.decode()


def test_a_check_that_fails_says_so(client, auditor, db, monkeypatch) -> None:
    from reviewapp.models import ChainCheck
    from reviewapp.services import audit as audit_service

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database went away")

    client.force_login(auditor)
    client.get(reverse("auditor:verify"), {"run": "1"})
    monkeypatch.setattr(audit_service, "audit_verify_chain", broken)
    with pytest.raises(RuntimeError):
        audit_service.chain_check_run(check_id=ChainCheck.objects.get().pk)
    body = client.get(reverse("auditor:verify")).content.decode()
    assert "stopped before the end: RuntimeError: database went away" in body


def test_the_verify_page_does_not_run_until_asked(client, auditor, db) -> None:
    from reviewapp.models import ChainCheck

    client.force_login(auditor)
    response = client.get(reverse("auditor:verify"))
    assert response.status_code == 200 and response.context["latest"] is None
    assert not ChainCheck.objects.exists()


# --------------------------------------------------------------------------- access


AUDIT_PAGES = ["auditor:search", "auditor:verify", "auditor:export-csv", "auditor:export-jsonl"]


@pytest.mark.parametrize("name", AUDIT_PAGES)
def test_auditors_cannot_post(client, auditor, name) -> None:
    client.force_login(auditor)
    assert client.post(reverse(name)).status_code == 403


def test_auditors_cannot_post_to_a_history(client, auditor, scene) -> None:
    client.force_login(auditor)
    assert client.post(reverse("auditor:history", args=[scene.t1.code])).status_code == 403


@pytest.mark.parametrize("name", AUDIT_PAGES)
def test_reviewers_cannot_open_audit_pages(client, reviewer, name) -> None:
    client.force_login(reviewer)
    assert client.get(reverse(name)).status_code == 403


def test_reviewers_cannot_open_a_history(client, other_reviewer, scene) -> None:
    client.force_login(other_reviewer)
    assert client.get(reverse("auditor:history", args=[scene.t2.code])).status_code == 403


def test_anonymous_users_are_sent_to_log_in(client, scene) -> None:
    response = client.get(reverse("auditor:history", args=[scene.t1.code]))
    assert response.status_code == 302 and reverse("login") in response["Location"]
