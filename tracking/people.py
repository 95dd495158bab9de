"""Shoppers in the shelf camera, and what the entry gate recorded of them.

A shopper is described by two colours: the upper body and the legs. At the gate
they are measured from the front, after white-balancing on the wall behind; in
the shelf camera from behind, on the pixels that differ from the empty shelf.
The description is coarse on purpose: it only has to tell apart the few
shoppers in the store at the same moment.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Descriptor:
    upper: tuple[float, float, float]  # BGR, brightness-normalised
    lower: tuple[float, float, float]


def _normalise(bgr: NDArray[np.float64]) -> tuple[float, float, float]:
    """Chromaticity times a damped brightness: robust to a camera's exposure, not to its colour."""
    s = float(bgr.sum()) + 1e-6
    bright = (s / 3.0) ** 0.5 / 16.0 * 1.0  # sqrt-damped: about 0.3-1.0 for dark to light
    return (float(bgr[0] / s * 3 * bright), float(bgr[1] / s * 3 * bright), float(bgr[2] / s * 3 * bright))


def gate_descriptor(path: Path) -> Descriptor | None:
    """Upper-body and leg colour of the shopper in a gate image; None if it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.shape[0] < 40 or img.shape[1] < 20:
        return None
    f = img.astype(np.float32)
    H, W = f.shape[:2]
    # the wall to the right of the shopper is neutral grey: white-balance on it, row by row
    wall = f[:, int(W * 0.86) : int(W * 0.98)].mean(axis=1)  # (H, 3)
    wall_ref = np.median(
        f[int(H * 0.05) : int(H * 0.3), int(W * 0.86) : int(W * 0.98)].reshape(-1, 3), axis=0
    )
    gains = np.array([200.0, 205.0, 210.0], np.float32) / np.maximum(wall_ref, 1.0)
    balanced = f * gains[None, None, :]
    diff = np.abs(f - wall[:, None, :]).sum(axis=2)
    mask = diff > 40
    mask[:, : int(W * 0.15)] = False  # the door frame
    floor = int(H * 0.85)
    mask[floor:] = False
    rows = np.where(mask.mean(axis=1) > 0.04)[0]
    if rows.size < 10:
        return None
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top
    cols = np.where(mask[top : bottom + 1].mean(axis=0) > 0.2)[0]
    cx = int(np.median(cols)) if cols.size else W // 2
    half = max(3, int(height * 0.05))

    def region(a: float, b: float) -> NDArray[np.float64]:
        r0, r1 = top + int(height * a), top + int(height * b)
        sub = balanced[r0:r1, cx - half : cx + half].reshape(-1, 3)
        m = mask[r0:r1, cx - half : cx + half].reshape(-1)
        pix = sub[m] if m.sum() > 10 else sub
        return np.asarray(np.median(pix, axis=0), np.float64)

    # body: 0.14-0.5 of the height is the shirt; 0.55-0.95 the legs
    return Descriptor(_normalise(region(0.2, 0.45)), _normalise(region(0.6, 0.9)))


@dataclass(frozen=True)
class Blob:
    """A shopper-sized run of changed columns in one sampled frame (analysis pixels)."""

    frame: int
    x0: int
    x1: int
    y0: int
    y1: int
    desc: Descriptor | None

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2


def find_blobs(
    frame_index: int,
    fg: U8,
    bgr: U8 | None,
    band: tuple[int, int],
    min_width: int,
) -> list[Blob]:
    """Shopper blobs from a foreground mask (0/1) of the whole frame.

    A column belongs to a shopper when much of the `band` of rows (torso and legs,
    below the shelves' products mostly) differs from the quiet shelf.
    """
    b0, b1 = band
    # shares of changed pixels, as mean() gives them (counts over a 0/1 mask, a fraction of the time)
    col = np.count_nonzero(fg[b0:b1], axis=0) / max(1, b1 - b0)
    blobs: list[Blob] = []
    for start, end in _runs(np.flatnonzero(col > 0.3), bridge=3):
        if end - start >= min_width:
            sub = fg[:, start:end]
            rows = np.where(np.count_nonzero(sub, axis=1) / (end - start) > 0.25)[0]
            y0 = int(rows[0]) if rows.size else b0
            y1 = int(rows[-1]) + 1 if rows.size else b1
            desc = _blob_descriptor(fg, bgr, start, end, y0, y1) if bgr is not None else None
            blobs.append(Blob(frame_index, start, end, y0, y1, desc))
    return blobs


def _runs(cols: NDArray[np.intp], *, bridge: int) -> list[tuple[int, int]]:
    """(start, end) of the runs of these sorted column numbers, across gaps of up to `bridge` columns."""
    if not cols.size:
        return []
    cut = np.flatnonzero(np.diff(cols) > bridge + 1) + 1
    starts = cols[np.r_[0, cut]].tolist()
    ends = (cols[np.r_[cut - 1, -1]] + 1).tolist()
    return list(zip(starts, ends, strict=True))


def _blob_descriptor(fg: U8, bgr: U8, x0: int, x1: int, y0: int, y1: int) -> Descriptor | None:
    h = y1 - y0
    if h < 10:
        return None
    # the person's full height runs past the bottom of the frame; measure from the head down
    full = max(h, int(fg.shape[0] * 0.8))
    w = x1 - x0
    cx0, cx1 = x0 + w // 4, x1 - w // 4

    def region(a: float, b: float) -> NDArray[np.float64] | None:
        r0, r1 = y0 + int(full * a), min(fg.shape[0], y0 + int(full * b))
        if r1 - r0 < 2:
            return None
        m = fg[r0:r1, cx0:cx1].reshape(-1).astype(bool)
        if m.sum() < 6:
            return None
        pix = bgr[r0:r1, cx0:cx1].reshape(-1, 3)[m]
        return np.asarray(np.median(pix, axis=0), np.float64)

    up = region(0.2, 0.42)
    lo = region(0.6, 0.85)
    if up is None or lo is None:
        return None
    return Descriptor(_normalise(up), _normalise(lo))


def descriptor_distance(a: Descriptor, b: Descriptor) -> float:
    du = np.subtract(a.upper, b.upper)
    dl = np.subtract(a.lower, b.lower)
    return float(np.sqrt((du**2).sum()) + 0.7 * np.sqrt((dl**2).sum()))


def desc_vector(d: Descriptor) -> NDArray[np.float64]:
    return np.asarray(d.upper + d.lower, np.float64)


def vector_distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.sqrt(((a[:3] - b[:3]) ** 2).sum()) + 0.7 * np.sqrt(((a[3:] - b[3:]) ** 2).sum()))


SIGNATURE_CAP = 64


@dataclass
class Tracklet:
    """One shopper blob followed from sampled frame to sampled frame while it stays one blob.

    A tracklet ends where blobs merge or split; its identity (a visit token) is
    known only when the visits' presence windows leave one possibility, and is
    then carried along the tracklet.
    """

    id: int
    x0: int
    x1: int
    first: int
    last: int
    token: str | None = None
    total: NDArray[np.float64] | None = None
    n: int = 0
    widths: int = 0  # sum of the blob widths, over `seen` samples
    seen: int = 0
    shed: int = -1  # the last frame at which a new blob came off it: till then it may have held two
    names: list[tuple[int, str | None]] = field(default_factory=list)  # (from frame, token), in order

    def token_at(self, frame: int) -> str | None:
        """Who this tracklet was at a frame, as far as is known now."""
        token = None
        for since, name in self.names:
            if since > frame:
                break
            token = name
        return token

    def add(self, d: Descriptor | None, width: int) -> None:
        self.widths += width
        self.seen += 1
        if d is None:
            return
        v = desc_vector(d)
        self.total = v if self.total is None else self.total + v
        self.n += 1

    @property
    def mean(self) -> NDArray[np.float64] | None:
        return None if self.total is None or self.n == 0 else self.total / self.n

    @property
    def width(self) -> float:
        return self.widths / max(1, self.seen)


class Signature:
    """How one visit's shopper looks in the shelf camera, learned from moments when the blob was surely them.

    At most SIGNATURE_CAP samples, in one array (a store sees hundreds of visits an hour)."""

    def __init__(self) -> None:
        self._rows: NDArray[np.float64] | None = None
        self._n = 0
        # the median of the samples, kept until one is added: it is asked for far more often (every
        # distance to this visit) than the samples change
        self._vector: NDArray[np.float64] | None = None
        self.released = False  # `release`

    def __len__(self) -> int:
        return self._n

    def release(self) -> None:
        """Let the samples go, once no event can ask for this visit's look any more: asking then
        is a mistake, and raises."""
        self._rows = self._vector = None
        self.released = True

    def add(self, d: Descriptor | None) -> None:
        if d is not None:
            self.add_vector(desc_vector(d))

    def add_vector(self, v: NDArray[np.float64]) -> None:
        if self.released:
            raise RuntimeError("a look added to a visit let go")
        if self._rows is None or self._n == len(self._rows):  # room for twice as many, up to the cap
            rows = np.empty((min(SIGNATURE_CAP, max(8, 2 * self._n)), len(v)), np.float64)
            if self._rows is not None:
                rows[: self._n] = self._rows[: self._n]
            self._rows = rows
        self._rows[self._n] = v
        self._n += 1
        self._vector = None
        if self._n >= SIGNATURE_CAP:  # keep it bounded, spread over the visit
            kept = self._rows[: self._n : 2].copy()
            self._n = len(kept)
            self._rows[: self._n] = kept

    def vector(self) -> NDArray[np.float64] | None:
        if self.released:
            raise RuntimeError("the look of a visit let go was asked for")
        if self._n < 3 or self._rows is None:
            return None
        if self._vector is None:
            self._vector = np.asarray(np.median(self._rows[: self._n], axis=0), np.float64)
        return self._vector


SPLIT_SWITCH = 0.6  # look distance a cut between two shoppers must save, across the columns, to be made
SPLIT_MIN_PIXELS = 4  # changed pixels a column needs in a body band to say something about its colour


def _column_looks(fg: U8, bgr: U8, x0: int, x1: int, y0: int, y1: int) -> tuple[F32, NDArray[np.bool_]]:
    """Each column's look (upper-body and leg colour, as `desc_vector`) and whether it has one."""
    full = max(y1 - y0, int(fg.shape[0] * 0.8))
    parts = []
    ok = np.ones(x1 - x0, bool)
    for a, b in ((0.2, 0.42), (0.6, 0.85)):
        r0, r1 = y0 + int(full * a), min(fg.shape[0], y0 + int(full * b))
        m = fg[r0:r1, x0:x1].astype(np.float32)
        pix = bgr[r0:r1, x0:x1].astype(np.float32) * m[:, :, None]
        # a little of each neighbouring column: stripes and checks are not cut apart
        s = cv2.blur(pix.sum(axis=0)[None], (5, 1))[0]
        n = cv2.blur(m.sum(axis=0)[None, :], (5, 1))[0]
        ok &= n >= SPLIT_MIN_PIXELS
        col = s / np.maximum(n, 1e-6)[:, None]
        tot = col.sum(axis=1, keepdims=True) + 1e-6
        bright = np.sqrt(tot / 3.0) / 16.0
        parts.append(col / tot * 3 * bright)
    return np.hstack(parts).astype(np.float32), ok


def _f32(values: list[float]) -> array[float]:
    """The values rounded to single precision, as numpy's float32 arithmetic would leave them (a
    sum of two singles, made in double precision and rounded once, is exactly the single sum)."""
    return array("f", values)


def _cheapest_labels(cost: list[list[float]], switch: float) -> list[int]:
    """The labelling of the columns (one label per row of `cost`, single-precision values) of
    least total cost with `switch` paid per change of label: Viterbi, in single precision.

    Plain Python: a row holds a handful of labels, where numpy's per-call overhead is the cost.
    """
    k = len(cost[0])
    labels = range(k)
    step = _f32([switch])[0]
    acc = _f32(cost[0])
    back: list[list[int]] = []
    for row in cost[1:]:
        j = min(labels, key=acc.__getitem__)
        move = _f32([acc[j] + step])[0]
        back.append([i if acc[i] <= move else j for i in labels])
        acc = _f32([(a if a <= move else move) + r for a, r in zip(acc, row, strict=True)])
    out = [min(labels, key=acc.__getitem__)]
    for b in reversed(back):
        out.append(b[out[-1]])
    out.reverse()
    return out


def split_blob(blob: Blob, fg: U8, bgr: U8, looks: list[NDArray[np.float64]], min_width: int) -> list[Blob]:
    """A blob wider than one shopper, cut where its columns change from one shopper's look to another's.

    Each column is labelled with the closest of `looks` (the shoppers who may be in
    it), a cut costing `SPLIT_SWITCH`; runs narrower than `min_width` join a
    neighbour. One run left: the blob as it was.
    """
    if len(looks) < 2 or blob.x1 - blob.x0 < 2 * min_width:
        return [blob]
    cols, ok = _column_looks(fg, bgr, blob.x0, blob.x1, blob.y0, blob.y1)
    up, lo = cols[:, None, :3], cols[:, None, 3:]
    lk = np.asarray(looks, np.float32)
    cost = np.sqrt(((up - lk[None, :, :3]) ** 2).sum(axis=2)) + 0.7 * np.sqrt(
        ((lo - lk[None, :, 3:]) ** 2).sum(axis=2)
    )
    cost[~ok] = 0.0
    labels = _cheapest_labels(cost.tolist(), SPLIT_SWITCH)
    runs: list[list[int]] = []  # [start, end, label]
    for c in range(len(labels)):
        if runs and runs[-1][2] == labels[c]:
            runs[-1][1] = c + 1
        else:
            runs.append([c, c + 1, int(labels[c])])
    while len(runs) > 1:
        narrow = min(range(len(runs)), key=lambda i: runs[i][1] - runs[i][0])
        if runs[narrow][1] - runs[narrow][0] >= min_width:
            break
        into = narrow - 1 if narrow > 0 else 1
        lo_i, hi_i = min(narrow, into), max(narrow, into)
        runs[lo_i] = [runs[lo_i][0], runs[hi_i][1], runs[into][2]]
        del runs[hi_i]
        # neighbours that now share a label are one run
        merged: list[list[int]] = []
        for r in runs:
            if merged and merged[-1][2] == r[2]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        runs = merged
    if len(runs) == 1:
        return [blob]
    out = []
    for a, b, _ in runs:
        x0, x1 = blob.x0 + a, blob.x0 + b
        out.append(
            Blob(blob.frame, x0, x1, blob.y0, blob.y1, _blob_descriptor(fg, bgr, x0, x1, blob.y0, blob.y1))
        )
    return out
