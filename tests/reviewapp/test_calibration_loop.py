"""Calibration closes the loop: the threshold the report recommends, once applied, moves the
review share and the error among auto-approved carts on new footage as the report predicted.

Simulated scenes stand in for a store. A calibration set is tracked with every cart sent to
review (threshold 1.0) and decided from truth.json by the stand-in reviewer script; the
report's recommendation is applied through the service the supervisor page uses; a held-out
set is then tracked under the new threshold, and its true carts are recorded as simulator
gold answers (the one place a simulator's truth enters the product), which measured_outcome
reads. Only this test and the stand-in script read truth.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from django.utils import timezone

from reviewapp.management.commands.review_scenes_from_truth import (
    decide_from_truth,
    scenes_track,
    truth_carts,
    truth_script_reviewer,
)
from reviewapp.models import Store, Transaction
from reviewapp.services import quality

pytestmark = [pytest.mark.slow]

# Small, short scenes: 640x360 at 10 fps (a store camera streams at 10-15), easy preset
# (one shopper at a time), 3 shoppers each, about 25 s: about 5 s of one core per scene to
# render and track, so the 8 scenes cost about 40 s. At 320x180 the tracker misreads
# products with a confidence it earned at full size, which is no store's footage.
SCENE = {"preset": "easy", "shoppers": 3, "duration": 25, "width": 640, "height": 360, "fps": 10}
CALIBRATION_SEEDS = (41, 42, 43, 44)
HELD_OUT_SEEDS = (51, 52, 53, 54)
TARGET_ERROR = 0.005
MIN_CARTS = 8  # the page asks for 20 decided carts; this calibration set has 12
Z = 3.0  # tolerance in standard errors (see within_tolerance)


@pytest.fixture(scope="module")
def scene_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    from tracking.simulator import simulate

    root = tmp_path_factory.mktemp("calibration-scenes")

    def render(seed: int) -> Path:
        out = root / f"easy-{seed}"
        simulate(out, seed=seed, **SCENE)  # type: ignore[arg-type]
        return out

    return [render(s) for s in CALIBRATION_SEEDS], [render(s) for s in HELD_OUT_SEEDS]


def within_tolerance(predicted: float, n_predicted: int, measured: float, n_measured: int) -> float:
    """How far apart two shares may be before they disagree, if both are draws from the same
    population of carts: Z standard errors of their difference.

    The prediction is a share of `n_predicted` calibration carts, the measurement a share of
    `n_measured` held-out carts; each is binomial, so the difference has a standard error of
    sqrt(p1(1-p1)/n1 + p2(1-p2)/n2). With a dozen carts a share is often 0 or 1, where that
    formula says 0, so each share is taken as Agresti and Caffo's (x+1)/(n+2). Z = 3 rather
    than 2 because carts of one scene share its shelf and are not independent draws (fewer
    effective carts than counted). The scenes are deterministic, so the test does not flake:
    it fails when a tracker or triage change breaks the report's prediction by more than
    sampling could explain."""

    def adjusted(p: float, n: int) -> tuple[float, int]:
        return (p * n + 1) / (n + 2), n + 2

    p1, m1 = adjusted(predicted, n_predicted)
    p2, m2 = adjusted(measured, n_measured)
    return Z * math.sqrt(p1 * (1 - p1) / m1 + p2 * (1 - p2) / m2)


def test_applying_the_recommended_threshold_moves_review_share_and_error_as_predicted(
    db, scene_sets, supervisor, django_capture_on_commit_callbacks
) -> None:
    calibration, held_out = scene_sets
    store = Store.objects.create(name="Sim", review_threshold=1.0, second_opinion_percent=0, gold_percent=0)
    started = timezone.now()
    with django_capture_on_commit_callbacks(execute=False):  # no worker: clips and charges stay queued
        scenes_track(scenes=calibration, store_name=store.name)
        decided = decide_from_truth(
            store=store, truth=truth_carts(calibration), reviewer=truth_script_reviewer()
        )
    before = quality.measured_outcome(store=store, since=started)
    assert decided == before.transactions >= 10
    assert before.review_share == 1.0 and before.let_through == 0  # the old threshold reviews all

    report = quality.calibration_report(store=store, target_error=TARGET_ERROR, min_auto=MIN_CARTS)
    assert report.recommended_threshold is not None, "no threshold met the target on the calibration set"
    quality.calibration_apply(report=report, actor=supervisor)
    store.refresh_from_db()
    assert store.review_threshold == report.recommended_threshold

    applied = timezone.now()
    with django_capture_on_commit_callbacks(execute=False):
        scenes_track(scenes=held_out, store_name=store.name)
    truth = truth_carts(held_out)
    for txn in Transaction.objects.filter(store=store, triaged_at__gte=applied).select_related("visit"):
        lines = [{"sku": sku, "qty": qty} for sku, qty in truth[txn.visit.token_hash].items()]
        quality.gold_mark(txn=txn, actor=supervisor, lines=lines)
    after = quality.measured_outcome(store=store, since=applied)

    assert after.transactions >= 10 and after.known == after.let_through > 0
    share_tolerance = within_tolerance(
        report.predicted_review_share, report.triaged, after.review_share, after.transactions
    )
    assert abs(after.review_share - report.predicted_review_share) <= share_tolerance, (report, after)
    error_tolerance = within_tolerance(
        report.predicted_error, report.predicted_error_carts, after.error, after.known
    )
    assert abs(after.error - report.predicted_error) <= error_tolerance, (report, after)
    # and it moved: the old threshold sent every cart to a human and let none through
    assert before.review_share - after.review_share > share_tolerance
