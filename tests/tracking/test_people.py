"""Shopper blobs: cutting a blob of two shoppers apart by their looks, and naming tracklets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tracking.people import (
    SIGNATURE_CAP,
    Blob,
    Descriptor,
    Signature,
    Tracklet,
    _blob_descriptor,
    _cheapest_labels,
    _runs,
    desc_vector,
    split_blob,
)
from tracking.tracker import TrackSamples, _assignments, _bridged

RED = (40, 40, 200)  # BGR
BLUE = (200, 60, 40)
GREY_LEGS = (90, 90, 90)
DARK_LEGS = (40, 30, 30)


def _frame(
    parts: list[tuple[int, int, tuple[int, int, int], tuple[int, int, int]]],
) -> tuple[np.ndarray, np.ndarray]:
    """A 90x160 foreground mask and picture with shoppers standing side by side (x0, x1, shirt, legs)."""
    fg = np.zeros((90, 160), np.uint8)
    bgr = np.full((90, 160, 3), 180, np.uint8)
    for x0, x1, shirt, legs in parts:
        fg[10:90, x0:x1] = 1
        bgr[10:50, x0:x1] = shirt
        bgr[50:90, x0:x1] = legs
    return fg, bgr


def _look(shirt: tuple[int, int, int], legs: tuple[int, int, int]) -> np.ndarray:
    fg, bgr = _frame([(0, 30, shirt, legs)])
    d = _blob_descriptor(fg, bgr, 0, 30, 10, 90)
    assert isinstance(d, Descriptor)
    return desc_vector(d)


def test_a_blob_of_two_shoppers_is_cut_where_their_looks_meet() -> None:
    fg, bgr = _frame([(20, 60, RED, GREY_LEGS), (60, 110, BLUE, DARK_LEGS)])
    blob = Blob(0, 20, 110, 10, 90, None)
    parts = split_blob(blob, fg, bgr, [_look(RED, GREY_LEGS), _look(BLUE, DARK_LEGS)], min_width=8)
    assert len(parts) == 2
    assert (parts[0].x0, parts[1].x1) == (20, 110) and parts[0].x1 == parts[1].x0
    assert abs(parts[0].x1 - 60) <= 3  # the 5-column smoothing may move the cut a little


def test_a_sliver_of_a_shopper_half_hidden_is_kept_when_wide_enough() -> None:
    fg, bgr = _frame([(20, 32, RED, GREY_LEGS), (32, 100, BLUE, DARK_LEGS)])
    blob = Blob(0, 20, 100, 10, 90, None)
    looks = [_look(RED, GREY_LEGS), _look(BLUE, DARK_LEGS)]
    assert len(split_blob(blob, fg, bgr, looks, min_width=8)) == 2
    assert len(split_blob(blob, fg, bgr, looks, min_width=20)) == 1  # narrower than a part may be


def test_one_shopper_is_not_cut() -> None:
    fg, bgr = _frame([(20, 100, RED, GREY_LEGS)])
    blob = Blob(0, 20, 100, 10, 90, None)
    parts = split_blob(blob, fg, bgr, [_look(RED, GREY_LEGS), _look(BLUE, DARK_LEGS)], min_width=8)
    assert parts == [blob]


def test_the_cheapest_assignment_and_its_alternatives() -> None:
    # two tracklets, two visits: the crossed naming is much dearer than the straight one
    cost = np.array([[0.1, 0.9], [0.8, 0.2]])
    (best_cost, best), others = _assignments(cost, nobody=0.5)
    assert best == (0, 1) and abs(best_cost - 0.3) < 1e-9
    # every other assignment (including "nobody") is listed, dearer
    assert all(c >= best_cost for c, _ in others)
    assert ((1.0, (-1, -1))) in [(round(c, 6), a) for c, a in others]


def test_a_gap_an_arm_bridges_counts_as_bridged():
    mask = np.zeros((180, 320), np.uint8)
    body = Blob(0, 100, 140, 40, 180, None)  # shoulders about row 75
    slot = (160.0, 200.0, 50.0, 60.0)  # x0, x1, y0, y1: right of the body, above its shoulders
    assert _bridged(np.packbits(mask, axis=1), body, *slot) == 0.0
    cv2.line(mask, (140, 75), (165, 55), 1, 4)  # an arm from the shoulder into the slot
    assert _bridged(np.packbits(mask, axis=1), body, *slot) == 1.0
    other = Blob(0, 240, 280, 40, 180, None)  # on the slot's other side, nothing between
    assert _bridged(np.packbits(mask, axis=1), other, *slot) == 0.0


def test_the_bridged_share_read_off_the_packed_mask_is_the_one_the_mask_shows():
    rng = np.random.default_rng(7)
    mask = (rng.random((90, 162)) < 0.02).astype(np.uint8)  # a width that is no multiple of 8
    packed = np.packbits(mask, axis=1)
    for _ in range(300):
        x0 = int(rng.integers(0, 150))
        body = Blob(0, x0, min(162, x0 + int(rng.integers(4, 40))), int(rng.integers(0, 60)), 90, None)
        sx0 = float(rng.integers(0, 150))
        sx1, sy0 = sx0 + float(rng.integers(2, 12)), float(rng.integers(0, 60))
        gap = (body.x1, int(sx0)) if body.x1 <= sx0 else (int(sx1) + 1, body.x0)
        shoulder = body.y0 + 0.25 * (body.y1 - body.y0)
        rows = slice(max(0, int(min(sy0, shoulder))), min(90, int(max(sy0 + 5, shoulder)) + 1))
        want = float(mask[rows, gap[0] : gap[1]].any(axis=0).mean()) if gap[1] > gap[0] else 0.0
        assert _bridged(packed, body, sx0, sx1, sy0, sy0 + 5) == pytest.approx(want)


def test_a_tracklet_renamed_keeps_who_it_was_before():
    tr = Tracklet(1, 0, 10, first=30, last=30)
    assert tr.token_at(40) is None
    tr.names += [(30, "pm_a"), (90, None), (120, "pm_b")]
    assert [tr.token_at(f) for f in (29, 30, 89, 90, 119, 500)] == [None, "pm_a", "pm_a", None, None, "pm_b"]


def test_runs_of_columns_bridge_gaps_of_up_to_three() -> None:
    cols = np.array([2, 3, 4, 8, 9, 14, 20, 21], np.intp)  # gaps of 3 (5-7) and 4 (10-13), then 5
    assert _runs(cols, bridge=3) == [(2, 10), (14, 15), (20, 22)]
    assert _runs(np.array([], np.intp), bridge=3) == []


def test_the_cheapest_labels_pay_for_each_change() -> None:
    then_slightly_other = [[0.0, 1.0]] * 4 + [[0.5, 0.0]] * 4  # a change saves 4 x 0.5
    assert _cheapest_labels(then_slightly_other, 0.6) == [0] * 4 + [1] * 4
    assert _cheapest_labels(then_slightly_other, 2.5) == [0] * 8  # a change dearer than all it saves
    one_column = [[0.0, 1.0]] * 4 + [[0.5, 0.0]] + [[0.0, 1.0]] * 3
    assert _cheapest_labels(one_column, 0.6) == [0] * 8  # two changes to save 0.5


def test_a_signature_keeps_at_most_its_cap_of_samples_spread_over_the_visit() -> None:
    sig = Signature()
    assert sig.vector() is None
    rows = [np.array([i, 2 * i, 0.5, 1.0, 1.5, float(i % 7)]) for i in range(SIGNATURE_CAP + 10)]
    kept: list[np.ndarray] = []
    for row in rows:  # the same thinning, spelt out on a list
        sig.add_vector(row)
        kept.append(row)
        if len(kept) >= SIGNATURE_CAP:
            kept = kept[::2]
        assert len(sig) == len(kept) <= SIGNATURE_CAP
        if len(kept) >= 3:
            assert np.array_equal(sig.vector(), np.median(np.vstack(kept), axis=0))
    assert kept[0] is rows[0] and kept[-1] is rows[-1]


def test_track_samples_pack_points_and_read_back_as_tuples() -> None:
    track = TrackSamples([(3, 10, 20, 30, 40)])
    track.append([4, 11, 21, 31, 41])
    track.append((5, -2, 0, 7, 9))  # a box may start left of the frame
    assert len(track) == 3
    assert track[0] == (3, 10, 20, 30, 40) and track[-1] == (5, -2, 0, 7, 9)
    assert track[1:] == [(4, 11, 21, 31, 41), (5, -2, 0, 7, 9)]
    assert list(track) == [(3, 10, 20, 30, 40), (4, 11, 21, 31, 41), (5, -2, 0, 7, 9)]
    assert track == [[3, 10, 20, 30, 40], [4, 11, 21, 31, 41], [5, -2, 0, 7, 9]]
    assert track == TrackSamples(list(track)) and track != TrackSamples()
    for bad in (3, -4):
        with pytest.raises(IndexError):
            track[bad]
    with pytest.raises(ValueError, match="frame, x, y, w, h"):
        track.append((1, 2, 3))
    assert len(track) == 3
