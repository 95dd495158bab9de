"""A reviewer takes back their own approval in the moments after it (Enter on the wrong cart),
before anything acted on it; after that, or for anything else, the answer is a clear no."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import AuditEvent, Charge, DecisionUndo, ReviewTask
from reviewapp.services import settlement
from reviewapp.services.review import (
    AlreadyDecided,
    NotYourTask,
    claim_next_task,
    decision_submit,
    decision_undo,
)
from reviewapp.states import DomainError


@pytest.fixture
def approved(flagged, reviewer, settings):
    settings.DECISION_UNDO_SECONDS = 10
    flagged(lines=(("A", 1), ("B", 1)))
    task = claim_next_task(reviewer=reviewer)
    return decision_submit(task=task, reviewer=reviewer, outcome="approved")


def test_an_approval_undone_reopens_the_cart_for_the_same_reviewer_and_charges_nothing(
    approved, reviewer
) -> None:
    from reviewapp import selectors

    txn = approved.transaction
    txn.refresh_from_db()
    assert [(x["sku"], x["qty"]) for x in selectors.final_cart(txn)] == [("A", 1), ("B", 1)]
    task = decision_undo(decision=approved, reviewer=reviewer)
    txn.refresh_from_db()
    assert txn.state == "in_review" and txn.final_amount is None
    assert selectors.final_cart(txn) is None  # what the store system reads: not decided any more
    assert (task.state, task.assignee, task.kind) == ("assigned", reviewer, "primary")
    assert task.pk != approved.task_id and task.lease_expires_at > timezone.now()
    assert DecisionUndo.objects.get(decision=approved).reopened == task
    assert AuditEvent.objects.filter(action="decision.undone", object_code=str(approved.code)).count() == 1
    # the capture queued with the approval comes due: nothing to charge now
    assert settlement.charge_settle(txn_id=txn.pk) == "not settleable (in_review)"
    assert not Charge.objects.exists()
    # decided again, with a correction: charged once, for the new cart
    again = decision_submit(
        task=task,
        reviewer=reviewer,
        outcome="approved",
        lines=[_line("A", 1)],
        removed_reasons={"B": "phantom_item"},
    )
    assert again.outcome == "adjusted"
    assert settlement.charge_settle(txn_id=txn.pk) == "captured"
    assert Charge.objects.get().amount == 300
    txn.refresh_from_db()
    assert [(x["sku"], x["qty"]) for x in selectors.final_cart(txn)] == [("A", 1)]


def _line(sku: str, qty: int):
    from reviewapp.services.review import FinalLine

    return FinalLine(sku=sku, qty=qty)


def test_it_is_too_late_once_the_window_has_passed(approved, reviewer) -> None:
    with pytest.raises(DomainError, match="too late to undo"):
        decision_undo(decision=approved, reviewer=reviewer, now=approved.created_at + timedelta(seconds=11))
    approved.transaction.refresh_from_db()
    assert approved.transaction.state == "approved"  # unchanged
    assert not DecisionUndo.objects.exists()


def test_once_charged_it_cannot_be_undone(approved, reviewer) -> None:
    settlement.charge_settle(txn_id=approved.transaction_id)
    with pytest.raises(DomainError, match="moved on"):
        decision_undo(decision=approved, reviewer=reviewer)
    assert not ReviewTask.objects.filter(state="assigned").exists()


def test_only_the_reviewer_who_decided_and_only_once(approved, reviewer, other_reviewer) -> None:
    with pytest.raises(NotYourTask):
        decision_undo(decision=approved, reviewer=other_reviewer)
    decision_undo(decision=approved, reviewer=reviewer)
    with pytest.raises(AlreadyDecided):
        decision_undo(decision=approved, reviewer=reviewer)
    assert ReviewTask.objects.filter(state="assigned").count() == 1


def test_an_escalation_is_not_undone(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    decision = decision_submit(task=task, reviewer=reviewer, outcome="escalated", note="cannot tell")
    with pytest.raises(DomainError, match="only an approval"):
        decision_undo(decision=decision, reviewer=reviewer)


def test_the_capture_waits_out_the_undo_window(
    flagged,
    reviewer,
    settings,
    monkeypatch,
    django_capture_on_commit_callbacks,
) -> None:
    from reviewapp import tasks

    settings.DECISION_UNDO_SECONDS = 7
    queued = []
    monkeypatch.setattr(
        tasks.settle_transaction_task, "apply_async", lambda args, countdown: queued.append((args, countdown))
    )
    flagged()
    task = claim_next_task(reviewer=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        decision = decision_submit(task=task, reviewer=reviewer, outcome="approved")
    assert queued == [((decision.transaction_id,), 7.0)]


def test_the_next_page_offers_the_undo_and_it_reopens_the_task(client, flagged, reviewer, settings) -> None:
    settings.DECISION_UNDO_SECONDS = 10
    flagged()
    client.force_login(reviewer)
    task = claim_next_task(reviewer=reviewer)
    response = client.post(reverse("reviewer:decide", args=[task.code]), {"outcome": "approved"}, follow=True)
    body = response.content.decode()
    decision = task.decision
    assert 'id="undo-bar"' in body and reverse("reviewer:undo", args=[decision.code]) in body
    response = client.post(reverse("reviewer:undo", args=[decision.code]), follow=True)
    reopened = DecisionUndo.objects.get(decision=decision).reopened
    assert response.redirect_chain[-1][0] == reverse("reviewer:task", args=[reopened.code])
    assert "back for you to decide again" in response.content.decode()
    assert 'id="undo-bar"' not in response.content.decode()  # the offer is used up
    # a second press (another tab) gets a clear refusal, and nothing changes
    response = client.post(reverse("reviewer:undo", args=[decision.code]))
    assert response.status_code == 409 and b"already undone" in response.content


def test_another_reviewer_cannot_undo_through_the_page(client, approved, other_reviewer) -> None:
    client.force_login(other_reviewer)
    response = client.post(reverse("reviewer:undo", args=[approved.code]))
    assert response.status_code == 404
    assert not DecisionUndo.objects.exists()


def test_the_undone_decision_stays_in_the_history_and_the_export(client, approved, reviewer, auditor) -> None:
    from reviewapp.services.exports import HEADER, decision_rows

    decision_undo(decision=approved, reviewer=reviewer)
    rows = [dict(zip(HEADER, r, strict=True)) for r in decision_rows(filters={})]
    assert [r["decision"] for r in rows] == [str(approved.code)] and rows[0]["undone_at"]
    client.force_login(auditor)
    body = client.get(reverse("auditor:history", args=[approved.transaction.code])).content.decode()
    assert ">undone</span>" in body and "decision.undone" in body


def test_an_approval_sent_on_to_a_second_reviewer_is_not_offered(
    client, flagged, reviewer, store, settings
) -> None:
    settings.DECISION_UNDO_SECONDS = 10
    store.second_opinion_percent = 100
    store.save()
    flagged()
    client.force_login(reviewer)
    task = claim_next_task(reviewer=reviewer)
    response = client.post(reverse("reviewer:decide", args=[task.code]), {"outcome": "approved"}, follow=True)
    assert ReviewTask.objects.filter(kind="second_opinion").exists()
    assert 'id="undo-bar"' not in response.content.decode()


def test_the_shift_dashboard_counts_each_reviewers_undos(client, approved, reviewer, supervisor) -> None:
    from reviewapp import selectors
    from reviewapp.services import metrics

    decision_undo(decision=approved, reviewer=reviewer)
    metrics.rollup_recent()
    rows = {r["user"]: r for r in selectors.dashboard(window_hours=8)["reviewers"]}
    assert rows[reviewer]["undone"] == 1 and rows[reviewer]["decisions"] == 1
    client.force_login(supervisor)
    assert ">Undone</th>" in client.get(reverse("supervisor:dashboard")).content.decode()
