"""Second opinions, gold checks, reviewer agreement, calibration, and disputes with refunds."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.models import (
    Charge,
    Decision,
    Dispute,
    GatewayCapture,
    GoldAnswer,
    ProposedLine,
    Refund,
    ReviewTask,
)
from reviewapp.services import disputes, quality, settlement
from reviewapp.services.review import FinalLine, claim_next_task, decision_submit
from tests.conftest import make_user


def decide(reviewer, **kwargs):
    task = claim_next_task(reviewer=reviewer)
    assert task is not None
    return decision_submit(task=task, reviewer=reviewer, outcome=kwargs.pop("outcome", "approved"), **kwargs)


def test_a_decision_over_the_value_limit_waits_for_a_second_opinion(
    store, flagged, reviewer, other_reviewer, django_capture_on_commit_callbacks
) -> None:
    store.review_limit_amount = 500
    store.save()
    txn = flagged().transaction
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decide(reviewer)
    txn.refresh_from_db()
    assert txn.state == "needs_review" and not callbacks  # no charge yet
    assert claim_next_task(reviewer=reviewer) is None  # the first reviewer never gets the second look
    second = claim_next_task(reviewer=other_reviewer)
    assert second.kind == "second_opinion"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision_submit(task=second, reviewer=other_reviewer, outcome="approved")
    txn.refresh_from_db()
    assert txn.state == "approved" and txn.final_amount == 600 and len(callbacks) == 1


def test_a_disagreeing_second_opinion_goes_to_a_supervisor(
    store, flagged, reviewer, other_reviewer, supervisor
) -> None:
    store.second_opinion_percent = 100
    store.save()
    txn = flagged().transaction
    decide(reviewer)
    decide(other_reviewer, lines=[FinalLine("A", 1, "wrong_quantity")])
    txn.refresh_from_db()
    assert txn.state == "escalated"
    escalation = claim_next_task(reviewer=supervisor)
    assert escalation.kind == "escalation"


def test_gold_checks_never_charge_and_measure_accuracy(
    store, flagged, reviewer, other_reviewer, supervisor, make_transaction
) -> None:
    txn = flagged().transaction
    decide(supervisor)  # the supervisor's decided cart is the answer
    quality.gold_mark(txn=txn, actor=supervisor)
    charges_before = Charge.objects.count()
    for who, lines in ((reviewer, None), (other_reviewer, [FinalLine("A", 3, "wrong_quantity")])):
        ReviewTask.objects.create(transaction=txn, kind="gold", settle_by=timezone.now() + timedelta(hours=1))
        decide(who, lines=lines)
    assert Charge.objects.count() == charges_before
    stats = quality.reviewer_quality(since=timezone.now() - timedelta(hours=1))
    assert (stats[reviewer.pk].gold_checked, stats[reviewer.pk].gold_correct) == (1, 1)
    assert (stats[other_reviewer.pk].gold_checked, stats[other_reviewer.pk].gold_correct) == (1, 0)


def test_gold_tasks_are_mixed_in_at_the_store_rate(store, flagged, supervisor) -> None:
    done = flagged().transaction
    decide(supervisor)
    quality.gold_mark(txn=done, actor=supervisor)
    store.gold_percent = 10
    store.save()
    for _ in range(12):
        flagged()
    assert quality.gold_top_up() == 1
    assert ReviewTask.objects.filter(kind="gold", state="queued").count() == 1
    assert quality.gold_top_up() == 0


def test_cohens_kappa() -> None:
    assert quality.cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert quality.cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert quality.cohen_kappa([]) is None


def test_the_calibration_report_recommends_the_lowest_threshold_meeting_the_target(
    store, flagged, products
) -> None:
    reviewer = make_user("cal", "reviewer")
    # 100 decided carts: confidence c is right with probability ~c (right when i % 10 < c*10)
    for i in range(100):
        conf = 0.5 + (i % 50) / 100
        flagged(confidence=conf)
        task = claim_next_task(reviewer=reviewer)
        right = (i * 7) % 100 < conf * 100 or conf >= 0.9
        decision_submit(
            task=task,
            reviewer=reviewer,
            outcome="approved",
            lines=None if right else [FinalLine("B", 1, "wrong_product")],
        )
    report = quality.calibration_report(store=store, target_error=0.0, min_auto=5)
    assert report.decided == 100 and report.ece is not None and sum(b.count for b in report.bins) == 100
    assert report.recommended_threshold is not None and report.recommended_threshold <= 0.9
    assert report.predicted_error == 0.0
    # the prediction is what the samples say at that threshold
    labels = quality.labelled_decisions(store=store)
    auto = [x for x in labels if x.confidence >= report.recommended_threshold]
    assert report.predicted_error_carts == len(auto) and report.triaged == 100
    # every cart under the threshold goes to a human, and the audit draw of the rest
    audit = store.audit_sample_percent / 100
    assert report.predicted_review_share == pytest.approx(1 - len(auto) * (1 - audit) / len(labels))


def test_the_measured_outcome_counts_the_error_only_over_carts_whose_true_cart_is_known(
    store, make_transaction, products, supervisor
) -> None:
    since = timezone.now() - timedelta(seconds=1)

    def txn(reasons, confidence=0.95, lines=(("A", 1),)):
        t = make_transaction(
            "needs_review" if reasons else "auto_approved",
            confidence=confidence,
            flagged=bool(reasons),
            review_reasons=reasons,
            triaged_at=timezone.now(),
        )
        for sku, qty in lines:
            ProposedLine.objects.create(
                transaction=t, product=products[sku], qty=qty, unit_price=1, confidence=confidence
            )
        return t

    unknown = [txn([]) for _ in range(3)]  # auto-approved, no one looked
    right_gold, wrong_gold = txn([]), txn([])
    quality.gold_mark(txn=right_gold, actor=supervisor, lines=[{"sku": "A", "qty": 1}])
    quality.gold_mark(txn=wrong_gold, actor=supervisor, lines=[{"sku": "B", "qty": 1}])
    audited = txn(["random audit sample"])
    ReviewTask.objects.create(transaction=audited, settle_by=timezone.now() + timedelta(hours=1))
    decide(make_user("aud", "reviewer"), lines=[FinalLine("A", 2, "wrong_quantity")])
    txn(["confidence 0.40 under threshold 0.90"], confidence=0.4)
    txn(["confidence 0.40 under threshold 0.90", "ambiguous event"], confidence=0.4)

    out = quality.measured_outcome(store=store, since=since)
    assert (out.transactions, out.flagged) == (8, 3) and out.review_share == pytest.approx(3 / 8)
    # let through: 3 unknown + 2 gold + the audit draw; the error rests on the 3 whose cart is known
    assert (out.let_through, out.known, out.wrong) == (6, 3, 2) and out.error == pytest.approx(2 / 3)
    low, high = out.error_interval
    assert low < 2 / 3 < high
    assert all(t.pk for t in unknown)
    assert quality.measured_outcome(store=store, since=timezone.now()).review_share is None


@pytest.fixture
def settled(make_transaction, products, reviewer):
    txn = make_transaction("approved", confidence=0.5, proposed_amount=1050, final_amount=1050)
    ProposedLine.objects.create(transaction=txn, product=products["A"], qty=2, unit_price=300, confidence=0.9)
    ProposedLine.objects.create(transaction=txn, product=products["B"], qty=1, unit_price=450, confidence=0.9)
    settlement.charge_settle(txn_id=txn.pk)
    txn.refresh_from_db()
    assert txn.state == "settled"
    return txn


def test_a_dispute_reopens_for_another_reviewer_and_refunds_the_difference_once(
    settled, other_reviewer, django_capture_on_commit_callbacks
) -> None:
    dispute, created = disputes.dispute_open(
        txn=settled, external_id="d1", statement="I only took one tea", actor="api:test"
    )
    again, created_again = disputes.dispute_open(
        txn=settled, external_id="d1", statement="dup", actor="api:test"
    )
    assert created and not created_again and again.pk == dispute.pk  # duplicate delivery: one dispute
    settled.refresh_from_db()
    assert settled.state == "disputed"
    task = claim_next_task(reviewer=other_reviewer)
    assert task.kind == "dispute" and task.priority >= 70
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision_submit(
            task=task,
            reviewer=other_reviewer,
            outcome="approved",
            lines=[FinalLine("A", 1, "wrong_quantity"), FinalLine("B", 1)],
        )
    refund = Refund.objects.get()
    assert refund.amount == 300 and len(callbacks) == 1
    assert disputes.refund_execute(refund_id=refund.pk) == "refunded"
    assert (
        disputes.refund_execute(refund_id=refund.pk) == "already refunded"
    )  # duplicate delivery of the task
    assert GatewayCapture.objects.filter(idempotency_key=refund.idempotency_key).count() == 1
    settled.refresh_from_db()
    dispute.refresh_from_db()
    assert settled.state == "settled" and dispute.status == "refunded"
    assert Charge.objects.get().state == "partially_refunded"


def test_an_upheld_dispute_charges_nothing_more(settled, other_reviewer) -> None:
    disputes.dispute_open(txn=settled, external_id="d2", statement="not mine", actor="api:test")
    task = claim_next_task(reviewer=other_reviewer)
    decision_submit(
        task=task, reviewer=other_reviewer, outcome="approved", lines=[FinalLine("A", 3), FinalLine("B", 1)]
    )
    assert Dispute.objects.get().status == "upheld" and not Refund.objects.exists()
    from reviewapp import selectors

    settled.refresh_from_db()  # the cart paid for is still the one charged, not the bigger one
    assert [(x["sku"], x["qty"]) for x in selectors.final_cart(settled)] == [("A", 2), ("B", 1)]


def test_the_dispute_api_checks_the_card(client, settled, store) -> None:
    from reviewapp.services.audit import SYSTEM
    from reviewapp.services.stores import api_key_create

    key = api_key_create(store=store, label="", actor=SYSTEM)
    body = {"transaction": str(settled.code), "token": "pm_wrong", "statement": "x", "external_id": "e1"}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    response = client.post("/api/v1/disputes", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 400 and response.json()["field"] == "token"
    body["token"] = "pm_test0001"
    response = client.post("/api/v1/disputes", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 201
    assert Dispute.objects.count() == 1
    assert not Decision.objects.exists()
    assert GoldAnswer.objects.count() == 0


def test_the_calibration_page_applies_the_recommendation_with_an_audit(
    client, supervisor, store, flagged
) -> None:
    from django.urls import reverse

    from reviewapp.models import AuditEvent

    reviewer = make_user("cal2", "reviewer")
    for i in range(40):
        flagged(confidence=0.6 + (i % 4) / 10)
        task = claim_next_task(reviewer=reviewer)
        decision_submit(
            task=task,
            reviewer=reviewer,
            outcome="approved",
            lines=None if i % 4 else [FinalLine("B", 1, "wrong_product")],
        )
    client.force_login(supervisor)
    url = reverse("supervisor:calibration", args=[store.code])
    page = client.get(url + "?target_error=0")
    assert page.status_code == 200 and b"Expected calibration error" in page.content
    client.post(url, {"apply": "1", "target_error": "0"})
    store.refresh_from_db()
    assert store.review_threshold == pytest.approx(0.7)
    assert AuditEvent.objects.filter(action="store.policy_changed", after__review_threshold=0.7).exists()
    # the page then measures what the change did, on transactions triaged since
    assert b"Since the threshold was set" in client.get(url).content


def test_the_dashboard_shows_gold_accuracy(client, supervisor, store, flagged, reviewer) -> None:
    from django.urls import reverse

    from reviewapp.services.metrics import rollup_recent

    txn = flagged().transaction
    decide(supervisor)
    quality.gold_mark(txn=txn, actor=supervisor)
    ReviewTask.objects.create(transaction=txn, kind="gold", settle_by=timezone.now() + timedelta(hours=1))
    decide(reviewer)
    rollup_recent()
    client.force_login(supervisor)
    html = client.get(reverse("supervisor:dashboard")).content.decode()
    assert "1/1" in html


def test_a_reviewers_rate_is_over_the_hours_they_decided_in_not_the_whole_window(db, reviewer) -> None:
    """3 decisions in one hour of an 8 hour window is 3 an hour, not 0.4."""
    from reviewapp import selectors
    from reviewapp.models import ReviewerHourStats
    from reviewapp.services.metrics import hour_floor

    now = hour_floor(timezone.now())
    ReviewerHourStats.objects.create(reviewer=reviewer, hour=now, decisions=3)
    ReviewerHourStats.objects.create(reviewer=reviewer, hour=now - timedelta(hours=3), decisions=0)
    (row,) = selectors.dashboard(window_hours=8)["reviewers"]
    assert row["decisions"] == 3 and row["per_hour"] == 3.0
    ReviewerHourStats.objects.create(reviewer=reviewer, hour=now - timedelta(hours=2), decisions=5)
    (row,) = selectors.dashboard(window_hours=8)["reviewers"]
    assert row["per_hour"] == 4.0


def test_the_trend_chart_labels_stay_inside_it_newest_hour_included() -> None:
    from datetime import UTC, datetime

    from reviewapp.views.supervisor import trend_svg

    start = datetime(2026, 1, 1, tzinfo=UTC)
    trend = [
        (start + timedelta(hours=i), {"flagged": i, "auto_approved": 1, "decisions": 0}) for i in range(24)
    ]
    chart = trend_svg(trend, width=720)
    labels = chart["labels"]
    assert labels[0][2] == "start" and labels[-1][1] == trend[-1][0] and labels[-1][2] == "end"
    assert all(anchor == "middle" for _, _, anchor in labels[1:-1])
    assert all(b[0] - a[0] >= 60 for a, b in zip(labels, labels[1:], strict=False))


def test_the_trend_spans_the_whole_window_its_quiet_hours_at_zero(db, store) -> None:
    """One busy hour in an 8 hour window is the last of 8 points, not a lone dot at the left edge."""
    from reviewapp import selectors
    from reviewapp.models import StoreHourStats
    from reviewapp.services.metrics import hour_floor

    now = hour_floor(timezone.now())
    assert selectors.dashboard(window_hours=8)["trend"] == []  # nothing yet: the page says so
    StoreHourStats.objects.create(store=store, hour=now, triaged=5, flagged=3, auto_approved=2)
    trend = selectors.dashboard(window_hours=8)["trend"]
    assert [hour for hour, _ in trend] == [now - timedelta(hours=7 - i) for i in range(8)]
    assert trend[-1][1]["flagged"] == 3 and all(p["flagged"] == 0 for _, p in trend[:-1])


def test_the_dispute_reviewer_reads_what_the_shopper_says_and_what_was_charged(
    client, settled, other_reviewer
) -> None:
    disputes.dispute_open(txn=settled, external_id="d3", statement="I put the <tea> back", actor="api:test")
    task = claim_next_task(reviewer=other_reviewer)
    client.force_login(other_reviewer)
    page = client.get(f"/review/t/{task.code}/").content.decode()
    assert "The shopper says: “I put the &lt;tea&gt; back”" in page  # escaped
    assert "after a charge of 10.50 USD" in page and "a lower total is refunded" in page


def test_the_api_reads_the_cart_paid_for_and_the_disputes_refunds(
    client, settled, store, other_reviewer
) -> None:
    from reviewapp.services.audit import SYSTEM
    from reviewapp.services.stores import api_key_create

    key = api_key_create(store=store, label="", actor=SYSTEM)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def read() -> dict:
        return client.get(f"/api/v1/transactions/{settled.code}", **headers).json()

    body = read()  # it settled on its own: what it proposed is what was charged
    assert [(x["sku"], x["qty"]) for x in body["final"]] == [("A", 2), ("B", 1)] and body["disputes"] == []
    dispute, _ = disputes.dispute_open(txn=settled, external_id="d9", statement="one tea", actor="api:test")
    task = claim_next_task(reviewer=other_reviewer)
    decision_submit(
        task=task,
        reviewer=other_reviewer,
        outcome="approved",
        lines=[FinalLine("A", 1, "wrong_quantity"), FinalLine("B", 1)],
    )
    disputes.refund_execute(refund_id=Refund.objects.get().pk)
    body = read()
    assert [(x["sku"], x["qty"]) for x in body["final"]] == [("A", 1), ("B", 1)]  # the corrected cart
    assert body["disputes"] == [
        {"dispute": str(dispute.code), "external_id": "d9", "status": "refunded",
         "refund": {"amount": 300, "state": "refunded"}}
    ]  # fmt: skip
