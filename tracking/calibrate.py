"""Fit the tracker's confidence models (`tracking.confidence`) on simulator scenes.

    python -m tracking.calibrate --fit     # renders (or reuses) the fitting scenes, refits, writes calibration.json

The fitting scenes' seeds are kept apart from the benchmark's (`tracking.bench`
uses 1..999). Only this script and the benchmark read the answers (truth.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracking import confidence as conf
from tracking.bench import ensure_scene, match_events, run_scene

# the share of auto-approved carts that may be wrong, for the suggested threshold: 0.5%, or when the
# tracker cannot promise that on the fitting scenes, 2%
TARGETS = (0.005, 0.02)

# penalties tried for each model; the one with the least log-loss on scenes held out (FOLDS ways) is kept
L2_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FOLDS = 5

# seeds used for fitting; the benchmark's standard suite uses 1..999
FIT_SEEDS: dict[str, list[int]] = {
    "easy": list(range(100001, 100031)),
    "mixed": list(range(100001, 100065)),
    "hard": list(range(100001, 100017)),
}


def fit_logistic(
    x: NDArray[np.float64], y: NDArray[np.float64], l2: float = 1.0, iters: int = 50
) -> NDArray[np.float64]:
    """L2-regularised logistic regression by Newton's method (the bias is not penalised)."""
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 1e-6
    for _ in range(iters):
        z = np.clip(x @ w, -30, 30)
        p = 1 / (1 + np.exp(-z))
        g = x.T @ (p - y) + reg * w
        h = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def choose_threshold(
    probs: Sequence[float], targets: Sequence[float] = TARGETS
) -> tuple[float, float | None]:
    """The lowest threshold at which the carts auto-approved are expected, by their own calibrated
    probabilities, to be wrong at most the first of `targets` that can be met, and that target
    (None, and 0.999: everything to a person, when none can). What the model promises, not what
    these few hundred fitting carts can show: the benchmark checks it on other seeds."""
    order = sorted(probs, reverse=True)
    for target in targets:
        best = None
        wrong = 0.0
        for n, p in enumerate(order, start=1):
            wrong += 1.0 - p
            if wrong / n <= target:
                best = p
        if best is not None:
            return round(min(best, 0.999), 4), target
    return 0.999, None


def curve(probs: Sequence[float], right: Sequence[float], label: str) -> None:
    """Print, for a few thresholds, the share flagged and the expected and seen error among the rest."""
    pr = np.asarray(probs)
    ok = np.asarray(right)
    for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99):
        auto = pr >= t
        n = int(auto.sum())
        exp_err = float((1 - pr[auto]).mean()) if n else float("nan")
        seen = float(1 - ok[auto].mean()) if n else float("nan")
        print(
            f"  {label:6s} t={t:.2f}: flagged {1 - n / max(1, len(pr)):6.1%}, auto {n:4d}, "
            f"expected error {exp_err:6.2%}, seen {seen:6.2%}",
            file=sys.stderr,
        )


def track_fitting_scenes(cache: Path, presets: list[str]) -> list[tuple[str, Any, Any]]:
    scenes = []
    for preset in presets:
        for seed in FIT_SEEDS[preset]:
            d = ensure_scene(cache, preset, seed, 1280, 720)
            result, truth, _ = run_scene(d)
            scenes.append((preset, result, truth))
            print(f"{d.name}: {len(result.carts)} carts", file=sys.stderr)
    return scenes


def cart_rows(scenes: list[tuple[str, Any, Any]]) -> tuple[list[str], list[conf.CartFeatures], list[float]]:
    """Each seen cart's preset, features (with event probabilities from the current event model), rightness."""
    labels, features, exact = [], [], []
    for preset, result, truth in scenes:
        for token, cart in result.carts.items():
            if cart.evidence is None or not cart.evidence.seen:
                continue
            probs = [conf.event_probability(e.evidence) for e in cart.events if e.evidence is not None]
            features.append(replace(cart.evidence, event_probs=probs))
            got = {ln.sku: ln.qty for ln in cart.lines}
            exact.append(1.0 if got == truth.carts.get(token, {}) else 0.0)
            labels.append(preset)
    return labels, features, exact


def suggest_threshold(
    params: dict[str, Any], labels: list[str], features: list[conf.CartFeatures], exact: list[float]
) -> None:
    with conf.using(params):
        probs = [conf.cart_probability(f) for f in features]
    params["suggested_threshold"], params["suggested_for_error"] = choose_threshold(probs)
    for preset in sorted(set(labels)):
        sel = [i for i, lb in enumerate(labels) if lb == preset]
        curve([probs[i] for i in sel], [exact[i] for i in sel], preset)


def monotone_curve(p: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, list[float]]:
    """The non-decreasing map from predicted probabilities to how often they came true (pool adjacent
    violators), each pooled block at its mean prediction, its rate shrunk by one right and one wrong
    cart (a block of a few dozen all right is not a certainty)."""
    order = np.argsort(p, kind="stable")
    blocks: list[list[float]] = []  # [sum of p, sum of y, count]
    for i in order:
        blocks.append([float(p[i]), float(y[i]), 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sp, sy, n = blocks.pop()
            blocks[-1] = [blocks[-1][0] + sp, blocks[-1][1] + sy, blocks[-1][2] + n]
    shrunk = np.maximum.accumulate([(sy + 1.0) / (n + 2.0) for _, sy, n in blocks])  # still non-decreasing
    return {"x": [round(sp / n, 4) for sp, _, n in blocks], "y": [round(float(v), 4) for v in shrunk]}


def _log_loss(z: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    p = np.clip(1 / (1 + np.exp(-np.clip(z, -30, 30))), 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())


def held_out_logits(
    x: NDArray[np.float64], y: NDArray[np.float64], groups: NDArray[np.int64], l2: float
) -> NDArray[np.float64]:
    """Each row's logit from a fit on the other folds (rows of one scene share a group, and a fold);
    NaN where there is no other fold to fit on."""
    z = np.full(len(y), np.nan)
    for k in range(FOLDS):
        test = groups % FOLDS == k
        if test.any() and not test.all():
            z[test] = x[test] @ fit_logistic(x[~test], y[~test], l2=l2)
    return z


def held_out_l2(x: NDArray[np.float64], y: NDArray[np.float64], groups: NDArray[np.int64]) -> float:
    """The penalty in L2_GRID whose fits predict held-out scenes best (summed log-loss over FOLDS folds)."""
    best, best_loss = L2_GRID[0], math.inf
    for l2 in L2_GRID:
        z = held_out_logits(x, y, groups, l2)
        held = ~np.isnan(z)
        loss = _log_loss(z[held], y[held])
        if loss < best_loss:
            best, best_loss = l2, loss
    return best


def _event_rows(
    scenes: list[tuple[str, Any, Any]],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    xs: list[NDArray[np.float64]] = []
    ys: list[float] = []
    gs: list[int] = []
    for g, (_, result, truth) in enumerate(scenes):
        for e, ok in match_events(result, truth):
            if e.evidence is not None:
                xs.append(e.evidence.vector())
                ys.append(1.0 if ok else 0.0)
                gs.append(g)
    return np.vstack(xs), np.asarray(ys), np.asarray(gs, np.int64)


def fit(cache: Path, presets: list[str]) -> dict[str, Any]:
    """Render (or reuse) the fitting scenes, track them, and fit both models against their answers.

    Each model's penalty is chosen by how well it predicts scenes held out. The cart model learns
    from event probabilities that the event model gave without having seen that scene (fitted on
    the other folds): in-sample probabilities would be surer than the tracker will be on new
    footage, and the cart model would learn to trust them too much.
    """
    params = fit_on(track_fitting_scenes(cache, presets))
    params["fitted_on"] = {p: FIT_SEEDS[p] for p in presets}
    return params


def fit_on(scenes: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """Both models, fitted on tracked scenes: (preset, result, truth) each."""
    ex, ey, eg = _event_rows(scenes)
    event_l2 = held_out_l2(ex, ey, eg)
    w = fit_logistic(ex, ey, l2=event_l2)
    params: dict[str, Any] = {
        "event_weights": [round(float(v), 4) for v in w],
        "empty_cart": 1.0,
        "cart_curve": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
    }
    # the cart rows, each scene's with event probabilities from an event model fitted without it
    labels: list[str] = []
    features: list[conf.CartFeatures] = []
    exact: list[float] = []
    cg: list[int] = []
    for k in range(FOLDS):
        fold = [i for i in range(len(scenes)) if i % FOLDS == k]
        if not fold:
            continue
        wk = fit_logistic(ex[eg % FOLDS != k], ey[eg % FOLDS != k], l2=event_l2)
        with conf.using({**params, "event_weights": [float(v) for v in wk]}):
            for i in fold:
                lb, ft, xt = cart_rows([scenes[i]])
                labels += lb
                features += ft
                exact += xt
                cg += [i] * len(xt)
    cx = np.vstack([f.vector() for f in features])
    cy = np.asarray(exact)
    groups = np.asarray(cg, np.int64)
    cart_l2 = held_out_l2(cx, cy, groups)
    wc = fit_logistic(cx, cy, l2=cart_l2)
    params["cart_weights"] = [round(float(v), 4) for v in wc]
    params.pop("cart_curve", None)
    # the logistic's probabilities, each scene's from a fit without it, against how often such carts
    # were right: a monotone curve from one to the other (a logistic is linear in its features'
    # logits, and on held-out carts it is sure too seldom at the top and too often in the middle)
    held_out = np.nan_to_num(held_out_logits(cx, cy, groups, cart_l2))
    params["cart_recalibration"] = monotone_curve(1 / (1 + np.exp(-np.clip(held_out, -30, 30))), cy)
    params["l2"] = {"event": event_l2, "cart": cart_l2}
    suggest_threshold(params, labels, features, exact)
    params["events"] = len(ey)
    params["carts"] = len(exact)
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracking.calibrate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--fit", action="store_true", help="refit on the fitting scenes and write calibration.json"
    )
    parser.add_argument("--cache", type=Path, default=Path("var/bench-scenes"), help="scene cache folder")
    parser.add_argument("--presets", default="easy,mixed,hard")
    parser.add_argument(
        "--threshold-only",
        action="store_true",
        help="keep the fitted weights; only choose the suggested threshold again (and print the curves)",
    )
    args = parser.parse_args(argv)
    if not (args.fit or args.threshold_only):
        parser.print_help()
        return 0
    presets = args.presets.split(",")
    if args.threshold_only:
        params = json.loads(conf.CALIBRATION_FILE.read_text(encoding="utf-8"))
        with conf.using(params):
            labels, features, exact = cart_rows(track_fitting_scenes(args.cache, presets))
        suggest_threshold(params, labels, features, exact)
    else:
        params = fit(args.cache, presets)
    conf.CALIBRATION_FILE.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    conf.reload()
    print(
        f"wrote {conf.CALIBRATION_FILE}: {params['events']} events, {params['carts']} carts, "
        f"suggested threshold {params['suggested_threshold']} (expected error among auto-approved at most "
        f"{params['suggested_for_error']})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
