"""Claiming under a lease, releasing, and deciding exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.access import is_supervisor
from reviewapp.models import AuditEvent, Decision, ReviewTask
from reviewapp.services.review import (
    AlreadyDecided,
    FinalLine,
    LeaseExpired,
    NotYourTask,
    claim_next_task,
    decision_submit,
    lease_release_expired,
    lease_renew,
    task_release,
)


def test_it_claims_the_highest_priority_then_the_earliest_deadline(flagged, reviewer) -> None:
    late = flagged(priority=0, settle_in=90)
    early = flagged(priority=0, settle_in=30)
    urgent = flagged(priority=5, settle_in=120)
    order = []
    for _ in range(3):
        task = claim_next_task(reviewer=reviewer)
        order.append(task.pk)
        decision_submit(task=task, reviewer=reviewer, outcome="approved")
    assert order == [urgent.pk, early.pk, late.pk]


def test_a_claim_is_a_lease_and_moves_the_transaction_into_review(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    assert task.state == "assigned" and task.assignee == reviewer and task.lease_expires_at > timezone.now()
    task.transaction.refresh_from_db()
    assert task.transaction.state == "in_review"
    assert claim_next_task(reviewer=reviewer).pk == task.pk  # one task at a time: the same one again


def test_on_a_tie_the_older_task_comes_first(flagged, reviewer) -> None:
    first, second = flagged(), flagged()
    ReviewTask.objects.filter(pk=second.pk).update(settle_by=first.settle_by)
    assert claim_next_task(reviewer=reviewer).pk == first.pk


def test_a_claim_is_audited_with_its_lease(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    event = AuditEvent.objects.get(action="task.claimed")
    assert (event.actor_id, event.actor_label) == (reviewer.pk, reviewer.get_username())
    assert (event.object_type, event.object_code) == ("reviewtask", str(task.code))
    assert (event.transaction_id, event.store_id) == (task.transaction_id, task.transaction.store_id)
    assert "lease_expires_at" in event.after
    assert claim_next_task(reviewer=reviewer).pk == task.pk
    assert AuditEvent.objects.filter(action="task.claimed").count() == 1  # the held task: no new claim


def test_a_skipped_task_is_not_handed_back(flagged, reviewer) -> None:
    skipped = flagged(priority=5)
    other = flagged(priority=0)
    assert claim_next_task(reviewer=reviewer, exclude=[skipped.pk]).pk == other.pk


def test_the_claimed_task_is_returned_as_it_is_stored(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    stored = ReviewTask.objects.get(pk=task.pk)
    fields = [f.attname for f in ReviewTask._meta.concrete_fields]
    assert [getattr(task, f) for f in fields] == [getattr(stored, f) for f in fields]


@pytest.mark.postgres
def test_on_postgresql_a_claim_is_one_statement(flagged, reviewer, django_assert_num_queries) -> None:
    flagged()
    flagged()
    is_supervisor(reviewer)  # roles are cached on the user, as a logged-in request has them
    with django_assert_num_queries(1):
        task = claim_next_task(reviewer=reviewer)  # pick, lease, transaction in review, audit
    with django_assert_num_queries(1):
        assert claim_next_task(reviewer=reviewer).pk == task.pk  # the held task


def test_two_reviewers_never_get_one_task(flagged, reviewer, other_reviewer) -> None:
    flagged()
    assert claim_next_task(reviewer=reviewer) is not None
    assert claim_next_task(reviewer=other_reviewer) is None


def test_approving_the_proposal_charges_it(flagged, reviewer, django_capture_on_commit_callbacks) -> None:
    task = claim_next_task(reviewer=(r := reviewer)) if flagged() else None
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision = decision_submit(task=task, reviewer=r, outcome="approved", time_spent_ms=4200)
    txn = task.transaction
    txn.refresh_from_db()
    assert (decision.outcome, decision.amount, decision.diff) == ("approved", 600, [])
    assert decision.lines == [{"sku": "A", "name": "Product A", "qty": 2, "unit_price": 300}]
    assert (txn.state, txn.final_amount) == ("approved", 600)
    assert len(callbacks) == 1  # settlement queued after commit


def test_a_corrected_cart_is_adjusted_with_its_diff(flagged, reviewer) -> None:
    flagged(lines=(("A", 2), ("B", 1)))
    task = claim_next_task(reviewer=reviewer)
    decision = decision_submit(
        task=task,
        reviewer=reviewer,
        outcome="approved",
        lines=[FinalLine("A", 1, "wrong_quantity"), FinalLine("C", 1, "wrong_product")],
        removed_reasons={"B": "wrong_product"},
    )
    assert decision.outcome == "adjusted" and decision.amount == 300 + 199
    assert decision.diff == [
        {"sku": "A", "proposed": 2, "final": 1, "reason": "wrong_quantity"},
        {"sku": "B", "proposed": 1, "final": 0, "reason": "wrong_product"},
        {"sku": "C", "proposed": 0, "final": 1, "reason": "wrong_product"},
    ]


def test_a_second_decision_is_refused_and_one_remains(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    decision_submit(task=task, reviewer=reviewer, outcome="approved")
    with pytest.raises(AlreadyDecided):
        decision_submit(task=task, reviewer=reviewer, outcome="approved")
    assert Decision.objects.count() == 1


def test_a_decision_on_someone_elses_task_is_refused(flagged, reviewer, other_reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    with pytest.raises(NotYourTask):
        decision_submit(task=task, reviewer=other_reviewer, outcome="approved")
    assert not Decision.objects.exists()


def test_a_decision_after_the_lease_expired_is_refused(flagged, reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer, now=timezone.now() - timedelta(minutes=30))
    with pytest.raises(LeaseExpired):
        decision_submit(task=task, reviewer=reviewer, outcome="approved")
    assert not Decision.objects.exists()


def test_an_expired_lease_returns_the_task_to_the_queue(flagged, reviewer, other_reviewer) -> None:
    flagged()
    claim_next_task(reviewer=reviewer, now=timezone.now() - timedelta(minutes=30))
    assert lease_release_expired() == 1
    task = claim_next_task(reviewer=other_reviewer)
    assert task is not None and task.assignee == other_reviewer


def test_renewing_extends_the_lease(flagged, reviewer, other_reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    until = lease_renew(task=task, reviewer=reviewer, now=timezone.now() + timedelta(minutes=4))
    assert until > task.lease_expires_at
    with pytest.raises(NotYourTask):
        lease_renew(task=task, reviewer=other_reviewer)


def test_skipping_releases_the_task_for_someone_else(flagged, reviewer, other_reviewer) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    task_release(task=task, reviewer=reviewer, reason="video does not load")
    task.transaction.refresh_from_db()
    assert task.transaction.state == "needs_review"
    assert claim_next_task(reviewer=other_reviewer).pk == task.pk


def test_escalating_queues_a_task_only_supervisors_can_claim(
    flagged, reviewer, other_reviewer, supervisor
) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    decision_submit(
        task=task, reviewer=reviewer, outcome="escalated", note="hand hidden behind the other shopper"
    )
    task.transaction.refresh_from_db()
    assert task.transaction.state == "escalated"
    assert claim_next_task(reviewer=other_reviewer) is None
    escalation = claim_next_task(reviewer=supervisor)
    assert escalation.kind == "escalation"
    decision = decision_submit(task=escalation, reviewer=supervisor, outcome="voided", note="cannot tell")
    assert decision.by_supervisor
    escalation.transaction.refresh_from_db()
    assert escalation.transaction.state == "voided"


def test_an_escalation_cannot_be_escalated_again_and_stays_the_supervisors_to_decide(
    flagged, reviewer, supervisor
) -> None:
    from reviewapp.models import ReviewTask
    from reviewapp.states import DomainError

    flagged()
    task = claim_next_task(reviewer=reviewer)
    decision_submit(task=task, reviewer=reviewer, outcome="escalated", note="hand hidden")
    escalation = claim_next_task(reviewer=supervisor)
    with pytest.raises(DomainError, match="cannot be escalated again"):
        decision_submit(task=escalation, reviewer=supervisor, outcome="escalated", note="again")
    escalation.refresh_from_db()
    assert escalation.state == "assigned" and escalation.assignee == supervisor
    assert ReviewTask.objects.filter(transaction=escalation.transaction).count() == 2
    decision_submit(task=escalation, reviewer=supervisor, outcome="approved")
    escalation.transaction.refresh_from_db()
    assert escalation.transaction.state == "approved"


def test_a_reviewer_cannot_void(flagged, reviewer) -> None:
    from reviewapp.states import DomainError

    flagged()
    task = claim_next_task(reviewer=reviewer)
    with pytest.raises(DomainError):
        decision_submit(task=task, reviewer=reviewer, outcome="voided")


def test_a_malformed_reserve_code_from_the_page_is_ignored_not_a_server_error(
    client, flagged, reviewer
) -> None:
    flagged()
    task = claim_next_task(reviewer=reviewer)
    client.force_login(reviewer)
    for view in ("renew", "leave"):
        response = client.post(f"/review/t/{task.code}/{view}", {"on_deck": "not-a-code"})
        assert response.status_code < 400, (view, response.status_code)
