"""The shift dashboard: its numbers agree with the rows; its actions are audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import AuditEvent, Charge, Decision, ReviewTask, Transaction, default_review_threshold
from reviewapp.selectors import dashboard
from reviewapp.services.metrics import rollup_recent


@pytest.fixture
def history(make_transaction, reviewer, other_reviewer):
    """A small shift: auto-approved, flagged, decided (approved/adjusted/escalated), settled."""
    now = timezone.now()
    made = []
    for i in range(12):
        flagged = i % 3 == 0
        txn = make_transaction(
            "settled" if not flagged else "needs_review",
            confidence=0.99 if not flagged else 0.5,
            proposed_amount=100 * i,
            flagged=flagged,
            triaged_at=now - timedelta(minutes=5),
            settled_at=None if flagged else now - timedelta(minutes=1),
        )
        made.append(txn)
    outcomes = ["approved", "adjusted", "escalated", "approved"]
    for i, txn in enumerate(t for t in made if t.flagged):
        task = ReviewTask.objects.create(transaction=txn, state="done", settle_by=now + timedelta(hours=1))
        Decision.objects.create(
            task=task,
            transaction=txn,
            reviewer=reviewer if i % 2 else other_reviewer,
            outcome=outcomes[i],
            currency="USD",
            time_spent_ms=(i + 1) * 4000,
        )
    ReviewTask.objects.create(
        transaction=made[1], state="queued", priority=5, settle_by=now + timedelta(minutes=10)
    )
    rollup_recent()
    return made


def test_the_numbers_agree_with_the_rows(history) -> None:
    data = dashboard(window_hours=8)
    triaged = Transaction.objects.filter(triaged_at__isnull=False)
    assert data["totals"]["triaged"] == triaged.count() == 12
    assert data["totals"]["flagged"] == triaged.filter(flagged=True).count() == 4
    assert data["totals"]["auto_approved"] == triaged.filter(flagged=False).count()
    assert data["totals"]["decisions"] == Decision.objects.count()
    for outcome in ("approved", "adjusted", "escalated"):
        assert data["totals"][outcome] == Decision.objects.filter(outcome=outcome).count()
    assert data["totals"]["settled"] == Transaction.objects.filter(state="settled").count()
    assert data["queued"] == ReviewTask.objects.filter(state="queued").count() == 1
    assert [t.pk for t in data["at_risk"]] == list(
        ReviewTask.objects.filter(state="queued").values_list("pk", flat=True)
    )
    by_reviewer = {r["user"].username: r["decisions"] for r in data["reviewers"]}
    assert by_reviewer == {"rita": 2, "oscar": 2}
    assert data["shares"]["flagged"] == pytest.approx(4 / 12)


def test_the_page_shows_the_figures(client, supervisor, history) -> None:
    client.force_login(supervisor)
    response = client.get(reverse("supervisor:dashboard") + "?window=24h")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'id="fig-queued">1<', html)
    assert re.search(r'id="fig-flagged">33%<', html)
    assert "<svg" in html
    # the rolled-up figures say how fresh they are: a cart triaged a moment ago is not in them yet
    assert "rolled up every minute" in html


def test_a_reviewer_cannot_see_it(client, reviewer) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("supervisor:dashboard")).status_code == 403


def test_changing_a_store_policy_is_audited_with_old_and_new_values(client, supervisor, store) -> None:
    client.force_login(supervisor)
    url = reverse("supervisor:store-policy", args=[store.code])
    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"review_threshold": "0.8", "reason": "fewer flags on weekends", "privacy_mode": "on"})
    response = client.post(url, data)
    assert response.status_code == 302
    store.refresh_from_db()
    assert store.review_threshold == 0.8
    event = AuditEvent.objects.get(action="store.policy_changed")
    assert event.before == {"review_threshold": default_review_threshold()}
    assert event.after == {"review_threshold": 0.8}
    assert event.actor_id == supervisor.id and event.data["reason"] == "fewer flags on weekends"


def test_the_review_limit_is_typed_in_the_stores_currency_and_kept_in_minor_units(
    client, supervisor, store
) -> None:
    client.force_login(supervisor)
    url = reverse("supervisor:store-policy", args=[store.code])
    page = client.get(url)
    assert page.context["form"].initial["review_limit_amount"] == 100  # 10,000 cents shown as 100.00
    assert b"supervisor.css" in page.content
    form = page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"review_limit_amount": "12.50", "privacy_mode": "on"})
    assert client.post(url, data).status_code == 302
    store.refresh_from_db()
    assert store.review_limit_amount == 1250


def test_a_bad_policy_value_is_refused(client, supervisor, store) -> None:
    client.force_login(supervisor)
    url = reverse("supervisor:store-policy", args=[store.code])
    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data["review_threshold"] = "1.5"
    response = client.post(url, data)
    assert response.status_code == 200 and b"between 0 and 1" in response.content
    store.refresh_from_db()
    assert store.review_threshold == default_review_threshold()


def test_a_supervisor_can_return_a_task_to_the_queue(client, supervisor, reviewer, make_transaction) -> None:
    txn = make_transaction("in_review")
    task = ReviewTask.objects.create(
        transaction=txn,
        state="assigned",
        assignee=reviewer,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
        settle_by=timezone.now() + timedelta(hours=1),
    )
    client.force_login(supervisor)
    client.post(reverse("supervisor:reassign-task", args=[task.code]), {"to": ""})
    task.refresh_from_db()
    assert task.state == "queued" and task.assignee is None
    assert AuditEvent.objects.filter(action="task.reassigned", object_code=str(task.code)).exists()


def test_a_failed_settlement_can_be_retried(
    client, supervisor, make_transaction, django_capture_on_commit_callbacks
) -> None:
    txn = make_transaction("approved", final_amount=100)
    charge = Charge.objects.create(
        transaction=txn,
        amount=100,
        currency="USD",
        idempotency_key="k",
        state="failed",
        last_error="declined",
    )
    client.force_login(supervisor)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("supervisor:retry-charge", args=[charge.code]))
    charge.refresh_from_db()
    assert charge.state == "pending" and len(callbacks) == 1
