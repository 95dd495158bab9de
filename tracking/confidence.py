"""How likely a tracked event, and a whole cart, is to be right.

An event's probability is a logistic function of its evidence (count clarity,
match scores, attribution margin, how long the slot was covered, ...). A cart's
probability of being exactly right is a second logistic function, of its events'
probabilities (their summed logs and the weakest), how many events it has, how
many other shoppers were in the store meanwhile and could have made them, the
weakest attribution margin, and signs of a missed or spurious event (a return
of something never taken, unattributed events during the visit, slot positions
that changed a little with no event while it was in, pick/return pairs that
cancelled out, merged shoppers beside a slot, a slot hidden for long). Both are fitted on simulator
scenes of every preset whose seeds are kept apart from the benchmark's, and
stored in calibration.json:

    python -m tracking.confidence --fit            # renders (or reuses) the scenes, refits, writes the file

The tracker never sees the answers; only this fitting script and the benchmark do.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_THRESHOLD = 0.9  # a cart at or above this probability of being exactly right is auto-approved
AMBIGUOUS_MARGIN = 0.35  # attribution margin under which an event with rival shoppers is ambiguous
LOOKALIKE_MARGIN = 0.05  # correlation margin under which an item put back may be its look-alike
DOUBT_CAP = 0.5  # an ambiguous or look-alike event is worth no more than this
CALIBRATION_FILE = Path(__file__).with_name("calibration.json")

# seeds used for fitting; the benchmark's standard suite uses 1..999
FIT_SEEDS: dict[str, list[int]] = {
    "easy": list(range(100001, 100031)),
    "mixed": list(range(100001, 100025)),
    "hard": list(range(100001, 100009)),
}

FEATURES = (
    "bias",
    "clarity",
    "match",
    "match_margin",
    "attr_margin",
    "rivals",
    "covered",
    "foreign",
    "is_return",
    "multi",
    "init_margin",
    "unattributed",
    "merged",
)


@dataclass(frozen=True)
class EventFeatures:
    kind: str
    qty: int
    clarity: float
    match: float
    match_margin: float
    attribution_margin: float
    candidates: int
    covered_s: float
    foreign: bool
    init_margin: float
    attributed: bool
    merged: bool = False  # a blob of more than one shopper was beside the slot, and others could have done it

    def vector(self) -> NDArray[np.float64]:
        rivals = max(0, self.candidates - 1)
        return np.array(
            [
                1.0,
                self.clarity,
                min(1.0, max(-1.0, self.match)),
                min(1.0, max(-1.0, self.match_margin)),
                self.attribution_margin if rivals else 1.0,
                min(3.0, float(rivals)),
                min(3.0, self.covered_s),
                float(self.foreign),
                float(self.kind == "return"),
                float(self.qty > 1),
                min(1.0, self.init_margin),
                float(not self.attributed),
                float(self.merged),
            ]
        )


@dataclass(frozen=True)
class CartFeatures:
    event_probs: list[float]
    negative: bool  # a return of something the cart never held
    seen: bool  # the visit lies in the footage that was read
    unattributed_nearby: int
    ambiguous: bool
    rivals: int = 0  # most other visits that could have made one of its events
    min_margin: float = 1.0  # smallest attribution margin among its events that had rivals
    overlap: int = 0  # other visits in the store at some time during this one
    doubtful: bool = False  # an item put back that may be its look-alike
    murmurs: float = (
        0.0  # slot positions that changed a little, with no event, while the visit was in (shared)
    )
    cancelled: float = 0.0  # pick/return pairs that cancelled out while the visit was in (shared)
    pairs: int = 0  # slots the cart both picked from and returned to
    merged: bool = False  # one of its events had merged shoppers beside the slot
    dwell: float = 0.0  # longest time one of its events' slots was hidden

    def vector(self, event_probs: Sequence[float] | None = None) -> NDArray[np.float64]:
        probs = self.event_probs if event_probs is None else event_probs
        logs = [math.log(max(1e-4, q)) for q in probs]
        return np.array(
            [
                1.0,
                max(-12.0, sum(logs)),
                min(probs) if probs else 1.0,
                min(8.0, float(len(probs))),
                min(3.0, float(self.rivals)),
                self.min_margin,
                float(self.negative),
                min(3.0, float(self.unattributed_nearby)),
                min(4.0, float(self.overlap)),
                min(4.0, self.murmurs),
                min(3.0, self.cancelled),
                min(3.0, float(self.pairs)),
                float(self.merged),
                min(5.0, self.dwell),
            ]
        )


CART_FEATURES = (
    "bias",
    "sum_log_event",
    "min_event",
    "events",
    "rivals",
    "min_margin",
    "negative",
    "unattributed",
    "overlap",
    "murmurs",
    "cancelled",
    "pairs",
    "merged",
    "dwell",
)


# used until calibration.json exists: hand-set, deliberately cautious
_DEFAULT_WEIGHTS = [1.5, 1.5, 1.0, 2.0, 3.0, -0.5, -0.8, -1.5, -0.5, -0.8, 1.0, -3.0, -1.0]


_OVERRIDE: dict[str, Any] | None = None  # set only while fitting


@lru_cache(maxsize=1)
def _from_file() -> dict[str, Any]:
    if CALIBRATION_FILE.is_file():
        data: dict[str, Any] = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))
        return data
    return {
        "event_weights": _DEFAULT_WEIGHTS,
        "empty_cart": 0.97,
        "cart_curve": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
    }


def _params() -> dict[str, Any]:
    return _OVERRIDE if _OVERRIDE is not None else _from_file()


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _dot(weights: Sequence[float], x: NDArray[np.float64]) -> float:
    """Weights against features; features newer than the weights count zero (until the next fit)."""
    w = np.zeros(len(x))
    n = min(len(x), len(weights))
    w[:n] = weights[:n]
    return float(w @ x)


def event_probability(f: EventFeatures) -> float:
    p = _sigmoid(_dot(_params()["event_weights"], f.vector()))
    if f.kind == "return" and f.match_margin < LOOKALIKE_MARGIN:
        # two products match the item put back about equally well: a look-alike, a person must look
        p = min(p, DOUBT_CAP)
    if f.candidates > 1 and f.attribution_margin < AMBIGUOUS_MARGIN:
        p = min(p, DOUBT_CAP)
    return round(p, 4)


def cart_score(f: CartFeatures) -> float:
    """The uncalibrated score: events all right, and nothing missed."""
    if not f.seen:
        return 0.0
    s = float(_params().get("empty_cart", 0.97))
    for p in f.event_probs:
        s *= p
    if f.negative:
        s *= 0.3
    s *= 0.6**f.unattributed_nearby
    if f.ambiguous:
        s *= 0.5
    return s


def cart_probability(f: CartFeatures) -> float:
    """The chance that the cart is exactly right: a logistic model of the cart's evidence."""
    if not f.seen:
        return 0.0
    params = _params()
    if "cart_weights" in params:
        p = _sigmoid(_dot(params["cart_weights"], f.vector()))
    else:
        curve = params["cart_curve"]
        p = float(np.interp(cart_score(f), curve["x"], curve["y"]))
    if f.doubtful:
        p = min(p, DOUBT_CAP)
    return p


# -- fitting (only here and in the benchmark are the answers read) -------------------


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


def fit_isotonic(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators: a non-decreasing step curve of y on x, as interpolation knots."""
    order = np.argsort(np.asarray(x, np.float64), kind="stable")
    xs = np.asarray(x, np.float64)[order]
    ys = np.asarray(y, np.float64)[order]
    blocks: list[list[float]] = []  # [sum_y, count, x_min, x_max]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([float(yi), 1.0, float(xi), float(xi)])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            b = blocks.pop()
            blocks[-1][0] += b[0]
            blocks[-1][1] += b[1]
            blocks[-1][3] = b[3]
    kx: list[float] = []
    ky: list[float] = []
    for s, n, lo, hi in blocks:
        # shrink small blocks toward the overall mean a little: a step seen in a few carts is noisy
        v = (s + 0.5) / (n + 1.0)
        kx += [lo, hi]
        ky += [v, v]
    return kx, ky


def _fit(cache: Path, presets: list[str]) -> dict[str, Any]:
    global _OVERRIDE
    from tracking.bench import ensure_scene, match_events, run_scene  # the answers live there

    rows_x: list[NDArray[np.float64]] = []
    rows_y: list[float] = []
    scenes = []
    for preset in presets:
        for seed in FIT_SEEDS[preset]:
            d = ensure_scene(cache, preset, seed, 1280, 720)
            result, truth, _ = run_scene(d)
            scenes.append((result, truth))
            for e, ok in match_events(result, truth):
                if e.evidence is not None:
                    rows_x.append(e.evidence.vector())
                    rows_y.append(1.0 if ok else 0.0)
            print(f"{d.name}: {len(result.carts)} carts", file=sys.stderr)
    w = fit_logistic(np.vstack(rows_x), np.asarray(rows_y))
    params: dict[str, Any] = {
        "event_weights": [round(float(v), 4) for v in w],
        "empty_cart": 1.0,
        "cart_curve": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
    }
    # the cart model: features with the refitted event probabilities, against whether the cart was exactly right
    _OVERRIDE = params
    try:
        cx: list[NDArray[np.float64]] = []
        exact: list[float] = []
        for result, truth in scenes:
            for token, cart in result.carts.items():
                if cart.evidence is None or not cart.evidence.seen:
                    continue
                probs = [event_probability(e.evidence) for e in cart.events if e.evidence is not None]
                cx.append(cart.evidence.vector(probs))
                got = {ln.sku: ln.qty for ln in cart.lines}
                exact.append(1.0 if got == truth.carts.get(token, {}) else 0.0)
        wc = fit_logistic(np.vstack(cx), np.asarray(exact), l2=0.5)
    finally:
        _OVERRIDE = None
    params["cart_weights"] = [round(float(v), 4) for v in wc]
    params.pop("cart_curve", None)
    params["fitted_on"] = {p: FIT_SEEDS[p] for p in presets}
    params["events"] = len(rows_y)
    params["carts"] = len(exact)
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracking.confidence", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--fit", action="store_true", help="refit on the fitting scenes and write calibration.json"
    )
    parser.add_argument("--cache", type=Path, default=Path("var/bench-scenes"), help="scene cache folder")
    parser.add_argument("--presets", default="easy,mixed,hard")
    args = parser.parse_args(argv)
    if not args.fit:
        parser.print_help()
        return 0
    params = _fit(args.cache, args.presets.split(","))
    CALIBRATION_FILE.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _from_file.cache_clear()
    print(f"wrote {CALIBRATION_FILE}: {params['events']} events, {params['carts']} carts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
