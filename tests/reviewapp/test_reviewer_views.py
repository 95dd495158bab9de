"""The reviewer workspace's views: claiming, the page, deciding once, skipping, leases, look-alikes."""

from __future__ import annotations

import json
from datetime import timedelta

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import AuditEvent, Clip, Decision, EvidenceEvent, Product, ProposedLine, ReviewTask
from reviewapp.services.review import (
    claim_next_task,
    decision_submit,
    lease_leave,
    lease_release_expired,
    on_deck_claim,
)

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def products(store):
    return {
        sku: Product.objects.create(store=store, sku=sku, name=name, price=price, currency="USD")
        for sku, name, price in (("A", "Apple Juice", 300), ("B", "Baked Beans", 450), ("C", "Cola", 199))
    }


@pytest.fixture
def flagged(make_transaction, products):
    """A flagged transaction with proposed lines, one event per line and a clip; its task queued."""

    def make(lines=(("A", 2, 0.6), ("B", 1, 0.95)), priority: int = 0) -> ReviewTask:
        txn = make_transaction("needs_review", confidence=0.5, review_reasons=["confidence 0.50 under 0.90"])
        clip = Clip(transaction=txn, t_start=10.0, t_end=20.0)
        clip.file.save(f"{txn.code}.mp4", ContentFile(b"\x00" * 4096), save=False)
        clip.save()
        for n, (sku, qty, confidence) in enumerate(lines):
            ProposedLine.objects.create(
                transaction=txn,
                product=products[sku],
                qty=qty,
                unit_price=products[sku].price,
                confidence=confidence,
            )
            event = EvidenceEvent.objects.create(
                transaction=txn,
                product=products[sku],
                kind="pick",
                qty=qty,
                t_start=11.0 + n,
                t_end=11.5 + n,
                confidence=confidence,
            )
            clip.events.add(event)
        txn.proposed_amount = sum(products[s].price * q for s, q, _c in lines)
        txn.save()
        return ReviewTask.objects.create(
            transaction=txn, priority=priority, settle_by=timezone.now() + timedelta(minutes=60)
        )

    return make


def as_user(client: Client, user) -> Client:
    client.force_login(user)
    return client


def decide(client: Client, task: ReviewTask, **data) -> object:
    data.setdefault("outcome", "approved")
    return client.post(reverse("reviewer:decide", args=[task.code]), data, **JSON)


# --------------------------------------------------------------------------- claiming and the page


def test_the_start_page_offers_to_start_reviewing(client, reviewer, flagged) -> None:
    flagged()
    response = as_user(client, reviewer).get(reverse("reviewer:start"))
    assert response.status_code == 200
    assert b"Start reviewing" in response.content and b"1</strong> task waiting for you" in response.content
    assert b'http-equiv="refresh"' not in response.content


def test_the_start_page_counts_only_the_tasks_the_reviewer_may_take_and_looks_again_when_none(
    client, reviewer, other_reviewer, supervisor, flagged
) -> None:
    flagged()
    task = claim_next_task(reviewer=other_reviewer)
    decision_submit(task=task, reviewer=other_reviewer, outcome="escalated", note="cannot tell")
    page = as_user(client, reviewer).get(reverse("reviewer:start")).content
    assert b"0</strong> tasks waiting for you" in page and b"1 not yours to take" in page
    assert b'http-equiv="refresh"' in page
    page = as_user(Client(), supervisor).get(reverse("reviewer:start")).content
    assert b"1</strong> task waiting for you" in page


def test_starting_claims_the_next_task_and_opens_it(client, reviewer, flagged) -> None:
    flagged(priority=0)
    urgent = flagged(priority=5)
    response = as_user(client, reviewer).post(reverse("reviewer:next"))
    assert response.status_code == 302 and response["Location"] == reverse(
        "reviewer:task", args=[urgent.code]
    )
    urgent.refresh_from_db()
    assert urgent.state == "assigned" and urgent.assignee == reviewer


def test_starting_with_an_empty_queue_says_so(client, reviewer) -> None:
    response = as_user(client, reviewer).post(reverse("reviewer:next"), follow=True)
    assert b"No tasks are waiting" in response.content


def test_the_page_renders_for_the_holder_and_claims_an_on_deck_task(client, reviewer, flagged) -> None:
    task = flagged()
    following = flagged()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, reviewer).get(reverse("reviewer:task", args=[task.code]))
    assert response.status_code == 200
    page = response.context["page"]
    assert [line["sku"] for line in page["lines"]] == ["A", "B"]  # least confident first
    assert page["lines"][0]["doubt"] and not page["lines"][1]["doubt"]
    assert page["clips"][0]["url"] == reverse("media:clip", args=[task.transaction.clips.get().code])
    assert page["on_deck"] == str(following.code)
    assert page["next_clip"]["url"] == reverse("media:clip", args=[following.transaction.clips.get().code])
    following.refresh_from_db()
    assert following.assignee == reviewer and following.state == "assigned"
    assert b"Apple Juice" in response.content and b'id="approve-btn"' in response.content


def test_pages_are_never_taken_from_the_browser_cache_so_back_shows_a_decided_task_as_decided(
    client, reviewer, flagged
) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    page = reverse("reviewer:task", args=[task.code])
    response = as_user(client, reviewer).get(page)
    assert "no-store" in response["Cache-Control"]
    assert "no-store" in client.get(reverse("reviewer:start"))["Cache-Control"]
    decision_submit(task=task, reviewer=reviewer, outcome="approved")
    again = client.get(page)  # what Back now shows: asked of the server again
    assert b'id="approve-btn"' not in again.content


def test_every_clip_of_the_transaction_is_on_the_page(client, reviewer, flagged) -> None:
    task = flagged()
    second = Clip(transaction=task.transaction, t_start=30.0, t_end=40.0)
    second.file.save("second.mp4", ContentFile(b"\x00" * 64), save=False)
    second.save()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, reviewer).get(reverse("reviewer:task", args=[task.code]))
    assert [c["t_start"] for c in response.context["page"]["clips"]] == [10.0, 30.0]
    assert response.content.count(b'class="clip-tab"') == 2


def test_other_reviewers_get_404_for_the_page(client, reviewer, other_reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, other_reviewer).get(reverse("reviewer:task", args=[task.code]))
    assert response.status_code == 404


def test_auditors_and_outsiders_cannot_use_the_workspace(client, auditor, outsider, flagged) -> None:
    flagged()
    assert as_user(client, auditor).post(reverse("reviewer:next")).status_code == 403
    assert as_user(Client(), outsider).get(reverse("reviewer:start")).status_code == 403
    assert Client().get(reverse("reviewer:start")).status_code == 302  # to log in


def test_changing_views_are_post_only_and_need_csrf(reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    client = as_user(Client(enforce_csrf_checks=True), reviewer)
    assert client.get(reverse("reviewer:next")).status_code == 405
    for name in ("decide", "skip", "renew", "leave"):
        url = reverse(f"reviewer:{name}", args=[task.code])
        assert client.get(url).status_code == 405, name
        assert client.post(url, {"outcome": "approved"}).status_code == 403, name
    assert not Decision.objects.exists()


# --------------------------------------------------------------------------- deciding


def test_approving_as_proposed_records_time_spent_and_opens_the_next_task(client, reviewer, flagged) -> None:
    task = flagged()
    following = flagged()
    assert on_deck_claim(reviewer=reviewer, current=claim_next_task(reviewer=reviewer)) is not None
    response = decide(as_user(client, reviewer), task, time_spent_ms="4321")
    assert response.status_code == 200
    assert response.json()["next"] == reverse("reviewer:task", args=[following.code])
    decision = Decision.objects.get(task=task)
    assert (decision.outcome, decision.diff, decision.time_spent_ms) == ("approved", [], 4321)
    assert decision.amount == 2 * 300 + 450


def test_corrections_become_an_adjusted_decision_with_the_diff(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    event = str(task.transaction.events.get(product__sku="B").code)
    lines = [
        {"sku": "A", "qty": 1, "reason": "wrong_quantity"},
        {"sku": "C", "qty": 1, "reason": "wrong_product", "event": event},  # B swapped for C
    ]
    response = decide(
        as_user(client, reviewer), task, lines=json.dumps(lines), removed=json.dumps({"B": "wrong_product"})
    )
    assert response.status_code == 200, response.content
    decision = Decision.objects.get(task=task)
    assert decision.outcome == "adjusted" and decision.amount == 300 + 199
    assert decision.diff == [
        {"sku": "A", "proposed": 2, "final": 1, "reason": "wrong_quantity"},
        {"sku": "B", "proposed": 1, "final": 0, "reason": "wrong_product"},
        {"sku": "C", "proposed": 0, "final": 1, "reason": "wrong_product"},
    ]


def test_a_change_without_a_reason_code_is_refused(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = decide(as_user(client, reviewer), task, lines=json.dumps([{"sku": "A", "qty": 5}]))
    assert response.status_code == 400
    assert "reason code" in response.json()["error"] and response.json()["next"] == ""
    assert not Decision.objects.exists()


@pytest.mark.parametrize(
    "lines",
    [
        [{"sku": "ZZZ", "qty": 1, "reason": "missed_item"}],
        [{"sku": "A", "qty": -1, "reason": "wrong_quantity"}],
        [{"sku": "A", "qty": "2"}],
        [{"sku": "A", "qty": 2, "reason": "because"}],
        {"sku": "A"},
    ],
)
def test_malformed_lines_are_refused(client, reviewer, flagged, lines) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = decide(as_user(client, reviewer), task, lines=json.dumps(lines))
    assert response.status_code == 400
    assert not Decision.objects.exists()


def test_a_second_submission_is_refused_with_a_clear_message_and_one_decision_remains(
    client, reviewer, flagged
) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer)
    assert decide(client, task).status_code == 200
    response = decide(client, task)
    assert response.status_code == 409
    assert response.json()["error"] == "This task has already been decided."
    assert Decision.objects.filter(task=task).count() == 1


def test_a_decision_after_the_lease_expired_is_refused_and_the_page_moves_on(
    client, reviewer, flagged
) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer, now=timezone.now() - timedelta(minutes=30))
    response = decide(as_user(client, reviewer), task)
    assert response.status_code == 409
    assert "expired" in response.json()["error"] and response.json()["next"]
    assert not Decision.objects.exists()


def test_a_decision_on_a_task_that_is_not_yours_is_refused(client, reviewer, other_reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = decide(as_user(client, other_reviewer), task)
    assert response.status_code == 404
    assert "not (or no longer) assigned to you" in response.json()["error"]
    assert not Decision.objects.exists()
    # the same after the lease ran out and the task went back to the queue
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    lease_release_expired()
    response = decide(as_user(Client(), reviewer), task)
    assert response.status_code == 404 and "no longer" in response.json()["error"]


def test_without_javascript_a_decision_redirects_and_a_refusal_explains(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer)
    url = reverse("reviewer:decide", args=[task.code])
    assert client.post(url, {"outcome": "approved"}).status_code == 302
    response = client.post(url, {"outcome": "approved"})
    assert response.status_code == 409 and b"already been decided" in response.content


def test_escalating_needs_a_note_and_queues_a_task_for_supervisors(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer)
    response = decide(client, task, outcome="escalated", note="  ")
    assert response.status_code == 400 and "footage cannot tell" in response.json()["error"]
    response = decide(client, task, outcome="escalated", note="the hand is hidden", time_spent_ms="9000")
    assert response.status_code == 200
    decision = Decision.objects.get(task=task)
    assert decision.outcome == "escalated" and decision.note == "the hand is hidden"
    assert ReviewTask.objects.filter(transaction=task.transaction, kind="escalation", state="queued").exists()


def test_a_supervisor_voids_an_escalation_from_the_page(client, reviewer, supervisor, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    decide(as_user(client, reviewer), task, outcome="escalated", note="cannot tell")
    escalation = claim_next_task(reviewer=supervisor)
    supervisor_client = as_user(Client(), supervisor)
    waiting = flagged()  # a reviewers' task: not held in reserve for the supervisor, nor opened next
    page = supervisor_client.get(reverse("reviewer:task", args=[escalation.code]))
    assert page.status_code == 200 and b"cannot tell" in page.content and b'id="void-form"' in page.content
    assert not page.context["page"]["on_deck"] and b'id="escalate-btn"' not in page.content
    response = decide(supervisor_client, escalation, outcome="voided", note="nothing visible")
    assert response.status_code == 200
    assert response.json()["next"] == reverse("supervisor:dashboard")
    assert Decision.objects.get(task=escalation).outcome == "voided"
    waiting.refresh_from_db()
    assert waiting.state == "queued" and waiting.assignee is None


# --------------------------------------------------------------------------- skip, renew, leave


def test_skipping_releases_the_task_with_its_reason_and_opens_another(client, reviewer, flagged) -> None:
    task = flagged()
    other = flagged()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, reviewer).post(
        reverse("reviewer:skip", args=[task.code]), {"reason": "video_broken", "note": "black frames"}, **JSON
    )
    assert response.status_code == 200
    assert response.json()["next"] == reverse("reviewer:task", args=[other.code])
    task.refresh_from_db()
    assert task.state == "queued" and task.assignee is None
    released = AuditEvent.objects.get(action="task.released", object_code=str(task.code))
    assert released.after["reason"] == "video_broken: black frames"


def test_skipping_the_only_task_does_not_hand_it_straight_back(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, reviewer).post(
        reverse("reviewer:skip", args=[task.code]), {"reason": "break"}, **JSON
    )
    assert response.json()["next"] == reverse("reviewer:start") + "?empty=1"
    task.refresh_from_db()
    assert task.state == "queued"


def test_a_skipped_task_is_not_handed_back_as_the_next_or_on_deck_task(client, reviewer, flagged) -> None:
    skipped, other, spare = flagged(priority=9), flagged(priority=5), flagged(priority=1)
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer)
    client.post(reverse("reviewer:skip", args=[skipped.code]), {"reason": "break"}, **JSON)
    response = client.get(reverse("reviewer:task", args=[other.code]))
    assert response.context["page"]["on_deck"] == str(spare.code)
    skipped.refresh_from_db()
    assert skipped.state == "queued"


def test_skipping_needs_a_known_reason(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    response = as_user(client, reviewer).post(
        reverse("reviewer:skip", args=[task.code]), {"reason": "meh"}, **JSON
    )
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.state == "assigned"


def test_the_page_renews_its_task_and_the_on_deck_one(client, reviewer, flagged) -> None:
    task = flagged()
    reserve = flagged()
    past = timezone.now() - timedelta(minutes=4)
    on_deck_claim(reviewer=reviewer, current=claim_next_task(reviewer=reviewer, now=past), now=past)
    response = as_user(client, reviewer).post(
        reverse("reviewer:renew", args=[task.code]), {"on_deck": str(reserve.code)}, **JSON
    )
    assert response.status_code == 200
    for held in (task, reserve):
        held.refresh_from_db()
        assert held.lease_expires_at > timezone.now() + timedelta(minutes=4)


def test_renewing_a_lost_task_tells_the_page_to_move_on(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer, now=timezone.now() - timedelta(minutes=30))
    response = as_user(client, reviewer).post(reverse("reviewer:renew", args=[task.code]), **JSON)
    assert response.status_code == 409 and "expired" in response.json()["error"]


def test_leaving_the_page_returns_both_tasks_to_the_queue_soon(client, reviewer, flagged) -> None:
    task = flagged()
    reserve = flagged()
    assert on_deck_claim(reviewer=reviewer, current=claim_next_task(reviewer=reviewer)) is not None
    response = as_user(client, reviewer).post(
        reverse("reviewer:leave", args=[task.code]), {"on_deck": str(reserve.code)}
    )
    assert response.status_code == 204
    for held in (task, reserve):
        held.refresh_from_db()
        assert held.lease_expires_at <= timezone.now() + timedelta(seconds=21)
    assert lease_release_expired(now=timezone.now() + timedelta(seconds=30)) == 2


def test_a_reload_after_the_leave_signal_keeps_the_task(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer).post(reverse("reviewer:leave", args=[task.code]))
    assert client.get(reverse("reviewer:task", args=[task.code])).status_code == 200
    task.refresh_from_db()
    assert task.lease_expires_at > timezone.now() + timedelta(minutes=4)


def test_a_decided_task_page_sends_the_reviewer_on(client, reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    as_user(client, reviewer)
    decide(client, task)
    response = client.get(reverse("reviewer:task", args=[task.code]))
    assert response.status_code == 302 and response["Location"] == reverse("reviewer:start")


# --------------------------------------------------------------------------- services added for the page


def test_on_deck_holds_at_most_one_reserve(reviewer, flagged) -> None:
    first, second, third = flagged(), flagged(), flagged()
    current = claim_next_task(reviewer=reviewer)
    reserve = on_deck_claim(reviewer=reviewer, current=current)
    assert current == first and reserve == second
    assert on_deck_claim(reviewer=reviewer, current=current) == second
    third.refresh_from_db()
    assert third.state == "queued"
    # after deciding the current task, the reserve is what "next" returns
    from reviewapp.services.review import decision_submit

    decision_submit(task=current, reviewer=reviewer, outcome="approved")
    assert claim_next_task(reviewer=reviewer) == second


def test_on_deck_expires_like_any_claim(reviewer, other_reviewer, flagged) -> None:
    flagged()
    flagged()
    past = timezone.now() - timedelta(minutes=30)
    current = claim_next_task(reviewer=reviewer, now=past)
    reserve = on_deck_claim(reviewer=reviewer, current=current, now=past)
    assert lease_release_expired() == 2
    assert claim_next_task(reviewer=other_reviewer) in (current, reserve)


def test_no_on_deck_for_a_task_the_reviewer_does_not_hold(reviewer, flagged) -> None:
    task = flagged()
    flagged()
    assert on_deck_claim(reviewer=reviewer, current=task) is None


def test_leave_only_shortens_a_lease_it_holds(reviewer, other_reviewer, flagged) -> None:
    task = flagged()
    claim_next_task(reviewer=reviewer)
    assert not lease_leave(task=task, reviewer=other_reviewer)
    assert lease_leave(task=task, reviewer=reviewer)
    assert not lease_leave(task=task, reviewer=reviewer)  # already short


# --------------------------------------------------------------------------- look-alikes


def _png(colour: tuple[int, int, int], size: tuple[int, int]) -> ContentFile:
    image = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    image[10:-10, 10:-10] = colour
    ok, data = cv2.imencode(".png", image)
    assert ok
    return ContentFile(data.tobytes())


def test_look_alikes_come_from_the_reference_images(store) -> None:
    from reviewapp.lookalikes import lookalikes

    made = []
    for sku, name, colour, size in (
        ("R1", "Red Bottle", (30, 30, 200), (60, 160)),
        ("R2", "Tomato Can", (25, 40, 210), (70, 160)),
        ("B1", "Blue Box", (200, 60, 20), (160, 120)),
        ("S1", "Soap Lemon", (40, 200, 220), (60, 160)),
        ("S2", "Soap Mint", (120, 200, 40), (60, 160)),
    ):
        product = Product(store=store, sku=sku, name=name, price=100, currency="USD")
        product.image.save(f"{sku}.png", _png(colour, size), save=False)
        product.save()
        made.append(product)
    similar = lookalikes(made)
    assert similar["R1"][0] == "R2" and similar["R2"][0] == "R1"
    assert similar["S1"][0] == "S2"  # same name family
    assert "R1" not in similar["B1"][:1]
