"""The benchmark's account of why carts were wrong, and its memory check."""

from pathlib import Path

from tracking.bench import footage_peaks, match_events, wrong_cart_causes
from tracking.scene import EventKind, Truth, TruthEvent
from tracking.tracker import ProposedCart, ProposedLine, TrackedEvent, TrackResult


def _tracked(
    t: float, slot: str, sku: str, token: str | None, kind: str = "pick", qty: int = 1
) -> TrackedEvent:
    return TrackedEvent(
        t_start=t,
        t_end=t + 1.0,
        slot=slot,
        sku=sku,
        kind=kind,
        qty=qty,
        confidence=0.9,
        attribution_margin=1.0,
        ambiguous=False,
        token=token,
        before_frame=0,
        after_frame=0,
        box=(0, 0, 1, 1),
    )


def _true(t: float, slot: str, sku: str, token: str, kind: EventKind = "pick", qty: int = 1) -> TruthEvent:
    return TruthEvent(t, t + 1.0, token, slot, sku, kind, qty, ambiguous=False, occluded=False)


def _result(events: list[TrackedEvent], tokens: list[str]) -> TrackResult:
    carts = {}
    for token in tokens:
        mine = [e for e in events if e.token == token]
        qty: dict[str, int] = {}
        for e in mine:
            qty[e.sku] = qty.get(e.sku, 0) + (e.qty if e.kind == "pick" else -e.qty)
        lines = [ProposedLine(sku, n, 0.9) for sku, n in sorted(qty.items()) if n > 0]
        carts[token] = ProposedCart(token, lines, 0.5, mine, flagged=True)
    return TrackResult(carts, [e for e in events if e.token is None], 0.9, {}, None)


def _truth(events: list[TruthEvent], tokens: list[str]) -> Truth:
    carts: dict[str, dict[str, int]] = {token: {} for token in tokens}
    for t in events:
        cart = carts[t.token]
        cart[t.sku] = cart.get(t.sku, 0) + (t.qty if t.kind == "pick" else -t.qty)
    return Truth({k: {s: n for s, n in v.items() if n > 0} for k, v in carts.items()}, tuple(events))


def test_each_kind_of_mistake_is_told_apart_and_right_carts_say_nothing() -> None:
    tokens = ["a", "b", "c", "d", "e"]
    truth = _truth(
        [
            _true(10, "S1", "K1", "a"),  # given to b below
            _true(20, "S2", "K2", "c"),  # missed
            _true(30, "S3", "K3", "c"),  # one taken, two reported
            _true(40, "S4", "K4", "d"),  # put down as another product
            _true(50, "S5", "K5", "e"),  # right
            _true(60, "S6", "K6", "e"),  # taken and put back, neither reported: nets to nothing
            _true(62, "S6", "K6", "e", kind="return"),
            _true(70, "S7", "K7", "a"),  # left to nobody
        ],
        tokens,
    )
    result = _result(
        [
            _tracked(10.2, "S1", "K1", "b"),
            _tracked(30.1, "S3", "K3", "c", qty=2),
            _tracked(40.0, "S4", "K9", "d"),
            _tracked(50.0, "S5", "K5", "e"),
            _tracked(70.0, "S7", "K7", None),
            _tracked(80.0, "S8", "K8", "b"),  # nothing happened there
        ],
        tokens,
    )
    causes = wrong_cart_causes(result, truth)
    assert causes == {
        "given to another shopper": 1,  # a's S1
        "left unattributed": 1,  # a's S7
        "another shopper's event": 1,  # b holds a's
        "no such event": 1,  # b's S8
        "missed": 1,  # c's S2
        "wrong quantity": 1,  # c's S3
        "wrong product": 1,  # d's S4
    }
    assert sum(ok for _, ok in match_events(result, truth)) == 1  # only e's S5 agrees with the truth


def test_the_memory_check_measures_the_process_and_the_trackers_own_share_of_it(small_scene: Path) -> None:
    peak = footage_peaks("small", small_scene)
    assert peak.label == "small" and peak.visits == 2 and peak.seconds >= 20
    # the interpreter, numpy and OpenCV alone take tens of MB; the tracker's own allocations on a
    # small scene a few MB, and both are real readings, not zeros
    assert peak.rss_kib > 30 * 1024
    assert 100 < peak.traced_kib < peak.rss_kib
