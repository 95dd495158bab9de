"""The reviewer page in a real headless Chromium against a live server and real clips.

Screenshots of the main states go to test-artifacts/screenshots/. The common case
(the tracker was right) is timed and its keystrokes counted; the figures are printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, build_review_queue

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytestmark.append(
        pytest.mark.skip(
            reason=f"no Chromium at {CHROMIUM}: run `sudo apt-get update && sudo apt-get install -y chromium` "
            "(or set CHROMIUM=/path/to/chromium)"
        )
    )

# Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
# between browser steps are plain synchronous code all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def clip_hits(monkeypatch: Any) -> list[tuple[str, str, int]]:
    """Every clip-bytes response the live server sends: (path, Range header, status)."""
    from reviewapp.views import media

    hits: list[tuple[str, str, int]] = []
    real = media.serve_file

    def counting(request: Any, field_file: Any, **kwargs: Any) -> Any:
        response = real(request, field_file, **kwargs)
        if request.path.startswith("/m/clip/") and not request.path.endswith("/poster"):
            hits.append((request.path, request.headers.get("Range", ""), response.status_code))
        return response

    monkeypatch.setattr(media, "serve_file", counting)
    return hits


def log_in(browser: Any, live_server: Any, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/review/")
    page.bring_to_front()
    # "Start reviewing" has the focus, so Enter starts
    page.wait_for_function("document.activeElement && document.activeElement.type === 'submit'")
    return page


def wait_ready(page: Any, *, playable: bool = True) -> None:
    page.wait_for_selector("#review[data-ready='1']")
    if playable:
        page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=15000)


def task_code(page: Any) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def js(page: Any, expression: str) -> Any:
    return page.evaluate(expression)


def shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def test_a_reviewer_plays_tags_and_approves_with_the_keyboard(
    live_server, browser, reviewer, review_scene, screenshot_dir, clip_hits
) -> None:
    from reviewapp.models import Decision, DecisionUndo, ReviewTask

    tasks = build_review_queue(review_scene)
    assert len(tasks) >= 4
    # first the cart with most lines (to tag), then a one-line cart (the common case)
    tasks.sort(key=lambda t: -t.transaction.proposed_lines.count())
    for priority, task in zip((30, 20, 10), (tasks[0], tasks[-2], tasks[1]), strict=True):
        ReviewTask.objects.filter(pk=task.pk).update(priority=priority)
    page = log_in(browser, live_server, reviewer.username)
    shot(page, screenshot_dir, "01-start")

    # claim: the start button has focus, so Enter starts
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/t/*/")
    wait_ready(page)
    first = task_code(page)
    assert ReviewTask.objects.get(code=first).assignee == reviewer
    on_deck = js(page, "JSON.parse(document.getElementById('page-data').textContent).on_deck")
    assert on_deck and on_deck != first
    assert ReviewTask.objects.get(code=on_deck).assignee == reviewer
    shot(page, screenshot_dir, "02-task")

    # play: the clip really decodes (H.264 in Debian's Chromium) and time advances
    start_time = js(page, "document.getElementById('video').currentTime")
    page.keyboard.press("Space")
    page.wait_for_function(
        f"document.getElementById('video').currentTime > {start_time} + 0.3", timeout=10000
    )
    page.keyboard.press("Space")
    assert js(page, "document.getElementById('video').paused")
    assert js(page, "document.getElementById('video').videoWidth") == 640

    # seek: next event, then a click on the timeline
    events = js(page, "JSON.parse(document.getElementById('page-data').textContent).events")
    page.keyboard.press("]")
    state = js(page, "reviewPage.player.state()")
    assert state["event"] is not None
    event = next(e for e in events if e["code"] == state["event"])
    assert abs(state["footageTime"] - (event["t_start"] - 0.5)) < 0.2
    # the event's slot crops, large in the clip's place and back
    small = page.locator("#crop-before").bounding_box()["width"]
    page.keyboard.press("z")
    assert not page.locator("#video").is_visible()
    assert page.locator("#crop-before").bounding_box()["width"] > 2 * small
    page.keyboard.press("z")
    assert page.locator("#video").is_visible()
    assert page.locator("#crop-before").bounding_box()["width"] == small

    box = page.locator("#timeline").bounding_box()
    y = box["y"] + box["height"] / 2
    free = js(  # a point of the timeline with no event marker on it
        page,
        f"[...Array(90).keys()].map(i => (i + 5) / 100).find(f => !document.elementFromPoint({box['x']} + f * {box['width']}, {y}).closest('.marker'))",
    )
    page.mouse.click(box["x"] + free * box["width"], y)
    page.wait_for_function(
        f"Math.abs(document.getElementById('video').currentTime - document.getElementById('video').duration * {free}) < 0.3"
    )

    # frame steps: three forward, one back, at the camera's 15 fps
    before = js(page, "document.getElementById('video').currentTime")
    for key in (".", ".", ".", ","):
        page.keyboard.press(key)
    page.wait_for_timeout(100)
    after = js(page, "document.getElementById('video').currentTime")
    assert abs((after - before) - 2 / 15) < 0.01

    # speed: faster, faster, slower → 1.5×
    for key in (">", ">", "<"):
        page.keyboard.press(key)
    assert js(page, "document.getElementById('video').playbackRate") == 1.5

    # the most doubtful line is first and selected; + raises its quantity
    lines = js(page, "reviewPage.lines.map(l => [l.sku, l.qty, l.confidence])")
    assert [c for _s, _q, c in lines] == sorted(c for _s, _q, c in lines)
    first_sku, first_qty = lines[0][0], lines[0][1]
    page.keyboard.press("+")
    assert js(page, "reviewPage.lines[0].qty") == first_qty + 1
    assert page.locator(".line.selected select[data-reason]").input_value() == "wrong_quantity"

    # swap the second line's product through the picker: look-alikes first, type to search
    page.keyboard.press("j")
    page.keyboard.press("s")
    page.wait_for_selector("#picker[open]")
    shot(page, screenshot_dir, "03-picker")
    second_sku = lines[1][0]
    target = js(
        page,
        f"JSON.parse(document.getElementById('page-data').textContent).products.find(p => p.sku !== {second_sku!r} && p.sku !== {first_sku!r}).name",
    )
    page.keyboard.type(target[:6])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    picked = page.locator("#picker-list li.active").get_attribute("data-sku")
    page.keyboard.press("Enter")
    page.wait_for_selector("#picker:not([open])", state="hidden")
    assert js(page, "reviewPage.lines[1].sku") == picked

    # adding a line offers first what the cart does not hold yet (+ is there for one more)
    page.keyboard.press("n")
    page.wait_for_selector("#picker[open]")
    held = js(page, "reviewPage.lines.filter(l => !l.removed && l.qty > 0).map(l => l.sku)")
    offered = page.locator("#picker-list li.active").get_attribute("data-sku")
    assert offered not in held, (offered, held)
    page.keyboard.press("Escape")
    page.wait_for_selector("#picker:not([open])", state="hidden")
    shot(page, screenshot_dir, "04-tagged")

    # approve with the keyboard; the on-deck task opens next
    page.keyboard.press("a")
    page.wait_for_url(f"**/review/t/{on_deck}/")
    wait_ready(page)
    decision = Decision.objects.get(task__code=first)
    assert decision.outcome == "adjusted" and decision.time_spent_ms > 0
    diff = {d["sku"]: d for d in decision.diff}
    assert diff[first_sku]["final"] == first_qty + 1 and diff[first_sku]["reason"] == "wrong_quantity"
    assert diff[second_sku]["final"] == 0 and diff[second_sku]["reason"] == "wrong_product"
    assert diff[picked]["reason"] == "wrong_product"
    shot(page, screenshot_dir, "05-next-task")

    # the common case: the tracker was right. One key, and the next task is on screen.
    current = task_code(page)
    upcoming = js(page, "JSON.parse(document.getElementById('page-data').textContent).on_deck")
    next_clip = js(page, "JSON.parse(document.getElementById('page-data').textContent).next_clip.url")
    page.wait_for_selector("#review[data-prefetched='1']", timeout=15000)
    fetched_before = [h for h in clip_hits if h[0] == next_clip]
    # Play and Pause clicked with the mouse leave no focus behind: Enter approves, not "press Play"
    page.click("#play-btn")
    page.click("#play-btn")
    assert js(page, "document.getElementById('video').paused")
    # a person looks before approving: a key in the first 350 ms a task is on screen does not count
    page.wait_for_timeout(400)
    keystrokes = 0
    t0 = time.perf_counter()
    page.keyboard.down("Enter")  # let go only below
    keystrokes += 1
    page.wait_for_url(f"**/review/t/{upcoming}/", wait_until="commit")
    navigated_ms = (time.perf_counter() - t0) * 1000
    wait_ready(page)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    decision = Decision.objects.get(task__code=current)
    assert decision.outcome == "approved" and decision.diff == []
    # Enter held down a moment too long repeats on the next task: that does not approve it unseen
    upcoming_next = js(page, "JSON.parse(document.getElementById('page-data').textContent).on_deck")
    page.keyboard.down("Enter")  # the key that approved is still down: this is a repeat
    page.wait_for_timeout(600)
    page.keyboard.up("Enter")
    assert task_code(page) == upcoming and not Decision.objects.filter(task__code=upcoming).exists()
    assert upcoming_next != upcoming

    # the approval taken back: U on the next page reopens that cart for this reviewer, uncharged
    page.wait_for_selector("#undo-bar")
    shot(page, screenshot_dir, "05b-undo-offer")
    page.keyboard.press("u")
    page.wait_for_function(f"!location.pathname.includes({upcoming!r})")
    wait_ready(page)
    reopened = ReviewTask.objects.get(code=task_code(page))
    assert reopened.transaction_id == decision.transaction_id and reopened.assignee == reviewer
    assert DecisionUndo.objects.filter(decision=decision, reopened=reopened).exists()
    assert page.locator("#undo-bar").count() == 0
    fetched_after = [h for h in clip_hits if h[0] == next_clip]
    print(
        f"\nCOMMON CASE: {keystrokes} keystroke(s); key press to next task visible and playable: "
        f"{elapsed_ms:.0f} ms (decision saved and next page requested after {navigated_ms:.0f} ms); "
        f"time on page recorded: {decision.time_spent_ms} ms; "
        f"next clip requests before/after the decision: {len(fetched_before)}/{len(fetched_after)}"
    )
    assert keystrokes <= 2
    assert len(fetched_after) == len(fetched_before), f"the next clip was fetched again: {clip_hits}"

    # help overlay
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    shot(page, screenshot_dir, "06-help")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help:not([open])", state="hidden")

    # escalate with a note: E, type, Enter
    escalated = task_code(page)
    page.keyboard.press("e")
    page.wait_for_selector("#escalate-dialog[open]")
    page.keyboard.type("Hand hidden behind the second shopper")
    shot(page, screenshot_dir, "07-escalate")
    page.keyboard.press("Enter")
    page.wait_for_function(f"!location.pathname.includes({escalated!r})")
    decision = Decision.objects.get(task__code=escalated)
    assert decision.outcome == "escalated" and "Hand hidden" in decision.note
    assert ReviewTask.objects.filter(
        transaction=decision.transaction, kind="escalation", state="queued"
    ).exists()
    shot(page, screenshot_dir, "08-after-escalate")
    page.context.close()


def test_a_second_reviewer_never_sees_the_first_ones_task(
    live_server, browser, reviewer, other_reviewer, review_scene, screenshot_dir
) -> None:
    from reviewapp.models import ReviewTask

    assert len(build_review_queue(review_scene)) >= 4
    first = log_in(browser, live_server, reviewer.username)
    first.keyboard.press("Enter")
    first.wait_for_url("**/review/t/*/")
    wait_ready(first, playable=False)
    second = log_in(browser, live_server, other_reviewer.username)
    second.keyboard.press("Enter")
    second.wait_for_url("**/review/t/*/")
    wait_ready(second, playable=False)
    shot(second, screenshot_dir, "09-second-reviewer")

    mine = {
        task_code(first),
        js(first, "JSON.parse(document.getElementById('page-data').textContent).on_deck"),
    }
    theirs = {
        task_code(second),
        js(second, "JSON.parse(document.getElementById('page-data').textContent).on_deck"),
    }
    assert not mine & theirs
    assert {
        str(c) for c in ReviewTask.objects.filter(assignee=reviewer).values_list("code", flat=True)
    } == mine
    # the second reviewer cannot open the first one's task or clip
    response = second.goto(f"{live_server.url}/review/t/{task_code(first)}/")
    assert response.status == 404
    clip_url = js(first, "JSON.parse(document.getElementById('page-data').textContent).clips[0].url")
    response = second.goto(f"{live_server.url}{clip_url}")
    assert response.status == 404

    # the first reviewer walks away from the page: both held tasks are let go within seconds
    from django.utils import timezone

    from tests.conftest import wait_for

    first.click("nav >> text=Review")
    first.wait_for_url(f"{live_server.url}/review/")
    soon = timezone.now() + timedelta(seconds=25)
    wait_for(
        lambda: all(t.lease_expires_at <= soon for t in ReviewTask.objects.filter(code__in=mine)),
        timeout=10,
        what="the leave beacon to cut the leases short",
    )
    first.context.close()
    second.context.close()


def test_skipping_and_an_expired_lease_move_on_with_a_clear_message(
    live_server, browser, reviewer, review_scene, screenshot_dir
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from reviewapp.models import AuditEvent, Decision, ReviewTask

    build_review_queue(review_scene)
    page = log_in(browser, live_server, reviewer.username)
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/t/*/")
    wait_ready(page, playable=False)

    # skip: X, pick reason 1 (video broken), Enter
    skipped = task_code(page)
    page.keyboard.press("x")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.press("1")
    shot(page, screenshot_dir, "10-skip")
    page.keyboard.press("Enter")
    page.wait_for_function(f"!location.pathname.includes({skipped!r})")
    wait_ready(page, playable=False)
    task = ReviewTask.objects.get(code=skipped)
    assert task.state == "queued" and task.assignee is None
    assert AuditEvent.objects.filter(action="task.released", object_code=skipped).exists()

    # the lease runs out while the page is open: the decision is refused, the page moves on
    current = task_code(page)
    ReviewTask.objects.filter(code=current).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    page.wait_for_timeout(400)  # approving counts once the task has been on screen a moment
    page.keyboard.press("a")
    page.wait_for_function(f"!location.pathname.includes({current!r})")
    wait_ready(page, playable=False)
    flash = page.locator("#flash")
    assert "expired" in flash.inner_text()
    shot(page, screenshot_dir, "11-lease-expired")
    assert not Decision.objects.filter(task__code=current).exists()
    page.context.close()
