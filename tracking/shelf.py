"""What is on each slot: facing positions, product templates, and the changes between quiet moments.

All coordinates here are in analysis pixels (the decoded frame size); `scale`
converts from the planogram's full-frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.scene import Planogram, PlanogramError, Slot

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


def load_product_images(planogram: Planogram, scene_dir: Path | None) -> dict[str, U8]:
    """Reference images by sku; a product whose image is missing gets a flat grey stand-in."""
    images: dict[str, U8] = {}
    for product in planogram.products:
        img = None
        if scene_dir is not None:
            path = scene_dir / product.image
            if path.is_file():
                img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise PlanogramError(f"product {product.sku}: reference image {product.image} cannot be read")
        images[product.sku] = np.asarray(img, np.uint8)
    return images


@dataclass
class Template:
    sku: str
    image: F32  # BGR float32, analysis size
    width: int
    height: int


@dataclass
class SlotState:
    """One slot: its geometry at analysis size, what each facing position holds, and its quiet reference."""

    slot: Slot
    x0: int
    y0: int
    x1: int
    y1: int
    capacity: int
    centers: list[float]
    facing_w: int
    labels: list[str | None]
    init_margin: float
    ref_bgr: F32 = field(repr=False)  # gain-normalised BGR of the box (plus a margin above) when last quiet
    ref_frame: int = 0
    # activity state
    active: bool = False
    active_start: int = 0
    quiet_run: int = 0
    last_quiet: int = 0
    peak_cover: float = 0.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.slot.x, self.slot.y, self.slot.w, self.slot.h)


TOP_MARGIN = 0.35  # share of the slot's height kept above it in the reference (a taller item put back)
PICK_DROP = 0.6  # ... or fell under this share of what it was (see compare_position)
# ... unless the position changed by at least BIG_CHANGE times the threshold: then a clear drop of the
# product's match, PICK_BIG_DROP, is enough (a facing half hidden in the quiet view was a weak match)
BIG_CHANGE = 2.0
PICK_BIG_DROP = 0.1
PICK_MAX_MATCH = 0.42  # a facing still this much like its product has not been taken


def crop_top(s: SlotState) -> int:
    """The first row of the slot's crop: the slot and a margin above it."""
    return max(0, s.y0 - int(round((s.y1 - s.y0) * TOP_MARGIN)))


def crop_box(frame_bgr: F32, s: SlotState) -> F32:
    return frame_bgr[crop_top(s) : s.y1, s.x0 : s.x1]


def make_templates(
    planogram: Planogram, images: dict[str, U8], scale: float
) -> dict[str, tuple[int, int, F32]]:
    """Each product at the size it has on its home slot (analysis pixels): (w, h, image)."""
    out: dict[str, tuple[int, int, F32]] = {}
    for slot in planogram.slots:
        if slot.sku in out:
            continue
        img = images[slot.sku]
        h = max(4, int(round(slot.h * scale)))
        aspect = img.shape[1] / img.shape[0]
        w = max(3, int(round(h * aspect)))
        small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        out[slot.sku] = (w, h, small)
    for sku, img in images.items():
        if sku not in out:  # a product on no slot: a guess at a typical size
            h = max(4, int(round(100 * scale)))
            w = max(3, int(round(h * img.shape[1] / img.shape[0])))
            out[sku] = (w, h, cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32))
    return out


VIEW_MIN_MATCH = 0.2  # a product's correlation with its slot under which the slot does not show it
VIEW_RANK_SLACK = 0.05  # ... nor when another product matches there better by more than this
VIEW_SIMILAR = 0.25  # the rivals looked at: products whose height differs from the slot's product by less
VIEW_SURE = 0.6  # a correlation this high is the product itself (look-alikes aside): no rivals looked at


def view_fit(
    frame: F32, slots: Sequence[Slot], templates: dict[str, tuple[int, int, F32]], scale: float
) -> list[bool | None]:
    """Does each slot show its planogram product in this frame? None: nothing there matches it even
    weakly (VIEW_MIN_MATCH): a shopper in front, no picture, or another shelf.

    A slot fits when its product, standing on the slot's bottom edge anywhere along it, matches
    it and no product of about its height matches there clearly better (look-alikes come close;
    the products of a different shelf, or one the camera no longer frames, do not).
    At half size and a colour plane at a time (OpenCV matches three planes at once far slower):
    a few milliseconds a slot, once a footage.
    """
    planes = _planes(cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    small = {
        sku: (th, _planes(cv2.resize(t, (max(3, tw // 2), max(3, th // 2)), interpolation=cv2.INTER_AREA)))
        for sku, (tw, th, t) in templates.items()
    }
    H, W = planes[0].shape
    half = scale / 2
    out: list[bool | None] = []
    for slot in slots:
        x0, x1 = int(slot.x * half) - 1, int(round((slot.x + slot.w) * half)) + 1
        bottom = int(round((slot.y + slot.h) * half)) + 1
        if x0 < 0 or x1 > W or bottom > H:
            out.append(None)
            continue
        band = [p[:bottom, x0:x1] for p in planes]
        own = _band_match(band, small[slot.sku][1])
        if own is None or own < VIEW_MIN_MATCH:  # nothing like it there: covered, blank, or another shelf
            out.append(None)
            continue
        if own >= VIEW_SURE:  # no product matches a slot that well by chance: no need to look at the others
            out.append(True)
            continue
        own_h = small[slot.sku][0]
        rivals = [
            _band_match(band, tp)
            for sku, (h, tp) in small.items()
            if sku != slot.sku and abs(h - own_h) <= VIEW_SIMILAR * own_h
        ]
        out.append(own >= max((r for r in rivals if r is not None), default=-1.0) - VIEW_RANK_SLACK)
    return out


def _planes(image: NDArray[Any]) -> list[F32]:
    return [np.ascontiguousarray(image[:, :, c], np.float32) for c in range(3)]


def _band_match(band: Sequence[F32], tmpl: Sequence[F32]) -> float | None:
    """The best correlation, over the three colour planes, of a template standing on the band's
    bottom edge (within two pixels) anywhere along it; None when it does not fit in the band."""
    th, tw = tmpl[0].shape
    rows, cols = band[0].shape
    top = rows - th - 2
    if top < 0 or cols < tw:
        return None
    res = [cv2.matchTemplate(band[c][top:], tmpl[c], cv2.TM_CCOEFF_NORMED) for c in range(3)]
    return float(np.max(res[0] + res[1] + res[2])) / 3


def match_at(frame: F32, tmpl: F32, cx: float, bottom: int, slack: int) -> float:
    """Best normalised correlation of `tmpl` placed with its bottom centre near (cx, bottom)."""
    th, tw = tmpl.shape[:2]
    H, W = frame.shape[:2]
    x0 = int(round(cx - tw / 2)) - slack
    y0 = bottom - th - slack
    x1 = x0 + tw + 2 * slack
    y1 = bottom + slack
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if cx1 - cx0 < tw or cy1 - cy0 < th:
        # near the frame edge: crop the template to what fits
        ox, oy = cx0 - x0, cy0 - y0
        tmpl = tmpl[max(0, oy - slack) : th, max(0, ox - slack) : tw]
        th, tw = tmpl.shape[:2]
        if cx1 - cx0 < tw or cy1 - cy0 < th or th < 3 or tw < 3:
            return 0.0
    patch = frame[cy0:cy1, cx0:cx1]
    return ccoeff_normed_max(patch, tmpl)


def ccoeff_normed_max(patch: F32, tmpl: F32) -> float:
    """The best of OpenCV's TM_CCOEFF_NORMED over the few offsets of `tmpl` inside `patch`.

    Computed directly: for a search window of a few pixels this is many times
    faster than cv2.matchTemplate, which pays for a Fourier transform each call.
    """
    th, tw = tmpl.shape[:2]
    t = tmpl.reshape(th, tw, -1).astype(np.float64)
    t = t - t.mean(axis=(0, 1))
    t_norm = float((t * t).sum())
    img = patch.reshape(patch.shape[0], patch.shape[1], -1).astype(np.float64)
    chans = np.moveaxis(img, 2, 0)  # (c, h, w)
    win = np.lib.stride_tricks.sliding_window_view(chans, (chans.shape[0], th, tw))[0]  # (ny, nx, c, th, tw)
    tt = np.moveaxis(t, 2, 0)  # (c, th, tw)
    num = np.einsum("yxcij,cij->yx", win, tt)
    n = th * tw
    c = np.zeros((img.shape[0] + 1, img.shape[1] + 1, img.shape[2]))  # summed-area table
    c[1:, 1:] = img.cumsum(axis=0).cumsum(axis=1)
    sums = c[th:, tw:] - c[:-th, tw:] - c[th:, :-tw] + c[:-th, :-tw]  # (ny, nx, c): each window's sum
    sq = np.einsum("yxcij,yxcij->yx", win, win)
    var = sq - (sums * sums).sum(axis=2) / n
    den = np.sqrt(np.maximum(var, 0.0) * t_norm)
    res = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return float(res.max())


def init_slot(slot: Slot, frame: F32, templates: dict[str, tuple[int, int, F32]], scale: float) -> SlotState:
    """Find the facing positions of `slot` in the first quiet frame and which of them hold its product.

    The planogram gives the slot's rectangle and how many facings it holds; the
    product's image gives a facing's width, hence how many positions fit. The
    `facings` positions that look most like the product are the occupied ones.
    """
    x0, y0 = int(round(slot.x * scale)), int(round(slot.y * scale))
    x1, y1 = int(round((slot.x + slot.w) * scale)), int(round((slot.y + slot.h) * scale))
    w = x1 - x0
    tw, th, tmpl = templates[slot.sku]
    est = max(1, w / max(1.0, tw))
    best: tuple[float, int, list[float], list[float]] | None = None
    for cap in sorted({max(1, int(np.floor(est))), max(1, int(round(est))), max(1, int(np.floor(est)) - 1)}):
        if cap < slot.facings:
            continue
        pitch = w / cap
        centers = [x0 + (i + 0.5) * pitch for i in range(cap)]
        scores = [match_at(frame, tmpl, c, y1, 2) for c in centers]
        top = sorted(scores, reverse=True)[: slot.facings]
        fit = float(np.mean(top)) if top else 0.0
        # a position narrower than a facing cannot hold one
        if pitch < tw * 0.92:
            fit -= 1.0
        if best is None or fit > best[0]:
            best = (fit, cap, centers, scores)
    if best is None:
        cap = max(1, slot.facings)
        pitch = w / cap
        centers = [x0 + (i + 0.5) * pitch for i in range(cap)]
        scores = [match_at(frame, tmpl, c, y1, 2) for c in centers]
        best = (0.0, cap, centers, scores)
    _, cap, centers, scores = best
    order = np.argsort(scores)[::-1]
    labels: list[str | None] = [None] * cap
    for i in order[: slot.facings]:
        labels[int(i)] = slot.sku
    ranked = sorted(scores, reverse=True)
    margin = ranked[slot.facings - 1] - ranked[slot.facings] if 0 < slot.facings < cap else 1.0
    state = SlotState(
        slot=slot,
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        capacity=cap,
        centers=centers,
        facing_w=tw,
        labels=labels,
        init_margin=float(margin),
        ref_bgr=np.zeros((1, 1, 3), np.float32),
    )
    return state


@dataclass(frozen=True)
class PositionChange:
    index: int
    before: str | None
    after: str | None
    diff: float  # mean absolute difference, grey levels
    match: float  # correlation of the new content with what it was taken to be
    runner_up: float  # the next best correlation (another product, or "empty")
    runner_up_sku: str | None
    start: int = 0  # frames: when the position was first disturbed, and when it settled
    end: int = 0
    before_frame: int = 0
    touched: int = -1  # frame the position first showed its new content for good (-1: not known)


def column(s: SlotState, i: int, width: int) -> tuple[int, int]:
    """The crop columns (relative to the slot's x0) of facing position i."""
    half = max(2, int(round(s.facing_w * 0.4)))
    c = int(round(s.centers[i] - s.x0))
    return max(0, c - half), min(width, c + half)


def compare_position(
    s: SlotState,
    i: int,
    before: F32,
    after: F32,
    after_frame: F32,
    templates: dict[str, tuple[int, int, F32]],
    diff_threshold: float,
) -> tuple[PositionChange | None, float]:
    """Did facing position i change between two quiet views of the slot, and into what?

    Returns the change (None if none) and the position's mean difference.
    """
    top_off = before.shape[0] - (s.y1 - s.y0)
    a0, a1 = column(s, i, before.shape[1])
    b = before[top_off:, a0:a1]
    a = after[top_off:, a0:a1]
    d = float(np.abs(a - b).mean()) if b.size else 0.0
    if d < diff_threshold:
        return None, d
    c = s.centers[i]
    old = s.labels[i]
    if old is not None:
        tm = templates[old][2]
        still = match_at(after_frame, tm, c, s.y1, 2)
        was = match_at(before, tm, c - s.x0, before.shape[0], 2)
        # taken: the product's match dropped well below what it was (by a quarter, or to under
        # PICK_DROP of it where it was never a close match: a facing the slot's pitch sets off-centre)
        # a position that changed a lot (BIG_CHANGE times the threshold) needs only a clear drop
        drop = (
            max(was - PICK_BIG_DROP, 0.0)
            if d >= BIG_CHANGE * diff_threshold
            else max(was - 0.25, PICK_DROP * was)
        )
        if still > PICK_MAX_MATCH or still > drop:
            return None, d
        return PositionChange(i, old, None, d, 1.0 - still, was, old), d
    scores = {sku: match_at(after_frame, tm, c, s.y1, 3) for sku, (_, _, tm) in templates.items()}
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    best_sku, best = ranked[0]
    second_sku, second = ranked[1] if len(ranked) > 1 else (None, 0.0)
    if best < 0.35:
        # something changed but it looks like no product: leave the position as it was
        return None, d
    return PositionChange(i, None, best_sku, d, best, second, second_sku), d
