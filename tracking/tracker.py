"""Shelf footage in, each shopper's proposed cart out, with how likely it is to be right.

    result = track_footage("scene/footage.mp4", "scene/planogram.json", "scene/visits.json")

The pipeline, one pass over the footage:
1. Decode once, streaming, through an ffmpeg pipe at the analysis size (360 lines):
   luma at that size for the shelf, luma and chroma at half of it for activity
   and shoppers. The quiet shelf is the first frame that shows the planogram's
   shelf (most slots show their own product, `shelf.view_fit`) and is still a
   moment later; frames before it (no picture yet, a garbled or fading start)
   are skipped, and the visits that could have been at the shelf meanwhile are
   not vouched for (`started_at`). If no such frame comes in the first
   `START_SEARCH_S` (another camera, a moved one, a stale planogram), every cart
   gets confidence 0: the footage does not show this shelf. A camera knocked
   sideways or down by a few pixels is found by phase correlation against
   that first view (every `SHIFT_EVERY` frames, confirmed a moment later) and
   every later frame is moved back; the visits in the store meanwhile are not
   vouched for (`camera_moves`). A picture that stops looking like the shelf
   for longer (moved or turned further, covered, lit differently in part)
   vouches for no visit in the store until it looks like it again
   (`view_lost`). Frames are read at
   the stream's rate from its first (a frame's number tells its time, in
   footage recorded at a varying rate too), or at a whole fraction of it near
   `ANALYSIS_FPS` (every 2nd frame of 25 or 30 fps footage), the rate the
   counts of frames here and the confidence model are set for; the frame
   numbers handed on are the footage's. A stretch with no picture in the
   stream vouches for no visit in the store then (`gaps`).
2. Find each slot's facing positions and which hold its product, from the
   planogram rectangle and the product's reference image (`tracking.shelf`).
3. Every frame: estimate the global brightness against the quiet shelf (drift
   and flicker), then per slot the share of changed pixels in the slot, in a thin
   ring around it (an arm or body crossing it) and from the previous frame. A
   disturbed slot is active; it settles when ring and motion stay quiet for
   `SETTLE_FRAMES`, or when nothing has moved there for `STILL_S` and no shopper
   is within reach (an item put back that stands taller than the slot leaves
   the ring changed for good).
4. When a slot settles, compare each facing position with the last quiet view:
   a product gone is a pick (positions taken = quantity); an empty position now
   holding something is a return, recognised against every product's reference
   image (a foreign item, or a look-alike, shows up as a weak or close match).
5. Every third frame, find shopper blobs (columns of changed pixels), describe
   each by its upper-body and leg colour, and follow them as tracklets (a blob
   continues a tracklet while it overlaps it one-to-one). A blob wider than one
   shopper, while several visits are in, is cut where its columns' colours turn
   from one visit's look to another's (`people.split_blob`): a shopper half
   hidden behind another still shows as a sliver of their own. A tracklet is
   named after a visit when only one visit can be in view (each shopper is in
   view only inside their visit, a little after the gate and before leaving),
   when it walks in at the frame's edge while one visit is entering, or when the
   cheapest one-to-one assignment of the unknown tracklets to the visits not yet
   in view, by look (learned in this camera, else the gate image's), names it
   and every other naming of it costs clearly more. Once nothing more can be
   learned about it (every visit that could have made it has left, its blobs are
   no longer followed: `_finish_settled`), each event goes to the visit whose
   blobs were beside the slot in the `REACH_WINDOW_S` before the reach ended:
   when the changed position's column first showed its new view for good (no
   look like the old view after it), which can be long before the slot settled
   (a shopper standing in front). Named
   tracklets count as they are, others by their look against the look of each
   candidate in the store at that moment and not named as another blob in view
   then; the margin is the score gap. A rival
   in the store then that no shopper in view was known to be may stand hidden
   behind the one at the slot: that is evidence too (`unseen`).
6. A pick and a later return of the same facing position (within `PAIR_S`)
   whose quiet views before the pick and after the return are the same cancel
   out (a shopper standing in front of the slot), when both go to one shopper or
   the returner never took that product. Pairs are settled while the footage is
   read, as soon as whom each goes to is final (`_known`), or once older than
   `HORIZON_S`; events are scored and their evidence let go as soon as their
   result is settled, so memory stays flat in the footage's length, and a visit's
   cart is handed out (`on_carts`) as soon as nothing still to be read can change
   it, a few seconds of footage after the visit and everyone beside it left.
7. Score each event from its evidence (`tracking.confidence`): count clarity,
   match scores, attribution margin, how long the slot was covered and stayed
   disturbed, merged shoppers beside it, and fold the events into lines and a cart confidence (a
   logistic model of the cart's evidence: events, rivals, overlapping visits,
   margins, positions that changed a little with no event while the visit was
   in, cancelled pairs, dwell), fitted on simulator scenes of every preset.

The tracker reads only the footage, planogram, visits and gate/product images.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, overload

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking import confidence as conf
from tracking import scene as scene_files
from tracking.decode import DecodeError, DecodeReport, StreamInfo, iter_yuv, probe_stream, stream_gaps
from tracking.people import (
    Blob,
    Descriptor,
    Signature,
    Tracklet,
    desc_vector,
    find_blobs,
    gate_descriptor,
    split_blob,
    vector_distance,
)
from tracking.scene import Planogram, VisitInfo
from tracking.shelf import (
    PositionChange,
    SlotState,
    column,
    compare_position,
    crop_box,
    crop_top,
    init_slot,
    load_product_images,
    make_templates,
    view_fit,
)

DEFAULT_THRESHOLD = conf.DEFAULT_THRESHOLD
SHELF_NOT_IN_VIEW = "the footage does not show the planogram's shelf"

ANALYSIS_HEIGHT = 360
# the frame rate the counts of frames here are set for (and the confidence model fitted at): footage
# recorded faster (25, 30, 60 fps) is read at a whole fraction of its rate near this, every 2nd or
# 4th frame, so that a half-second is as many frames, and the work per second of footage the same
ANALYSIS_FPS = 15.0
SETTLE_FRAMES = 7  # quiet frames (at 15 fps about half a second) before a slot's new state counts
STILL_S = 2.0  # a slot whose changed ring stood still this long, no shopper near, has a new state
PEOPLE_EVERY = 3  # shopper blobs are looked for every n-th frame
DIFF_T = 28  # grey levels: a pixel differs from the quiet shelf
MOTION_T = 22
RING = 3  # pixels (activity scale) around a slot
RING_QUIET = 0.04
MOTION_QUIET = 0.02
COVER_QUIET = 0.04
EMIT_AFTER_S = 3.0
# the quiet shelf the tracker starts from is a frame that shows the planogram: most slots (VIEW_FIT_SHARE)
# show their product (shelf.view_fit). Frames before it (no picture yet, a garbled start) are skipped;
# it is looked for every START_EVERY frames for START_SEARCH_S, after which the footage does not show
# this shelf (another camera, a stale planogram) and no cart from it is trusted
VIEW_FIT_SHARE = 0.75
START_EVERY = 5
START_SEARCH_S = 10.0
START_STILL = 4.0  # grey levels: the most a still view changes between two tested frames (_picture_change)
# a camera knocked sideways or down by a few pixels: every SHIFT_EVERY frames the picture is compared
# with the quiet shelf by phase correlation (at a quarter of the activity size, then exactly); a shift
# of SHIFT_MIN to SHIFT_MAX activity pixels, found again SHIFT_CONFIRM frames later, is undone on every
# frame from then on (the visits in the store meanwhile are not vouched for)
SHIFT_EVERY = 15
SHIFT_CONFIRM = 5
SHIFT_MIN = 1.5
SHIFT_MAX = 12.0
SHIFT_RESPONSE = 0.15  # phase correlation peak under which no shift is read
# a camera moved or turned further than that, covered, or its light gone: every SHIFT_EVERY frames the
# picture is also correlated with the quiet shelf as it now is (slots updated as they settled); under
# VIEW_LOST_LIKE at every check for VIEW_LOST_S, the view was lost from the first of them, and the visits
# in the store from then until it came back are not vouched for (`view_lost`). Shoppers crowding in
# front lower it for a moment; a shelf emptied over the hours does not (the reference follows it)
VIEW_LOST_LIKE = 0.6
VIEW_LOST_S = 5.0
# ... or for VIEW_LOST_END_S up to the footage's last check: it did not come back before the end, and
# whoever was in the store then must not be vouched for on the footage's last look at them
VIEW_LOST_END_S = 2.0
# ... or lit unevenly: part of the picture brighter or darker than the rest, each of its pixels by about
# the same factor (a light gone over part of the shelf): the brightness is followed only as a whole.
# In a cell of a LIGHT_GRID x LIGHT_GRID grid whose pixels' log brightness ratios to the shelf spread by
# less than LIGHT_SPREAD (between quartiles; a shopper in front spreads them far more), a median ratio
# LIGHT_UNEVEN or more (log) from the whole picture's
LIGHT_GRID = 3
LIGHT_SPREAD = 0.1
LIGHT_UNEVEN = 0.2
# no picture for longer than this in the stream (frames lost on the way, or not recorded): a reach takes
# about a second, so the visits in the store meanwhile are not vouched for (`gaps`)
GAP_S = 0.5
REACH_WINDOW_S = 2.0  # a reach in and out takes about a second; the slot settles soon after
CHANGE_DIFF = 22.0  # mean grey-level difference at which a facing position counts as changed
BLOB_MEMORY_S = 24.0  # shopper blobs (and foreground masks) kept to attribute a change made this long ago
# A position's column, while it is busy, is compared with its quiet view before and after: the
# reach that changed it ended where the column first showed the after view for good (no before
# view later), not when the slot settled, which can be much later (a shopper standing in front).
# A look is like one view when it is within this share of the other view's distance, and of how far
# apart the two views are (a shopper in front is far from both).
VIEW_NEAR = 0.5
VIEW_APART = 4.0  # grey levels: two views closer than this cannot be told apart
# a shopper is in view only inside their visit: some time after the gate, and before leaving it
ENTER_DELAY_S = 1.5
EXIT_LEAD_S = 0.5
ENTRY_WALK_S = 8.0  # after entering, a shopper first shows at the frame's edge within this
EXIT_WALK_S = 6.0
PRESENT_SLACK_S = 0.5  # ... give or take this (the gate's clock, a quick walk)
APPEARANCE_SCALE = 0.08  # descriptor distance over which a match's weight falls by e
NAME_MARGIN = 0.25  # a tracklet is named when any other naming of it costs this much more look distance
PLAUSIBLE_LOOK = 0.45  # ... and its own look is at most this far from the visit's
LAST_LOOK = 0.8  # the one tracklet left for the one visit left: unless it looks nothing like them
OVERLAP_SHARE = 0.5  # a blob carries a tracklet on when they overlap by this share of the narrower
DEPTH_W = 3.0  # a blob beside a slot counts e^-3 less per shopper-width wider than the narrowest there
MAX_ASSIGN = 5  # tracklets and visits weighed at once (the rest wait for the next frame)
NOBODY_COST = 0.5  # the look distance a tracklet is charged for being no candidate (an arm, a fragment)
WIDE_BLOB = 1.5  # a blob this many times a shopper's usual width holds more than one
NARROW_BLOB = 0.6  # ... and one this narrow is an arm or part of one
SPLIT_MERGED = True  # cut blobs wider than SPLIT_WIDE shoppers apart by the shoppers' looks
SPLIT_WIDE = 1.0
SPLIT_NARROW = (
    0.3  # ... into parts at least this wide (a shopper mostly hidden behind another shows a sliver)
)
HELD_SWAP_MARGIN = 0.12
MURMUR_DIFF = (
    0.55  # share of CHANGE_DIFF: a settled position this changed, with no event, may hide a missed one
)
PAIR_S = (
    12.0  # a pick and a return of the same position within this may cancel out (a shopper standing there)
)
HORIZON_S = 60.0  # raw events older than this are paired (above) while the footage is still read
SETTLE_EVERY = 30  # frames: how often events are paired and finished, and carts handed out, while reading
NEARBY_S = 1.0  # an event tied to nobody this near a visit's time in the store counts against its cart
# a cart is handed out while the footage is read (`on_carts`) once this much footage after the visit and
# its last event is read too: a clip of it with a second or two of context has its shoppers' tracks
CART_TAIL_S = 2.0
PAIR_SAME = (
    0.8  # share of CHANGE_DIFF under which the views before the pick and after the return are the same
)


class TrackingError(Exception):
    """The tracker cannot process this input; the message says what is wrong."""


class VideoError(TrackingError):
    """The footage is missing, empty, corrupt or not a video."""


class PlanogramError(TrackingError, scene_files.PlanogramError):
    """The planogram is malformed or does not fit the footage (e.g. a slot outside the frame)."""


class VisitsError(TrackingError, scene_files.VisitsError):
    """The visits are malformed or none of them overlaps the footage."""


@dataclass(frozen=True, slots=True)
class TrackedEvent:
    t_start: float
    t_end: float
    slot: str
    sku: str
    kind: str  # "pick" | "return"
    qty: int
    confidence: float
    attribution_margin: float
    ambiguous: bool
    token: str | None
    before_frame: int
    after_frame: int
    box: tuple[int, int, int, int]  # the slot, full-frame pixels (x, y, w, h)
    candidates: tuple[str, ...] = ()  # visits present at the time, best first
    match: float = 1.0  # how well the new content matched what it was taken to be
    match_margin: float = 1.0  # against the runner-up (another product or empty)
    clarity: float = 1.0  # how clearly the count changed (0..1)
    covered_s: float = 0.0  # how long the slot was out of view
    evidence: conf.EventFeatures | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ProposedLine:
    sku: str
    qty: int
    confidence: float


@dataclass(frozen=True, slots=True)
class ProposedCart:
    token: str
    lines: list[ProposedLine]
    confidence: float
    events: list[TrackedEvent]
    flagged: bool
    evidence: conf.CartFeatures | None = field(default=None, compare=False, repr=False)


TrackPoint = tuple[int, int, int, int, int]  # frame, x, y, w, h in full-frame pixels


class TrackSamples(Sequence[TrackPoint]):
    """One shopper's track, (frame, x, y, w, h) samples packed as machine ints: 20 bytes a sample
    where a tuple of Python ints takes about 190, and an hour of footage holds tens of thousands."""

    __slots__ = ("_ints",)

    def __init__(self, points: Iterable[Sequence[int]] = ()) -> None:
        self._ints = array("i")
        for point in points:
            self.append(point)

    def append(self, point: Sequence[int]) -> None:
        if len(point) != 5:
            raise ValueError(f"a track sample is (frame, x, y, w, h), not {point!r}")
        self._ints.extend(point)

    def __len__(self) -> int:
        return len(self._ints) // 5

    @overload
    def __getitem__(self, i: int) -> TrackPoint: ...
    @overload
    def __getitem__(self, i: slice) -> list[TrackPoint]: ...
    def __getitem__(self, i: int | slice) -> TrackPoint | list[TrackPoint]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = i + n if i < 0 else i
        if not 0 <= k < n:
            raise IndexError("track sample index out of range")
        f, x, y, w, h = self._ints[5 * k : 5 * k + 5]
        return (f, x, y, w, h)

    def __iter__(self) -> Iterator[TrackPoint]:
        ints = iter(self._ints)
        return zip(ints, ints, ints, ints, ints, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrackSamples):
            return self._ints == other._ints
        return isinstance(other, Sequence) and list(self) == [tuple(p) for p in other]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TrackSamples({list(self)!r})"


@dataclass(frozen=True)
class EarlyCarts:
    """Carts settled together while the footage is still read (`track_footage(on_carts=...)`):
    each is the one the result will hold. `unattributed`: the events tied to nobody so far, among
    them every one that started before any of these visits ended; `shelf_in_view`: the result's
    `stats["shelf_in_view"]`; `tracks`: every shopper's track as it stands when the callback runs
    (to `read_to` seconds: each visit's end, its last event's and `CART_TAIL_S` after them are
    read; they grow after it)."""

    carts: list[ProposedCart]
    unattributed: list[TrackedEvent]
    shelf_in_view: bool
    read_to: float
    tracks: dict[str, TrackSamples]

    def tracks_json(self) -> dict[str, list[list[int]]]:
        return _tracks_json(self.tracks)


def _tracks_json(tracks: dict[str, TrackSamples]) -> dict[str, list[list[int]]]:
    """Shopper tracks as JSON holds them: {token: [[frame, x, y, w, h], ...]}."""
    return {token: [list(p) for p in pts] for token, pts in tracks.items()}


@dataclass(frozen=True)
class TrackResult:
    carts: dict[str, ProposedCart]
    unattributed: list[TrackedEvent]
    threshold: float
    stats: dict[str, Any]
    truncated_at: float | None
    tracks: dict[str, TrackSamples] = field(default_factory=dict)
    # seconds at the start skipped because they did not show the shelf (a garbled start); None: none
    started_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return result_to_dict(self)

    def tracks_json(self) -> dict[str, list[list[int]]]:
        """The shopper tracks as JSON holds them: {token: [[frame, x, y, w, h], ...]}."""
        return _tracks_json(self.tracks)

    def caveats(self) -> list[str]:
        """What limits this result, in words for a person (the CLI, a supervisor's footage note)."""
        out = []
        if not self.stats.get("shelf_in_view", True):
            out.append(
                f"{SHELF_NOT_IN_VIEW} (share of slots showing their product: {self.stats['view_fit']:.0%})"
            )
        if self.started_at is not None:
            out.append(f"the shelf came into view only at {self.started_at:.1f}s")
        for when, dx, dy in self.stats.get("camera_moves", []):
            out.append(f"the camera moved by ({dx}, {dy}) px at {when:.1f}s (followed)")
        for start, end in self.stats.get("view_lost", []):
            until = "the end" if end is None else f"{end:.1f}s"
            out.append(
                f"the picture stopped showing the shelf as it was from {start:.1f}s to {until} "
                "(camera moved or turned beyond following, covered, or lit differently): carts then not vouched for"
            )
        for start, end in self.stats.get("gaps", []):
            out.append(f"no picture from {start:.1f}s to {end:.1f}s (frames missing from the stream)")
        if self.truncated_at is not None:
            out.append(f"truncated: read up to {self.truncated_at:.1f}s")
        return out


def _event_dict(e: TrackedEvent) -> dict[str, Any]:
    d = asdict(e)
    d.pop("evidence", None)
    d["box"] = list(e.box)
    d["candidates"] = list(e.candidates)
    for k in ("t_start", "t_end", "covered_s"):
        d[k] = round(float(d[k]), 3)
    for k in ("confidence", "attribution_margin", "match", "match_margin", "clarity"):
        d[k] = round(float(d[k]), 4)
    return d


def result_to_dict(result: TrackResult) -> dict[str, Any]:
    """The CLI's JSON shape."""
    return {
        "threshold": result.threshold,
        "carts": {
            token: {
                "lines": [
                    {"sku": ln.sku, "qty": ln.qty, "confidence": round(ln.confidence, 4)} for ln in cart.lines
                ],
                "confidence": round(cart.confidence, 4),
                "flagged": cart.flagged,
                "events": [_event_dict(e) for e in cart.events],
            }
            for token, cart in result.carts.items()
        },
        "unattributed": [_event_dict(e) for e in result.unattributed],
        "stats": result.stats,
        "truncated_at": result.truncated_at,
        "started_at": result.started_at,
        "tracks": result.tracks_json(),
    }


# -- inputs ---------------------------------------------------------------------


def _load_planogram(planogram: Planogram | Path | str) -> tuple[Planogram, Path | None]:
    if isinstance(planogram, Planogram):
        return planogram, None
    path = Path(planogram)
    try:
        return scene_files.load_planogram(path), path.parent
    except scene_files.PlanogramError as exc:
        raise PlanogramError(str(exc)) from exc


def _load_visits(visits: Sequence[VisitInfo] | Path | str) -> tuple[list[VisitInfo], Path | None]:
    if isinstance(visits, (str, Path)):
        path = Path(visits)
        try:
            return scene_files.load_visits(path), path.parent
        except scene_files.VisitsError as exc:
            raise VisitsError(str(exc)) from exc
    return list(visits), None


def _analysis_step(fps: float) -> int:
    """Every how many frames of footage at `fps` the tracker looks at one (`ANALYSIS_FPS`)."""
    return max(1, round(fps / ANALYSIS_FPS))


def _analysis_size(info: StreamInfo) -> tuple[int, int]:
    h = min(ANALYSIS_HEIGHT, info.height)
    h -= h % 4
    w = int(round(info.width * h / info.height))
    w -= w % 4
    return max(w, 8), max(h, 8)


# -- the pass over the footage -----------------------------------------------------


@dataclass
class _Visit:
    info: VisitInfo
    desc: Descriptor | None
    signature: Signature = field(default_factory=Signature)

    def present(self, t: float, slack: float = 0.0) -> bool:
        return self.info.entered_at + ENTER_DELAY_S - slack <= t <= self.info.exited_at - EXIT_LEAD_S + slack


# weight, the blob's tracklet, its description, frame, and the other tracklets in view then (whoever
# they turn out to be was not this blob)
Observation = tuple[float, Tracklet, Descriptor | None, int, tuple[Tracklet, ...]]


class _MaskRing:
    """The foreground masks of the last `size` people frames, by frame number, their columns
    packed eight to a byte into one buffer taken once (0.9 MB at the usual analysis size): kept as
    they came, 24 seconds of them took 7 MB, and freed and taken again one by one they broke up the
    heap of a long run."""

    def __init__(self, size: int) -> None:
        self.frames = [-1] * size
        self.packed = np.zeros((size, 0, 0), np.uint8)
        self.next = 0

    def put(self, frame: int, mask: NDArray[np.uint8]) -> None:
        h, w = mask.shape
        if self.packed.shape[1:] != (h, (w + 7) // 8):
            self.packed = np.zeros((len(self.frames), h, (w + 7) // 8), np.uint8)
            self.frames = [-1] * len(self.frames)
        k = self.next
        self.packed[k] = np.packbits(mask, axis=1)
        self.frames[k] = frame
        self.next = (k + 1) % len(self.frames)

    def get(self, frame: int) -> NDArray[np.uint8] | None:
        try:
            k = self.frames.index(frame)
        except ValueError:
            return None
        packed: NDArray[np.uint8] = self.packed[k]
        return packed


class _Looks:
    """A position's column as it looked on each frame since it became busy (the newest `seen_max`),
    with the frame's number and gain: the pixels packed in blocks of `BLOCK` looks, where an array
    each took about twice their size, so that the busiest minutes of a long footage (forty
    positions busy at once, for up to `BLOB_MEMORY_S` each) do not raise its peak memory."""

    BLOCK = 32
    __slots__ = ("shape", "frames", "gains", "blocks", "head")

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.frames = array("i")
        self.gains = array("d")
        self.blocks: deque[NDArray[np.uint8]] = deque()
        self.head = 0  # where the oldest look kept is in the first block

    def __len__(self) -> int:
        return len(self.frames)

    def append(self, frame: int, col: NDArray[np.uint8], gain: float) -> None:
        at = (self.head + len(self.frames)) % self.BLOCK
        if at == 0:
            self.blocks.append(np.empty((self.BLOCK, *self.shape), np.uint8))
        self.blocks[-1][at] = col
        self.frames.append(frame)
        self.gains.append(gain)

    def drop_oldest(self) -> None:
        del self.frames[0]
        del self.gains[0]
        self.head += 1
        if self.head == self.BLOCK:
            self.blocks.popleft()
            self.head = 0

    def clear(self) -> None:
        self.frames = array("i")
        self.gains = array("d")
        self.blocks.clear()
        self.head = 0

    def views(self, upto: int) -> tuple[list[int], NDArray[np.float64], NDArray[np.uint8]]:
        """The looks from frames up to `upto`: their frame numbers, gains and columns (n, h, w)."""
        n = len(self.frames)
        while n and self.frames[n - 1] > upto:
            n -= 1
        cols = (
            np.concatenate(self.blocks)[self.head : self.head + n]
            if n
            else np.empty((0, *self.shape), np.uint8)
        )
        return list(self.frames[:n]), np.array(self.gains[:n], np.float64), cols


@dataclass
class _Pos:
    slot: int  # index into the pass's slots
    i: int  # facing position within the slot
    active: bool = False
    start: int = 0
    quiet_run: int = 0
    k: int = 0  # index into the pass's positions (and its per-position arrays)
    peak_cover: float = 0.0
    covered: int = 0  # frames the position was mostly hidden in its last episode
    # its column (activity scale, with the frame's gain) on each frame since it became busy
    seen: _Looks = field(default_factory=lambda: _Looks((0, 0)))  # given the column's size


@dataclass
class _RawEvent:
    slot: SlotState
    kind: str
    sku: str
    qty: int
    start: int
    end: int
    before_frame: int
    after_frame: int
    changes: list[PositionChange]
    clarity: float
    covered_frames: int
    seen: list[Observation] = field(default_factory=list)  # shopper blobs beside the slot meanwhile
    merged: bool = False  # a blob beside the slot meanwhile was wider than one shopper
    # by position, the view `_cancel_pairs` compares: a pick's column before, a return's after
    cols: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    dropped: bool = False  # cancelled by a matching return (or pick) of the same position
    in_view: list[tuple[Tracklet, int]] = field(default_factory=list)  # every shopper blob in view meanwhile
    # ... summed up once no longer wanted as such: (first, last time, names in view, unnamed tracklets)
    view: tuple[float, float, frozenset[str | None], int] | None = None
    # who was beside the slot before `seen`, over a long disturbance (a shopper standing in front,
    # several at it in turn)
    earlier: list[Observation] = field(default_factory=list)


class _Pass:
    def __init__(
        self,
        planogram: Planogram,
        visits: list[_Visit],
        products: dict[str, NDArray[np.uint8]],
        info: StreamInfo,
        size: tuple[int, int],
    ) -> None:
        self.planogram = planogram
        self.visits = visits
        self.products = products
        self.info = info
        # frames here are the ones looked at, `step` frames of footage apart; `fps` is their rate
        native = info.fps if info.fps > 0 else planogram.camera.fps
        self.step = _analysis_step(native)
        self.fps = native / self.step
        self.aw, self.ah = size
        self.scale = self.aw / planogram.camera.width
        self.reach = max(8.0, 0.12 * self.aw / 2)  # an arm's length, in the half-size pixels of the blobs
        self.templates = make_templates(planogram, products, self.scale)
        self.slots: list[SlotState] = []
        self.ref_small: NDArray[np.uint8] | None = None
        self.ref_sample: NDArray[np.float32] | None = None
        self.seen_max = int(BLOB_MEMORY_S * self.fps)
        self.still_frames = max(SETTLE_FRAMES, int(STILL_S * self.fps))
        self.bands: list[tuple[int, int]] = []
        self.frame32: NDArray[np.float32] = np.zeros((0, 0, 3), np.float32)
        self.prev_small: NDArray[np.uint8] | None = None
        self.sample: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None
        self.started_at: int | None = None  # the frame the quiet shelf was taken from
        self.view_fit = 0.0  # the share of slots that showed their product in it (the best seen, if none)
        self.start_by = int(START_SEARCH_S * self.fps)
        # while looking for it: the last frame tested (index, grey, colour, share of slots fitting) and
        # the frames read since (index, luma, I420 buffer)
        self.candidate: tuple[int, NDArray[np.uint8], NDArray[np.float32], float] | None = None
        self.waiting: list[tuple[int, NDArray[np.uint8], NDArray[np.uint8]]] = []
        # the camera's shift from where the quiet shelf was taken (activity pixels), the moves found
        # (frame, dx, dy) and one waiting to be found again (frame, dx, dy)
        self.offset = (0, 0)
        self.moves: list[tuple[int, int, int]] = []
        self.shift_seen: tuple[int, int, int] | None = None
        self.aligned: NDArray[np.uint8] = np.zeros((0, 0), np.uint8)
        # runs of checks at which the picture did not look like the shelf: [first, last] frame
        self.unlike: list[list[int]] = []
        self.unlike_ref: NDArray[np.uint8] | None = None
        # the quiet shelf as first taken, at a quarter of the activity size and at it, each with the
        # window phase correlation wants: ((picture, window), (picture, window))
        empty = np.zeros((0, 0), np.float32)
        self.anchor: tuple[tuple[NDArray[np.float32], ...], tuple[NDArray[np.float32], ...]] = (
            (empty, empty),
            (empty, empty),
        )
        self.blobs: deque[list[tuple[Blob, Tracklet]]] = deque(
            maxlen=max(10, int(BLOB_MEMORY_S * self.fps / PEOPLE_EVERY))
        )
        self.live: list[Tracklet] = []
        # the last few seconds' foreground masks (at the people frames), to see arms in
        self.masks = _MaskRing(int(BLOB_MEMORY_S * self.fps / PEOPLE_EVERY) + 2)
        self.single_widths: deque[int] = deque(maxlen=200)
        self.next_tracklet = 0
        self.raw: list[_RawEvent] = []
        self.paired = 0  # raw events before this one have been through _cancel_pairs
        # (visit, product) of each pick finished (`_finish_settled`): what each shopper holds, for the
        # returns still to be paired
        self.taken: set[tuple[str, str]] = set()
        self.cancelled: list[float] = []  # times of the pick/return pairs it dropped
        self.finished: list[TrackedEvent] = []
        self.tracks = {v.info.token: TrackSamples() for v in visits}
        self.by_token = {v.info.token: v for v in visits}
        self.gain = 1.0
        self.frames = 0
        self.positions: list[_Pos] = []
        self.pending: list[list[PositionChange]] = []
        # each change's facing-position view before and after, by id of the change
        self.change_cols: dict[int, tuple[NDArray[np.float32] | None, NDArray[np.float32] | None]] = {}
        self.netted: list[int] = []  # frames where a slot's pick and return of one product netted out
        self.murmurs: list[tuple[int, int]] = []  # (start, end) frames of settled near-changes with no event
        self.cols = self.tops = self.bottoms = self.rects = np.zeros((0, 4), np.int32)
        self.last_quiet = np.zeros(0, np.int64)
        self.still = np.zeros(0, np.int64)  # per position: frames in a row with no motion in or around it
        self.blocked = np.zeros(0, bool)  # per position: a shopper within an arm's reach (last people frame)
        self._active: NDArray[np.bool_] | None = None

    @property
    def active_mask(self) -> NDArray[np.bool_]:
        if self._active is None or self._active.shape[0] != len(self.positions):
            self._active = np.zeros(len(self.positions), bool)
        return self._active

    # -- setup on the first frame
    def _begin(self, index: int, y: NDArray[np.uint8], buf: NDArray[np.uint8]) -> None:
        """Look for the frame to start from: one that shows the planogram's shelf, still (the same
        a moment later: not a picture fading in or a garbled start). Frames from the frame under
        test on are kept (copies: the decoder reuses its buffer) and fed once it is taken."""
        self.waiting.append((index, y.copy(), buf.copy()))
        last = index >= self.start_by
        if index % START_EVERY and not last:
            return
        small = np.ascontiguousarray(y[::2, ::2])
        cand = self.candidate
        # the frame tested before showed the shelf, and this one is the same picture: no passing state
        if cand is not None and cand[3] >= VIEW_FIT_SHARE and _picture_change(cand[1], small) <= START_STILL:
            self.view_fit = cand[3]
            self._start_at(cand[0], cand[2], cand[1])
            return
        bgr = cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420).astype(np.float32)
        fits = view_fit(bgr, self.planogram.slots, self.templates, self.scale)
        judged = [f for f in fits if f is not None]
        # the share of the slots seen that show their product; too few seen (no picture) says nothing
        share = sum(judged) / len(judged) if judged and len(judged) >= len(fits) / 2 else 0.0
        self.view_fit = max(self.view_fit, share)
        if last:  # no still view of the shelf in the first seconds: start here all the same
            self._start_at(index, bgr, small)
            return
        self.candidate = (index, small, bgr, share)
        self.waiting = self.waiting[-1:]

    def _start_at(self, index: int, bgr: NDArray[np.float32], small: NDArray[np.uint8]) -> None:
        """Take frame `index` as the quiet shelf, then feed the frames kept since."""
        self.started_at = index
        self.candidate = None
        later = [w for w in self.waiting if w[0] > index]
        self.waiting = []
        self._start(bgr, small)
        for i, y, buf in later:
            self.feed(i, y, buf)

    def _check_camera(self, index: int, small: NDArray[np.uint8]) -> None:
        """Has the picture shifted against the quiet shelf (a knocked camera)? Undo it once seen twice."""
        # against the first quiet view, not the shelf as it has been updated since: a slot that settled
        # while the camera was off would pull the measure halfway
        (ref_q, win_q), (ref, win) = self.anchor
        cur = np.asarray(cv2.resize(small, ref_q.shape[::-1], interpolation=cv2.INTER_AREA), np.float32)
        (dx, dy), response = cv2.phaseCorrelate(ref_q.copy(), cur, win_q)
        found = None
        if response >= SHIFT_RESPONSE and SHIFT_MIN / 2 <= max(abs(dx), abs(dy)) <= SHIFT_MAX / 2:
            # exactly, at the activity size
            (dx, dy), response = cv2.phaseCorrelate(ref.copy(), small.astype(np.float32), win)
            if response >= SHIFT_RESPONSE and SHIFT_MIN <= max(abs(dx), abs(dy)) <= SHIFT_MAX:
                found = (round(dx), round(dy))
        seen, self.shift_seen = self.shift_seen, None
        if found is None:
            return
        if seen is not None and (seen[1], seen[2]) == found:
            self.offset = (self.offset[0] + found[0], self.offset[1] + found[1])
            self.moves.append((seen[0], found[0], found[1]))
        else:
            self.shift_seen = (index, found[0], found[1])

    def _check_view(self, index: int, small: NDArray[np.uint8]) -> None:
        """Does the picture still look like the shelf? Runs of checks at which it does not are kept."""
        assert self.ref_small is not None
        # within a run, against the shelf as it was when the run began: slots that settle meanwhile
        # take on the moved view, and must not make it look like the shelf again
        shelf = self.unlike_ref if self.unlike_ref is not None else self.ref_small
        assert self.sample is not None
        if (
            _likeness(shelf, small) >= VIEW_LOST_LIKE
            and _uneven_light(shelf, small, self.sample) < LIGHT_UNEVEN
        ):
            self.unlike_ref = None
        elif self.unlike and self.unlike[-1][1] == index - SHIFT_EVERY:
            self.unlike[-1][1] = index
        else:
            self.unlike.append([index, index])
            self.unlike_ref = self.ref_small.copy()

    def _align(self, buf: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """The frame moved back by the camera's shift (edges repeated), as (luma, I420 buffer)."""
        if self.aligned.shape != buf.shape:
            self.aligned = np.empty_like(buf)
        h = buf.shape[0] * 2 // 3
        w = buf.shape[1]
        dx, dy = self.offset  # activity pixels: two luma pixels, one chroma pixel each
        _shift_into(buf[:h], self.aligned[:h], -2 * dx, -2 * dy)
        q = (h // 2) * (w // 2)
        src, dst = buf[h:].reshape(-1), self.aligned[h:].reshape(-1)
        for k in range(2):
            _shift_into(
                src[k * q : (k + 1) * q].reshape(h // 2, w // 2),
                dst[k * q : (k + 1) * q].reshape(h // 2, w // 2),
                -dx,
                -dy,
            )
        return self.aligned[:h], self.aligned

    def _start(self, bgr: NDArray[np.float32], small: NDArray[np.uint8]) -> None:
        self.ref_small = small.copy()
        h, w = small.shape
        quarter = (max(8, w // 2), max(8, h // 2))
        self.anchor = (
            (
                np.asarray(cv2.resize(small, quarter, interpolation=cv2.INTER_AREA), np.float32),
                np.asarray(cv2.createHanningWindow(quarter, cv2.CV_32F), np.float32),
            ),
            (small.astype(np.float32), np.asarray(cv2.createHanningWindow((w, h), cv2.CV_32F), np.float32)),
        )
        self.prev_small = small.copy()
        sh, sw = small.shape
        cols, tops, bottoms = [], [], []
        for slot in self.planogram.slots:
            s = init_slot(slot, bgr, self.templates, self.scale)
            s.ref_bgr = crop_box(bgr, s).copy()
            k = len(self.slots)
            self.slots.append(s)
            self.pending.append([])
            y0, y1 = s.y0 // 2, (s.y1 + 1) // 2
            half = max(1.0, s.facing_w * 0.45 / 2)
            for i, c in enumerate(s.centers):
                x0 = max(0, int(c / 2 - half))
                x1 = min(sw, max(x0 + 1, int(round(c / 2 + half))))
                cols.append([x0, y0, x1, y1])
                # one row of slack between the slot and its rings: rounding must not put product pixels in them
                tops.append([x0, max(0, y0 - 1 - RING), x1, max(1, y0 - 1)])
                bottoms.append([x0, min(sh - 1, y1 + 1), x1, min(sh, y1 + 1 + RING)])
                self.positions.append(_Pos(k, i, k=len(self.positions), seen=_Looks((y1 - y0, x1 - x0))))
        self.cols = np.asarray(cols, np.int32).reshape(-1, 4)
        self.tops = np.asarray(tops, np.int32).reshape(-1, 4)
        self.bottoms = np.asarray(bottoms, np.int32).reshape(-1, 4)
        self.rects = np.vstack([self.cols, self.tops, self.bottoms]).reshape(-1, 4)
        self.last_quiet = np.zeros(len(self.positions), np.int64)  # each position's last quiet frame
        self.still = np.zeros(len(self.positions), np.int64)
        self.blocked = np.zeros(len(self.positions), bool)
        ys, xs = np.mgrid[2 : sh - 2 : 6, 2 : sw - 2 : 6]
        ok = (small[ys, xs] > 30) & (small[ys, xs] < 235)
        self.sample = (ys[ok].astype(np.intp), xs[ok].astype(np.intp))
        # the rows a settling slot is looked at in (its crop, and any product's template standing on
        # its bottom edge), converted to float on their own: a full frame each time costs more
        tallest = max((t[1] for t in self.templates.values()), default=0)
        height = bgr.shape[0]
        self.bands = [
            (max(0, min(crop_top(s), s.y1 - tallest) - 4), min(height, s.y1 + 4)) for s in self.slots
        ]
        self.frame32 = np.empty(bgr.shape, np.float32)

    @staticmethod
    def _frac(integral: NDArray[np.int32], r: NDArray[np.int32]) -> NDArray[np.float64]:
        n = (
            integral[r[:, 3], r[:, 2]]
            - integral[r[:, 1], r[:, 2]]
            - integral[r[:, 3], r[:, 0]]
            + integral[r[:, 1], r[:, 0]]
        ).astype(np.float64)
        area = np.maximum(1, (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])).astype(np.float64)
        return n / area

    def feed(self, index: int, y: NDArray[np.uint8], buf: NDArray[np.uint8]) -> None:
        self.frames = index + 1
        if self.ref_small is None:
            self._begin(index, y, buf)
            return
        if self.offset != (0, 0):
            y, buf = self._align(buf)
        small = np.ascontiguousarray(y[::2, ::2])
        if index % SHIFT_EVERY == 0:
            self._check_view(index, small)
        if index % SHIFT_EVERY == 0 or (
            self.shift_seen is not None and index == self.shift_seen[0] + SHIFT_CONFIRM
        ):
            self._check_camera(index, small)
        assert self.sample is not None and self.prev_small is not None
        if self.ref_sample is None:  # the reference changes only where a slot settles
            self.ref_sample = np.maximum(self.ref_small[self.sample].astype(np.float32), 1.0)
        cur = small[self.sample].astype(np.float32)
        self.gain = _median(cur / self.ref_sample)
        refg = cv2.convertScaleAbs(self.ref_small, alpha=self.gain)
        dref = cv2.absdiff(small, refg)
        _, fg = cv2.threshold(dref, DIFF_T, 1, cv2.THRESH_BINARY)
        dmot = cv2.absdiff(small, self.prev_small)
        _, mot = cv2.threshold(dmot, MOTION_T, 1, cv2.THRESH_BINARY)
        self.prev_small = small
        ifg = np.asarray(cv2.integral(fg), np.int32)
        imot = np.asarray(cv2.integral(mot), np.int32)
        n = len(self.positions)
        f = self._frac(ifg, self.rects)  # the positions, then the rings above, then below
        motion = self._frac(imot, self.rects).reshape(3, n).max(axis=0)
        cover = f[:n]
        ring = np.maximum(f[n : 2 * n], f[2 * n :])
        disturbed = (ring > RING_QUIET) | (motion > MOTION_QUIET) | (cover > COVER_QUIET)
        motionless = motion <= MOTION_QUIET
        self.still = (self.still + 1) * motionless
        # quiet: nothing moves in or around the position, and the ring around it is as it was, or has
        # stood still for a while with no shopper within reach (an item put back taller than the slot)
        quiet = motionless & ((ring <= RING_QUIET) | ((self.still >= self.still_frames) & ~self.blocked))
        settled: list[_Pos] = []
        for k in np.flatnonzero(disturbed | self.active_mask):
            ps = self.positions[int(k)]
            if not ps.active:
                ps.active = True
                ps.start = index
                ps.seen.clear()
                ps.quiet_run = 0
                ps.peak_cover = float(cover[k])
                self.active_mask[k] = True
                self.still[k] = 0
                continue
            ps.peak_cover = max(ps.peak_cover, float(cover[k]))
            x0, y0, x1, y1 = self.cols[k]
            ps.seen.append(index, small[y0:y1, x0:x1], self.gain)
            if len(ps.seen) > self.seen_max:
                ps.seen.drop_oldest()
            ps.quiet_run = ps.quiet_run + 1 if quiet[k] else 0
            if ps.quiet_run >= SETTLE_FRAMES:
                settled.append(ps)
        self.last_quiet[~(disturbed | self.active_mask)] = index
        people = index % PEOPLE_EVERY == 0
        if people or settled:
            bgr_full = cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420)
            if people:
                h2, w2 = fg.shape
                # every other pixel, as bgr_full[::2, ::2], in a sixth of numpy's strided copy
                half = np.asarray(cv2.resize(bgr_full, (w2, h2), interpolation=cv2.INTER_NEAREST), np.uint8)
                self._people(index, np.asarray(fg, np.uint8), half)
            if settled:
                f32 = self.frame32  # filled only in the rows of the slots that settled
                for r0, r1 in _union(self.bands[ps.slot] for ps in settled):
                    np.divide(bgr_full[r0:r1], max(self.gain, 0.05), out=f32[r0:r1], dtype=np.float32)
                for ps in settled:
                    self._settle(ps, index, f32, small)
        # a slot's changes become events once none of its positions is still busy (or after a while)
        for k, pend in enumerate(self.pending):
            if not pend:
                continue
            busy = any(ps.active for ps in self.positions if ps.slot == k)
            if not busy or index - pend[-1].end > EMIT_AFTER_S * self.fps:
                self._emit(k, pend)
                self.pending[k] = []

    def _settle(self, ps: _Pos, index: int, bgr: NDArray[np.float32], small: NDArray[np.uint8]) -> None:
        s = self.slots[ps.slot]
        after = crop_box(bgr, s)
        change, diff = compare_position(s, ps.i, s.ref_bgr, after, bgr, self.templates, CHANGE_DIFF)
        end = index - SETTLE_FRAMES
        a0, a1 = column(s, ps.i, after.shape[1])
        if change is not None:
            ch = replace(
                change,
                start=ps.start,
                end=end,
                before_frame=int(self.last_quiet[ps.k]),
                touched=min(end, self._touched(ps, small, end)),
            )
            self.pending[ps.slot].append(ch)
            # the column as `_cancel_pairs` wants it: before a pick, after a return
            self.change_cols[id(ch)] = (
                s.ref_bgr[:, a0:a1].copy() if change.before is not None else None,
                after[:, a0:a1].copy() if change.after is not None else None,
            )
            s.labels[ps.i] = change.after
        elif diff >= MURMUR_DIFF * CHANGE_DIFF:
            self.murmurs.append((ps.start, end))
        s.ref_bgr[:, a0:a1] = after[:, a0:a1]
        assert self.ref_small is not None
        g = max(self.gain, 0.05)
        k = ps.k
        for r in (self.cols[k], self.tops[k], self.bottoms[k]):
            region = small[r[1] : r[3], r[0] : r[2]].astype(np.float32) / g
            self.ref_small[r[1] : r[3], r[0] : r[2]] = np.clip(region, 0, 255).astype(np.uint8)
        self.ref_sample = None
        ps.active = False
        ps.seen.clear()
        self.active_mask[k] = False
        ps.quiet_run = 0
        self.last_quiet[k] = index
        ps.covered = max(0, end - ps.start) if ps.peak_cover > 0.6 else 0
        ps.peak_cover = 0.0

    def _touched(self, ps: _Pos, small: NDArray[np.uint8], end: int) -> int:
        """The frame from which the position's column showed its new view for good: after its
        last look like the old view, the first look like the new one (VIEW_NEAR). `end` when the
        two views are too alike to tell, or the column never looked like the new view sooner."""
        assert self.ref_small is not None
        x0, y0, x1, y1 = self.cols[ps.k]
        before = self.ref_small[y0:y1, x0:x1].astype(np.float32)
        after = small[y0:y1, x0:x1].astype(np.float32) / max(self.gain, 0.05)
        apart = float(np.abs(before - after).mean()) if before.size else 0.0
        if apart < VIEW_APART:
            return end
        near = VIEW_NEAR * apart
        frames, gains, cols = ps.seen.views(end)
        if not frames:
            return end
        views = cols.astype(np.float32) / np.maximum(gains, 0.05).astype(np.float32)[:, None, None]
        d_before = np.abs(views - before).mean(axis=(1, 2))
        d_after = np.abs(views - after).mean(axis=(1, 2))
        like_before = np.flatnonzero((d_before < near) & (d_before < VIEW_NEAR * d_after))
        like_after = (d_after < near) & (d_after < VIEW_NEAR * d_before)
        since = int(like_before[-1]) + 1 if len(like_before) else 0  # after the last look like before
        found = np.flatnonzero(like_after[since:])
        return frames[since + int(found[0])] if len(found) else end

    def flush(self) -> None:
        """At the end of the footage: what settled but was waiting for its slot to calm becomes events."""
        if self.ref_small is None and self.candidate is not None and self.candidate[3] >= VIEW_FIT_SHARE:
            index, small, bgr, self.view_fit = (
                self.candidate
            )  # footage shorter than the look for a still view
            self._start_at(index, bgr, small)
        for k, pend in enumerate(self.pending):
            if pend:
                self._emit(k, pend)
                self.pending[k] = []

    def _emit(self, k: int, changes: list[PositionChange]) -> None:
        s = self.slots[k]
        start = min(c.start for c in changes)
        end = max(c.end for c in changes)
        before = min(c.before_frame for c in changes)
        after = end + SETTLE_FRAMES
        covered = max(ps.covered for ps in self.positions if ps.slot == k)
        diffs = [c.diff for c in changes]
        clarity = float(min(1.0, max(0.0, (min(diffs) - CHANGE_DIFF) / CHANGE_DIFF)))
        picks: dict[str, list[PositionChange]] = {}
        for c in changes:
            if c.before is not None:
                picks.setdefault(c.before, []).append(c)
        # a product gone from one position and the same product now in another, in one settling of
        # the slot: moved along the shelf (or taken and put back at once), nothing left it
        returns: list[PositionChange] = []
        for c in changes:
            if c.after is None:
                continue
            same = [q for q in picks.get(c.after, []) if q is not c]
            if same:
                picks[c.after].remove(same[-1])
                self.netted.append(start)
            else:
                returns.append(c)
        picks = {sku: cs for sku, cs in picks.items() if cs}
        # who was beside the slot as the hand left it: a slot can be hidden long before (a shopper
        # standing in front), and the passers-by of that while say nothing
        reach_end = max(c.touched if c.touched >= 0 else c.end for c in changes)
        lo = max(start, reach_end - int(REACH_WINDOW_S * self.fps))
        seen = self._beside(s, lo, reach_end)
        earlier = self._beside(s, start, lo - PEOPLE_EVERY) if lo - start > PEOPLE_EVERY else []
        usual = self._usual_width()
        merged = usual is not None and any(
            not tr.token and tr.width > WIDE_BLOB * usual for _, tr, _, _, _ in seen
        )
        cols = {id(c): self.change_cols.pop(id(c)) for c in changes if id(c) in self.change_cols}
        in_view = [
            (tr, b.frame)
            for fb in self.blobs
            if fb and lo - PEOPLE_EVERY <= fb[0][0].frame <= reach_end
            for b, tr in fb
        ]
        first_new = len(self.raw)
        for sku, cs in picks.items():
            self.raw.append(
                _RawEvent(
                    s,
                    "pick",
                    sku,
                    len(cs),
                    start,
                    end,
                    before,
                    after,
                    cs,
                    clarity,
                    covered,
                    seen,
                    merged,
                    {c.index: col for c in cs if (col := cols.get(id(c), (None, None))[0]) is not None},
                )
            )
        for c in returns:
            if c.after is not None:
                self.raw.append(
                    _RawEvent(
                        s,
                        "return",
                        c.after,
                        1,
                        start,
                        end,
                        before,
                        after,
                        [c],
                        clarity,
                        covered,
                        seen,
                        merged,
                        {c.index: col} if (col := cols.get(id(c), (None, None))[1]) is not None else {},
                    )
                )
        for ev in self.raw[first_new:]:
            ev.in_view = in_view
            ev.earlier = earlier

    def _beside(self, s: SlotState, start: int, end: int) -> list[Observation]:
        """The shopper blobs within reach of the slot between two frames, weighted by closeness.

        Closeness is across (the blob's edge to the slot, less the share of the gap that an arm
        bridges) and in depth: whoever reaches into the shelf stands at it, farther from the
        camera than anyone waiting or walking behind, so looks narrower than they do. Among the
        blobs beside the slot meanwhile, those wider than the narrowest count for less (narrow
        fragments, an arm, do not set the measure). The head's height says less: people's
        heights vary about as much.
        """
        sx0, sx1 = s.x0 / 2, s.x1 / 2
        reach = self.reach
        sy0, sy1 = s.y0 / 2, s.y1 / 2
        near: list[tuple[float, Blob, Tracklet, tuple[Tracklet, ...]]] = []
        for frame_blobs in self.blobs:
            if (
                not frame_blobs
                or frame_blobs[0][0].frame < start - PEOPLE_EVERY
                or frame_blobs[0][0].frame > end
            ):
                continue
            mask = self.masks.get(frame_blobs[0][0].frame)
            for b, tr in frame_blobs:
                dist = max(0.0, sx0 - b.x1, b.x0 - sx1)
                if dist <= reach:
                    if mask is not None and dist > 0:  # a gap an arm bridges is no gap
                        dist *= 1.0 - _bridged(mask, b, sx0, sx1, sy0, sy1)
                    others = tuple(o for _, o in frame_blobs if o is not tr)
                    near.append((math.exp(-dist / (reach / 2)), b, tr, others))
        if not near:
            return []
        usual = self._usual_width()
        bodies = [b for _, b, _, _ in near if usual is None or b.x1 - b.x0 >= NARROW_BLOB * usual] or [
            b for _, b, _, _ in near
        ]
        w_ref = min(b.x1 - b.x0 for b in bodies)
        out: list[Observation] = []
        for wt, b, tr, others in near:
            wider = max(0.0, (b.x1 - b.x0) / max(1, w_ref) - 1.0)
            out.append((wt * math.exp(-DEPTH_W * wider), tr, b.desc, b.frame, others))
        return out

    def _people(self, index: int, fg: NDArray[np.uint8], bgr_small: NDArray[np.uint8]) -> None:
        h, w = fg.shape
        blobs = find_blobs(index, fg, bgr_small, (int(h * 0.5), int(h * 0.88)), max(6, w // 50))
        t = index / self.fps
        present = [v for v in self.visits if v.present(t)]
        usual = self._usual_width() if SPLIT_MERGED and len(present) >= 2 else None
        if usual is not None:
            # a blob wider than one shopper: cut it where the columns' look changes from one to another
            wide = {id(b) for b in blobs if b.x1 - b.x0 > SPLIT_WIDE * usual}
            if wide:  # the visits' looks (a median each) only when there is something to cut
                looks = [lk for lk in (self._look(v) for v in present) if lk is not None]
                narrow = max(3, int(SPLIT_NARROW * usual))
                blobs = [
                    part
                    for b in blobs
                    for part in (split_blob(b, fg, bgr_small, looks, narrow) if id(b) in wide else [b])
                ]
        tokens = {v.info.token for v in present}
        recent = [tr for tr in self.live if index - tr.last <= 2 * PEOPLE_EVERY]
        pad = 3
        touching = [[tr for tr in recent if b.x0 - pad < tr.x1 and tr.x0 < b.x1 + pad] for b in blobs]
        # a blob carries a tracklet on when each is the other's only substantial overlap: a sliver
        # beside it (an arm, a fragment) does not end it, a merge or a split does
        overlaps = [
            [tr for tr in trs if _substantial(b, tr, pad)] for b, trs in zip(blobs, touching, strict=True)
        ]
        claims: dict[int, int] = {}
        for trs in overlaps:
            for tr in trs:
                claims[tr.id] = claims.get(tr.id, 0) + 1
        live: list[Tracklet] = []
        seen: list[tuple[Blob, Tracklet]] = []
        inv = 2.0 / self.scale
        for b, trs, subs in zip(blobs, touching, overlaps, strict=True):
            if len(subs) == 1 and claims[subs[0].id] == 1:
                tr = subs[0]
                tr.x0, tr.x1, tr.last = b.x0, b.x1, index
            else:
                # born, or blobs merged or split: who this is starts unknown
                tr = Tracklet(self.next_tracklet, b.x0, b.x1, index, index)
                self.next_tracklet += 1
                for o in trs:  # whatever it came off (and carries on) held it too till now
                    o.shed = index
                if not trs and (b.x0 <= 1 or b.x1 >= w - 1):
                    # someone new at the frame's edge: the one visit walking in then, if only one is
                    entering = [v for v in present if t <= v.info.entered_at + ENTRY_WALK_S]
                    leaving = [v for v in present if t >= v.info.exited_at - EXIT_WALK_S]
                    if len(entering) == 1 and not leaving:
                        self._name(index, tr, entering[0].info.token, "edge")
            if tr.token is not None and tr.token not in tokens:
                tr.token = None
                tr.names.append((index, None))
            if len(present) == 1 and tr.token != present[0].info.token:
                self._name(index, tr, present[0].info.token, "alone")
            bw = b.x1 - b.x0
            whole = b.x0 > 1 and b.x1 < w - 1  # not cut by the frame's edge
            if whole:
                tr.add(b.desc, bw)
            if tr.token is not None and whole and self._single(bw):
                self.by_token[tr.token].signature.add(b.desc)
                if len(present) == 1:
                    self.single_widths.append(bw)
            live.append(tr)
            seen.append((b, tr))
            token = tr.token
            if token is None and present and b.desc is not None:
                vec = desc_vector(b.desc)
                token = min(present, key=lambda v: self._distance(vec, v)[1]).info.token
            if token is not None:
                self.tracks[token].append(
                    (
                        index * self.step,  # the footage's frame
                        int(b.x0 * inv),
                        int(b.y0 * inv),
                        int((b.x1 - b.x0) * inv),
                        int((b.y1 - b.y0) * inv),
                    )
                )
        self.live = live
        self._identify(live, present)
        self.blocked[:] = False
        for b in blobs:
            self.blocked |= (self.cols[:, 0] < b.x1 + self.reach) & (b.x0 - self.reach < self.cols[:, 2])
        self.blobs.append(seen)
        self.masks.put(index, fg)

    def _name(self, index: int, tr: Tracklet, token: str, how: str) -> None:
        """Say who a tracklet is from now on (`how`: the rule that named it), and since its start when
        it had no name yet and the rule vouches for all of it: a look, the frame's edge. Being the one
        shopper left in the store says nothing about who the blob was while others were there too.
        Nor does a look, or being the one candidate left, say who a blob was before another came off
        it (one stood in front of the other), or before the other candidates left the store."""
        since = tr.first if not tr.names and how != "alone" else index
        if how != "edge":
            since = max(since, tr.shed)
        if how == "last-candidate" and since < index:
            gone = [
                v.info.exited_at - EXIT_LEAD_S
                for v in self.visits
                if v.info.token != token and v.present(since / self.fps) and not v.present(index / self.fps)
            ]
            if gone:
                since = max(since, min(index, int(math.ceil(max(gone) * self.fps))))
        tr.names.append((since, token))
        tr.token = token

    def _usual_width(self) -> float | None:
        """A lone shopper's usual blob width, once a few have been seen."""
        return float(np.median(self.single_widths)) if len(self.single_widths) >= 5 else None

    def _single(self, width: float) -> bool:
        """Is a blob this wide one shopper (not two merged, not an arm or a fragment)?"""
        usual = self._usual_width()
        if usual is None:
            return True
        return NARROW_BLOB * usual <= width <= WIDE_BLOB * usual

    def _identify(self, live: list[Tracklet], present: list[_Visit]) -> None:
        """Name the tracklets of unknown identity whose visit the looks leave in no doubt.

        The candidates are the visits present whose shopper is not already another
        tracklet in view. Each unknown tracklet is costed against each candidate by
        look (the visit's learned look, else its gate image's), and the cheapest
        one-to-one assignment is found (a tracklet may also be no candidate: an arm,
        a fragment). A tracklet is named after its visit in that assignment when
        every assignment that names it otherwise costs at least `NAME_MARGIN` more,
        and the look itself is plausible. The one tracklet left for the one visit left
        is named unless it looks nothing like them, or clearly more like a shopper
        already in view (one of the two is then not who it seems: a split, a merge).
        """
        pending = [
            tr
            for tr in live
            if tr.token is None and tr.n >= 3 and tr.mean is not None and self._single(tr.width)
        ]
        if not pending:
            return
        claimed = {tr.token for tr in live if tr.token is not None}
        cands = [v for v in present if v.info.token not in claimed]
        if not cands:
            return
        pending = sorted(pending, key=lambda tr: -tr.n)[:MAX_ASSIGN]
        cands = cands[:MAX_ASSIGN]
        cost = np.array([[self._distance(tr.mean, v)[1] for v in cands] for tr in pending])  # type: ignore[arg-type]
        if len(cands) == 1 and len(pending) == 1:
            # unless it looks nothing like them, or much more like a shopper already in view (then
            # one of the two is someone else: a split, a merge)
            others = [self._distance(pending[0].mean, v)[1] for v in present if v is not cands[0]]  # type: ignore[arg-type]
            if cost[0, 0] <= LAST_LOOK and cost[0, 0] - min(others, default=math.inf) < NAME_MARGIN:
                self._name_after(pending[0], cands[0], "last-candidate")
            return
        best, alternatives = _assignments(cost, NOBODY_COST)
        for i, j in enumerate(best[1]):
            if j < 0 or cost[i, j] > PLAUSIBLE_LOOK:
                continue
            other = min((c for c, a in alternatives if a[i] != j), default=math.inf)
            if other - best[0] >= NAME_MARGIN:
                self._name_after(pending[i], cands[j], "assignment")

    def _name_after(self, tr: Tracklet, v: _Visit, how: str) -> None:
        self._name(tr.last, tr, v.info.token, how)
        assert tr.mean is not None
        v.signature.add_vector(tr.mean)

    @staticmethod
    def _look(v: _Visit) -> NDArray[np.float64] | None:
        """A visit's look: learned in the shelf camera, else from its gate image."""
        sig = v.signature.vector()
        if sig is not None:
            return sig
        return desc_vector(v.desc) if v.desc is not None else None

    def _distance(self, vec: NDArray[np.float64], v: _Visit) -> tuple[_Visit, float]:
        """How far a shelf-camera description is from a visit: its learned look, else its gate image."""
        sig = v.signature.vector()
        if sig is not None:
            return v, vector_distance(vec, sig)
        if v.desc is not None:
            return v, vector_distance(vec, desc_vector(v.desc)) + 0.05
        return v, 1.0

    # -- attribution, once the whole footage has been seen (each visit's look learned)
    def view_of(self, ev: _RawEvent) -> tuple[float, float, frozenset[str | None], int] | None:
        """Who was in view while the event's reach ended, summed up (and the blobs let go)."""
        if ev.view is None and ev.in_view:
            frames = [f for _, f in ev.in_view]
            ev.view = (
                min(frames) / self.fps,
                max(frames) / self.fps,
                frozenset(tr.token_at(f) for tr, f in ev.in_view),
                len({tr.id for tr, f in ev.in_view if tr.token_at(f) is None}),
            )
            ev.in_view = []
        return ev.view

    def unseen(self, ev: _RawEvent, cands: Sequence[str]) -> int:
        """How many of these candidates were in the store throughout the reach, yet in view under
        no name then, beyond the unnamed shoppers in view (who may be them): hidden behind another."""
        view = self.view_of(ev)
        if view is None:
            return 0
        t0, t1, named, unnamed = view
        missing = [
            t
            for t in cands
            if t not in named and self.by_token[t].present(t0) and self.by_token[t].present(t1)
        ]
        return max(0, len(missing) - unnamed)

    def candidates(self, ev: _RawEvent) -> list[_Visit]:
        """The visits in the store while the event happened: whose it can be."""
        t0 = ev.start / self.fps
        t1 = ev.end / self.fps
        return [
            v
            for v in self.visits
            if v.info.entered_at + ENTER_DELAY_S - 0.5 <= t1 and t0 <= v.info.exited_at - EXIT_LEAD_S + 0.5
        ]

    def attribute(self, ev: _RawEvent) -> tuple[str | None, float, tuple[str, ...], float, float]:
        """Whose event this was: the visit, the margin over the runner-up, the candidates (best first),
        the share of the evidence that came from shoppers known by name (not only by look), and, over
        a long disturbance, the share of who was beside the slot before its reach ended that points to
        others than the visit chosen (the hand may have been theirs)."""
        cands = self.candidates(ev)
        if not cands:
            return None, 0.0, (), 0.0, 0.0
        if len(cands) == 1:
            return cands[0].info.token, 1.0, (cands[0].info.token,), 1.0, 0.0
        scores, named = self._evidence(ev.seen, cands)
        order = np.argsort(-scores)
        total = float(scores.sum())
        names = tuple(cands[int(i)].info.token for i in order)
        if total <= 0:
            return None, 0.0, names, 0.0, 0.0
        best, second = float(scores[order[0]]), float(scores[order[1]])
        margin = (best - second) / total
        before, _ = self._evidence(ev.earlier, cands)
        rival = 1.0 - float(before[order[0]]) / float(before.sum()) if before.sum() > 0 else 0.0
        return names[0], margin, names, named / total, rival

    def _evidence(
        self, seen: Sequence[Observation], cands: Sequence[_Visit]
    ) -> tuple[NDArray[np.float64], float]:
        """Each candidate's share of these observations, summed over them (a blob named counts for
        its visit; one known only by look is shared by likeness among the visits it can be), and how
        much of it came from named blobs."""
        index = {v.info.token: i for i, v in enumerate(cands)}
        scores = np.zeros(len(cands))
        named = 0.0
        for wt, tr, desc, frame, others in seen:
            token = tr.token_at(frame)
            if token is not None:
                if token in index:
                    scores[index[token]] += wt
                    named += wt
                continue  # someone known, and not a candidate
            # the tracklet's look over its life, and the blob's own then (a tracklet can hold two
            # shoppers for a while, one in front of the other: its look over its life is then theirs)
            own = desc_vector(desc) if desc is not None else None
            vecs = [v for v in (tr.mean, own) if v is not None] if tr.n >= 3 or own is None else [own]
            if not vecs:
                continue
            # a blob no rule named can only be someone in the store at that moment (a tracklet can
            # outlive its shopper's visit: another walked into it, and its look then is theirs), and
            # not someone known to be another blob in view at the same moment
            elsewhere = {o.token_at(frame) for o in others}
            inside = np.array(
                [
                    v.present(frame / self.fps, slack=PRESENT_SLACK_S) and v.info.token not in elsewhere
                    for v in cands
                ]
            )
            if not inside.any():
                continue
            for vec in vecs:
                d = np.array([self._distance(vec, v)[1] for v in cands])
                p = np.where(inside, np.exp(-(d - d[inside].min()) / APPEARANCE_SCALE), 0.0)
                scores += wt * p / p.sum() / len(vecs)
        return scores, named


def _median(values: NDArray[np.float32]) -> float:
    """np.median of a 1-D array without NaNs, to the bit, without its NaN check and call layers
    (it runs on every frame)."""
    n = values.size
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float(np.mean(part[half - 1 : half + 1]))


def _picture_change(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """The typical grey-level change between two pictures of the same view, on 4 x 4 averages (a
    camera's noise mostly averages out) and after their overall brightness is matched (flicker):
    small for a still view, even with shoppers moving in part of it; large while it fades in."""
    size = (max(4, a.shape[1] // 4), max(4, a.shape[0] // 4))
    qa = np.asarray(cv2.resize(a, size, interpolation=cv2.INTER_AREA), np.float32)
    qb = np.asarray(cv2.resize(b, size, interpolation=cv2.INTER_AREA), np.float32)
    gain = float(np.median(qa / np.maximum(qb, 1.0)))
    return float(np.median(np.abs(qa - qb * gain)))


def _shift_into(src: NDArray[np.uint8], dst: NDArray[np.uint8], dx: int, dy: int) -> None:
    """dst = src moved by (dx, dy) whole pixels, the uncovered edge repeating the nearest row or column."""
    h, w = src.shape
    dx, dy = max(-w + 1, min(w - 1, dx)), max(-h + 1, min(h - 1, dy))
    sy0, sy1, sx0, sx1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
    y0, y1, x0, x1 = sy0 + dy, sy1 + dy, sx0 + dx, sx1 + dx
    dst[y0:y1, x0:x1] = src[sy0:sy1, sx0:sx1]
    if x0 > 0:
        dst[y0:y1, :x0] = dst[y0:y1, x0 : x0 + 1]
    if x1 < w:
        dst[y0:y1, x1:] = dst[y0:y1, x1 - 1 : x1]
    if y0 > 0:
        dst[:y0] = dst[y0 : y0 + 1]
    if y1 < h:
        dst[y1:] = dst[y1 - 1 : y1]


def _union(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping (start, end) row spans merged."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _bridged(packed: NDArray[np.uint8], b: Blob, sx0: float, sx1: float, sy0: float, sy1: float) -> float:
    """The share of the gap between a blob and a slot that something changed spans, column by column,
    between the slot's rows and the blob's shoulders: an arm reaching across it. `packed`: the
    foreground mask, its columns packed eight to a byte (`_MaskRing`)."""
    if b.x1 <= sx0:
        c0, c1 = b.x1, int(sx0)
    else:
        c0, c1 = int(sx1) + 1, b.x0
    if c1 <= c0:
        return 0.0
    shoulder = b.y0 + 0.25 * (b.y1 - b.y0)
    r0 = max(0, int(min(sy0, shoulder)))
    r1 = min(packed.shape[0], int(max(sy1, shoulder)) + 1)
    if r1 <= r0:
        return 0.0
    rows = np.bitwise_or.reduce(packed[r0:r1, c0 // 8 : (c1 + 7) // 8], axis=0)
    cols = np.unpackbits(rows)[c0 % 8 : c0 % 8 + (c1 - c0)]
    return float(cols.mean())


def _substantial(b: Blob, tr: Tracklet, pad: int) -> bool:
    """Do a blob and a tracklet's last extent overlap by at least half the narrower of the two?"""
    overlap = min(b.x1, tr.x1) - max(b.x0, tr.x0) + pad
    return overlap >= OVERLAP_SHARE * min(b.x1 - b.x0, tr.x1 - tr.x0)


def _assignments(
    cost: NDArray[np.float64], nobody: float
) -> tuple[tuple[float, tuple[int, ...]], list[tuple[float, tuple[int, ...]]]]:
    """Every one-to-one assignment of rows (tracklets) to columns (visits) or to nobody (-1), with its
    cost; the cheapest first. A handful of each at most, so all are enumerated."""
    rows, cols = cost.shape
    out: list[tuple[float, tuple[int, ...]]] = []

    def walk(i: int, used: frozenset[int], acc: float, picks: tuple[int, ...]) -> None:
        if i == rows:
            out.append((acc, picks))
            return
        walk(i + 1, used, acc + nobody, picks + (-1,))
        for j in range(cols):
            if j not in used:
                walk(i + 1, used | {j}, acc + float(cost[i, j]), picks + (j,))

    walk(0, frozenset(), 0.0, ())
    out.sort(key=lambda a: a[0])
    return out[0], out[1:]


def _clarity(min_changed: float, max_unchanged: float) -> float:
    lo = max(0.0, (min_changed - CHANGE_DIFF) / CHANGE_DIFF)
    hi = max(0.0, (CHANGE_DIFF - max_unchanged) / CHANGE_DIFF)
    return float(min(1.0, lo, 1.0) * 0.5 + min(1.0, hi) * 0.5)


def track_footage(
    footage: Path | str,
    planogram: Planogram | Path | str,
    visits: Sequence[VisitInfo] | Path | str,
    *,
    gate_dir: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[float], None] | None = None,
    on_carts: Callable[[EarlyCarts], None] | None = None,
) -> TrackResult:
    """Propose each visit's cart from shelf footage (see the module docstring for the steps).

    `planogram` and `visits` are loaded objects or paths to the scene's JSON files;
    product images are read relative to the planogram file (or `gate_dir`'s parent
    when objects are passed), gate images from `gate_dir` (default: next to visits.json).

    `on_carts` is handed each visit's cart as soon as nothing still to be read can change it
    (`_ready`), while the footage is read, with the others settled at the same point: a
    shopper's cart can go on to review or settle minutes before an hour's footage is done. The
    result holds the same carts.
    """
    plan, plan_dir = _load_planogram(planogram)
    visit_list, visits_dir = _load_visits(visits)
    footage = Path(footage)
    scene_dir = plan_dir or visits_dir or (gate_dir.parent if gate_dir is not None else footage.parent)
    try:
        products = load_product_images(plan, scene_dir)
    except scene_files.PlanogramError as exc:
        raise PlanogramError(str(exc)) from exc
    if not visit_list:
        raise VisitsError("there are no visits to tie the footage to")
    try:
        info = probe_stream(footage)
    except DecodeError as exc:
        raise VideoError(str(exc)) from exc
    cam = plan.camera
    if abs(info.width / info.height - cam.width / cam.height) > 0.02:
        raise PlanogramError(
            f"the planogram's camera is {cam.width}x{cam.height} but the footage is {info.width}x{info.height}"
        )
    fps = info.fps if info.fps > 0 else cam.fps
    duration = info.frame_count / fps if info.frame_count else None
    if duration is not None:
        inside = [v for v in visit_list if v.exited_at >= 0 and v.entered_at <= duration]
        if not inside:
            raise VisitsError(
                f"none of the {len(visit_list)} visits overlaps the footage (0 to {duration:.1f} s)"
            )
    gdir = gate_dir if gate_dir is not None else (visits_dir if visits_dir is not None else scene_dir)
    vis = [_Visit(v, gate_descriptor(gdir / v.gate_image)) for v in visit_list]
    size = _analysis_size(info)
    p = _Pass(plan, vis, products, info, size)
    step = p.step
    report = DecodeReport()
    expected = max(1, info.frame_count // step)
    gaps = stream_gaps(footage, GAP_S)
    ready: dict[str, ProposedCart] = {}
    for frame in iter_yuv(footage, size[0], size[1], report, fps=p.fps):
        p.feed(frame.index, frame.y, frame.buffer)
        if frame.index % SETTLE_EVERY == 0:
            _release_views(p, frame.index)
            _finish_settled(p, frame.index)
            if on_carts is not None:
                _hand_out(p, frame.index, visit_list, threshold, gaps, ready, on_carts)
            if progress is not None:
                progress(min(0.99, frame.index / expected))
    p.flush()
    _cancel_pairs(p)
    cancelled = _cancelled_times(p)
    _finish_settled(p)
    events = p.finished
    if report.frames == 0:
        raise VideoError(f"{footage}: no frame could be decoded ({report.stderr or 'unknown error'})")
    truncated_at: float | None = None
    if (info.frame_count and report.frames * step < info.frame_count - step) or report.had_errors:
        truncated_at = round(report.frames / p.fps, 3)
    result = _assemble(
        plan, visit_list, events, p, threshold, truncated_at, report, info, cancelled, gaps, ready
    )
    if progress is not None:
        progress(1.0)
    return result


def _cancel_pairs(p: _Pass, upto: int | None = None) -> None:
    """Drop a pick and a later return of the same position that cancel out (their times go to
    `p.cancelled`), for the raw events not yet looked at, up to `upto` (all by default).

    A shopper standing in front of a slot can make it look emptied and then filled
    again; when the position's quiet view before the pick and after the return are
    the same, nothing left the shelf (and a real take-and-put-back nets to nothing).
    Only when both go to the same shopper, or the returner never took that product
    (another shopper putting back one they took earlier is left alone).
    """
    raw, fps = p.raw, p.fps
    who: dict[int, str | None] = {}

    def token(ev: _RawEvent) -> str | None:
        if id(ev) not in who:
            who[id(ev)] = p.attribute(ev)[0]
        return who[id(ev)]

    end = len(raw) if upto is None else min(upto, len(raw))
    for j in range(p.paired, end):
        r = raw[j]
        if r.kind != "return" or r.dropped or not r.cols:
            continue
        ((i, r_after),) = r.cols.items()
        r.cols = {}  # each return is looked at once: its view is not wanted after
        for pk in reversed(raw[:j]):
            if (
                pk.dropped
                or pk.kind != "pick"
                or pk.slot is not r.slot
                or pk.sku != r.sku
                or i not in pk.cols
                or pk.end > r.start
            ):
                continue
            if (r.start - pk.end) / fps > PAIR_S:
                break
            p_before = pk.cols[i]
            if p_before.shape != r_after.shape:
                break
            same_view = float(np.abs(p_before - r_after).mean()) < PAIR_SAME * CHANGE_DIFF
            returner = token(r)
            held = returner is not None and (
                (returner, r.sku) in p.taken
                or any(
                    q is not pk
                    and not q.dropped
                    and q.kind == "pick"
                    and q.sku == r.sku
                    and token(q) == returner
                    for q in raw[:j]
                )
            )
            if same_view and (token(pk) == returner or not held):
                r.dropped = True
                k = next((n for n, c in enumerate(pk.changes) if c.index == i), None)
                if pk.qty <= 1 or k is None or len(pk.changes) <= 1:
                    pk.dropped = True
                else:
                    pk.qty -= 1
                    del pk.changes[k]
                    del pk.cols[i]
                p.cancelled.append(pk.start / fps)
            break
    p.paired = max(p.paired, end)


def _hand_out(
    p: _Pass,
    index: int,
    visits: list[VisitInfo],
    threshold: float,
    gaps: Sequence[tuple[float, float]],
    ready: dict[str, ProposedCart],
    on_carts: Callable[[EarlyCarts], None],
) -> None:
    """Make the carts that nothing after frame `index` can change any more (`_ready`), add them to
    `ready` and hand them to `on_carts`, together."""
    if p.started_at is None:
        return  # whether the footage shows the planogram's shelf at all is not known yet
    first_open = min([_earliest_open(p, index), *(r.start for r in p.raw)])
    waiting = [v for v in visits if v.token not in ready and _ready(p, v, index, first_open)]
    if not waiting:
        return
    events = p.finished
    by_token, unattributed = _split(visits, events)
    o = _outlook(p, visits, threshold, None, _cancelled_times(p), gaps)
    carts = []
    for v in waiting:
        evs = by_token[v.token]
        if max([v.exited_at, *(e.t_end for e in evs)]) + CART_TAIL_S > index / p.fps:
            continue
        cart = ready[v.token] = _cart(v, o, evs, events, unattributed)
        carts.append(cart)
    if carts:
        on_carts(EarlyCarts(carts, unattributed, not o.mismatch, index / p.fps, p.tracks))


def _cancelled_times(p: _Pass) -> list[float]:
    """The times of the pick/return pairs dropped so far, and of a slot's pick and return netted."""
    return p.cancelled + [f / p.fps for f in p.netted]


def _ready(p: _Pass, v: VisitInfo, index: int, first_open: int) -> bool:
    """Can nothing read after frame `index` change visit `v`'s cart (`_cart`), the shelf being in
    view since `p.started_at`? `first_open`: the earliest start of an event still to come or not
    yet finished.

    Every event that could be the visit's, or name it as a rival, or count against it as tied to
    nobody near it, is finished, and so is every pair of them that could cancel out, and every
    murmur in its time (they all start at `first_open` or later). No knock of the camera still to
    be seen (a move counts from the check before it was first seen) nor a loss of the view not yet
    over can reach back into its time. The footage read past it, so it was not cut short."""
    fps = p.fps
    if first_open / fps <= v.exited_at + NEARBY_S:
        return False
    if v.exited_at * fps >= min(index, p.shift_seen[0] if p.shift_seen else index) - SHIFT_EVERY:
        return False
    # the picture does not look like the shelf now, and has not since a check in the visit's time
    lost_now = bool(p.unlike) and p.unlike[-1][1] + SHIFT_EVERY > index
    return not (lost_now and v.exited_at * fps >= p.unlike[-1][0] - SHIFT_EVERY)


def _release_views(p: _Pass, index: int) -> None:
    """Pair the raw events whose attribution, and that of every raw event before them, is final
    (`_known`), or that are old enough (HORIZON_S), and drop the position views no pairing can use
    any more, so that memory does not grow with the footage's length.

    A pick's view before is wanted by a return starting at most PAIR_S after the pick; no event
    still to come, nor one not yet paired, can start before the earliest start still open.
    """
    horizon = index - int(HORIZON_S * p.fps)
    live = {id(tr) for tr in p.live}
    # every raw event before `known` has its final attribution: pairing them now is pairing them at the end
    known = 0
    while known < len(p.raw) and _known(p, p.raw[known], index, live):
        known += 1
    upto = max(p.paired, known)
    while upto < len(p.raw) and p.raw[upto].end < horizon:
        upto += 1
    _cancel_pairs(p, upto)
    earliest = _earliest_open(p, index)
    for r in p.raw[: p.paired]:
        p.view_of(r)
        if r.cols and (r.kind == "return" or r.end < earliest - int(PAIR_S * p.fps)):
            r.cols = {}


def _earliest_open(p: _Pass, index: int) -> int:
    """The earliest start of an event still to come or not yet paired: no pick ending more than
    PAIR_S before it can be cancelled by a return any more."""
    open_starts = [ps.start for ps in p.positions if ps.active]
    open_starts += [c.start for pend in p.pending for c in pend]
    open_starts += [r.start for r in p.raw[p.paired :]]
    return min([index, *open_starts])


def _finish_settled(p: _Pass, index: int | None = None) -> None:
    """Finish the raw events, in order, whose result can no longer change at frame `index` (all of
    them when None: the footage is read), into `p.finished`, and let their evidence go, so that what
    the tracker holds does not grow with the footage's length.

    An event's result is settled once it is paired and no return still to come can cancel it
    (`_cancellable`), every visit that could have made it has left (a visit's look is learned
    only while it is in the store), and no shopper blob beside the slot is still being followed
    (a tracklet is named, and its look added to, only while it lasts). The result is then what
    it would be once the footage is read, and the events are finished in the same order."""
    end = len(p.raw) if index is None else p.paired
    earliest = None if index is None else _earliest_open(p, index)
    live = {id(tr) for tr in p.live}
    done = 0
    while done < end:
        r = p.raw[done]
        if index is not None and not r.dropped and not _settled(p, r, index, live):
            break
        if not r.dropped:
            event = _finish(p, r)
            if r.kind == "pick" and event.token is not None:
                p.taken.add((event.token, r.sku))
        done += 1
    del p.raw[:done]  # all `_cancel_pairs` still wants of them is in `p.taken`
    p.paired -= done
    if earliest is not None:
        _forget_visits(p, min([earliest, *(r.start for r in p.raw)]))


def _settled(p: _Pass, r: _RawEvent, index: int, live: set[int]) -> bool:
    """Can nothing after frame `index` change this paired raw event's result? `live`: the ids of
    the tracklets still followed."""
    if r.kind == "pick" and _cancellable(p, r, index):
        return False
    return _known(p, r, index, live)


def _cancellable(p: _Pass, pick: _RawEvent, index: int) -> bool:
    """Can a return not yet paired, or still to come, cancel this pick (`_cancel_pairs`)? Only a
    return of the same product to the same slot, starting at most PAIR_S after the pick ended. One
    still to come starts from a position of that slot busy now, a change of it waiting to be
    emitted, or after frame `index`."""
    limit = pick.end + int(PAIR_S * p.fps)
    for q in p.raw[p.paired :]:
        if q.kind == "return" and q.slot is pick.slot and q.sku == pick.sku and pick.end <= q.start <= limit:
            return True
    k = next(n for n, s in enumerate(p.slots) if s is pick.slot)
    starts = [index, *(ps.start for ps in p.positions if ps.active and ps.slot == k)]
    return min([*starts, *(c.start for c in p.pending[k])]) <= limit


def _known(p: _Pass, r: _RawEvent, index: int, live: set[int]) -> bool:
    """Is whom raw event `r` goes to, and who was in view as its reach ended, final at frame
    `index`? `live`: the ids of the tracklets still followed."""
    if any(index / p.fps <= v.info.exited_at for v in p.candidates(r)):
        return False  # a visit it may go to is still in the store: its look is still being learned
    # a shopper blob beside the slot, or in view then, is still followed: it may yet be named, its
    # look added to (`in_view` is let go once the event is paired; `seen` keeps who else was in view)
    return not any(
        id(tr) in live or any(id(o) in live for o in others)
        for _, tr, _, _, others in itertools.chain(r.seen, r.earlier)
    ) and not any(id(tr) in live for tr, _ in r.in_view)


def _forget_visits(p: _Pass, first_open: int) -> None:
    """Let go of the looks learned of the visits that can be no unfinished or future event's
    candidate any more: they left before the earliest such event started (`candidates`)."""
    t = first_open / p.fps
    for v in p.visits:
        if v.info.exited_at - EXIT_LEAD_S + 0.5 < t and not v.signature.released:
            v.signature.release()


def _likeness(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Normalised correlation of two pictures of the same size: 1 the same up to brightness and contrast."""
    x = a.astype(np.float32)
    y = b.astype(np.float32)
    x -= x.mean()
    y -= y.mean()
    den = float(np.sqrt(float((x * x).sum()) * float((y * y).sum())))
    return float((x * y).sum()) / den if den > 0 else 0.0


def _uneven_light(
    a: NDArray[np.uint8], b: NDArray[np.uint8], sample: tuple[NDArray[np.intp], NDArray[np.intp]]
) -> float:
    """How far (log brightness ratio) the most evenly changed cell of the grid (LIGHT_GRID) changed
    from the picture as a whole, between pictures a and b at the sample points; 0 if none is even."""
    ys, xs = sample
    ratio = np.log(np.maximum(b[ys, xs], 1).astype(np.float32) / np.maximum(a[ys, xs], 1).astype(np.float32))
    whole = float(np.median(ratio))
    h, w = a.shape
    cells = (ys * LIGHT_GRID // h) * LIGHT_GRID + xs * LIGHT_GRID // w
    worst = 0.0
    for c in range(LIGHT_GRID * LIGHT_GRID):
        inside = ratio[cells == c]
        if len(inside) < 20:
            continue
        q1, mid, q3 = np.percentile(inside, [25, 50, 75])
        if q3 - q1 < LIGHT_SPREAD:
            worst = max(worst, abs(float(mid) - whole))
    return worst


def _holds(finished: list[TrackedEvent], token: str, sku: str) -> bool:
    """Whether the visit has taken more of the product than it put back, by the events so far."""
    n = 0
    for e in finished:
        if e.token == token and e.sku == sku:
            n += e.qty if e.kind == "pick" else -e.qty
    return n > 0


def _finish(p: _Pass, ev: _RawEvent) -> TrackedEvent:
    token, margin, cands, named, rival = p.attribute(ev)
    c0 = ev.changes[0]
    if ev.kind == "return" and token is not None and c0.runner_up_sku is not None:
        # a shopper can only put back what they hold: between two close looks, the one they took
        held = {e.sku for e in p.finished if e.token == token and e.kind == "pick"}
        if ev.sku not in held and c0.runner_up_sku in held and c0.match - c0.runner_up < HELD_SWAP_MARGIN:
            ev.sku = c0.runner_up_sku
            c0 = replace(
                c0, after=c0.runner_up_sku, match=c0.runner_up, runner_up=c0.match, runner_up_sku=c0.after
            )
            ev.changes[0] = c0
    # nor can they put back what they never took: given to a shopper who holds none of it while another
    # who could have made it does (hidden behind them, say), the look beside the slot says less than
    # what each holds: the return is ambiguous between them (a person must look), and the others, who
    # hold none either, are no likelier than the shopper it was given to
    if ev.kind == "return" and token is not None and not _holds(p.finished, token, ev.sku):
        holders = tuple(c for c in cands[1:] if _holds(p.finished, c, ev.sku))
        if holders:
            margin = 0.0
            cands = (token, *holders)
    if ev.kind == "pick":
        match = float(np.mean([1.0 - c.match for c in ev.changes]))
        match_margin = float(np.mean([c.runner_up - (1.0 - c.match) for c in ev.changes]))
    else:
        match = c0.match
        match_margin = c0.match - c0.runner_up
    fps = p.fps
    s = ev.slot
    slot_sku = s.slot.sku
    feats = conf.EventFeatures(
        kind=ev.kind,
        qty=ev.qty,
        clarity=ev.clarity,
        match=match,
        match_margin=match_margin,
        attribution_margin=margin,
        candidates=len(cands),
        covered_s=ev.covered_frames / fps,
        foreign=ev.sku != slot_sku,
        init_margin=s.init_margin,
        attributed=token is not None,
        merged=ev.merged and len(cands) > 1,
        named=named if len(cands) > 1 else 1.0,
        span_s=(ev.end - ev.start) / fps,
        unseen=p.unseen(ev, [c for c in cands if c != token]),
        rival_before=rival,
    )
    pe = conf.event_probability(feats)
    event = TrackedEvent(
        t_start=round(ev.start / fps, 3),
        t_end=round(ev.end / fps, 3),
        slot=s.slot.id,
        sku=ev.sku,
        kind=ev.kind,
        qty=ev.qty,
        confidence=pe,
        attribution_margin=margin,
        ambiguous=len(cands) > 1 and margin < conf.AMBIGUOUS_MARGIN,
        token=token,
        before_frame=ev.before_frame * p.step,  # the footage's frames
        after_frame=ev.after_frame * p.step,
        box=s.box,
        candidates=cands,
        match=match,
        match_margin=match_margin,
        clarity=ev.clarity,
        covered_s=ev.covered_frames / fps,
        evidence=feats,
    )
    p.finished.append(event)
    return event


@dataclass(frozen=True)
class _Outlook:
    """What every cart's confidence reads of the footage as a whole, as far as it has been read."""

    visits: list[VisitInfo]
    duration: float  # seconds read
    mismatch: bool  # the planogram's shelf was never in view
    started: float  # seconds skipped before the shelf came into view (0: none)
    lost: list[tuple[float, float]]  # spans the picture did not look like the shelf
    off: list[tuple[float, float]]  # spans in which the footage showed the shelf wrongly or not at all
    murmurs: list[float]  # times of positions that changed a little with no event
    cancelled: list[float]  # times of pick/return pairs dropped
    truncated_at: float | None
    threshold: float

    def share(self, t: float) -> float:
        """One over the number of visits that could be at the shelf at time t."""
        return 1.0 / max(1, sum(1 for o in self.visits if o.entered_at <= t <= o.exited_at))


def _outlook(
    p: _Pass,
    visits: list[VisitInfo],
    threshold: float,
    truncated_at: float | None,
    cancelled: Sequence[float],
    gaps: Sequence[tuple[float, float]],
) -> _Outlook:
    # the shelf as the planogram has it was never in view (another camera, a stale planogram, no
    # picture): nothing the footage showed can be trusted. Or it came into view only after a while:
    # whoever could have been at it before then may have taken something unseen
    mismatch = p.view_fit < VIEW_FIT_SHARE
    # the camera was knocked: from some time before it was seen until it was undone, the picture was off
    knocked = [((f - SHIFT_EVERY) / p.fps, (f + SHIFT_CONFIRM) / p.fps) for f, _, _ in p.moves]
    # the picture stopped looking like the shelf for a while: from the check before the first that saw
    # it, until the first that no longer did (or the end)
    lost = [
        ((a - SHIFT_EVERY) / p.fps, (b + SHIFT_EVERY) / p.fps if b + SHIFT_EVERY < p.frames else math.inf)
        for a, b in p.unlike
        if b - a >= (VIEW_LOST_S if b + SHIFT_EVERY < p.frames else VIEW_LOST_END_S) * p.fps
    ]
    return _Outlook(
        visits=visits,
        duration=p.frames / p.fps,
        mismatch=mismatch,
        started=(p.started_at or 0) / p.fps,
        lost=lost,
        # nobody in the store in these spans is vouched for
        off=[*knocked, *lost, *gaps],
        murmurs=[(a + b) / 2 / p.fps for a, b in p.murmurs],
        cancelled=list(cancelled),
        truncated_at=truncated_at,
        threshold=threshold,
    )


def _cart(
    v: VisitInfo,
    o: _Outlook,
    evs: list[TrackedEvent],
    events: list[TrackedEvent],
    unattributed: list[TrackedEvent],
) -> ProposedCart:
    """Visit `v`'s cart from its events `evs`, all the events `events` and those tied to nobody."""
    inside = [t for t in o.murmurs if v.entered_at <= t <= v.exited_at]
    both = {e.slot for e in evs if e.kind == "pick"} & {e.slot for e in evs if e.kind == "return"}
    qty: dict[str, int] = {}
    line_conf: dict[str, float] = {}
    for e in evs:
        qty[e.sku] = qty.get(e.sku, 0) + (e.qty if e.kind == "pick" else -e.qty)
        line_conf[e.sku] = line_conf.get(e.sku, 1.0) * e.confidence
    lines = [ProposedLine(sku, n, round(line_conf[sku], 4)) for sku, n in sorted(qty.items()) if n > 0]
    seen = v.exited_at >= 0 and v.entered_at <= o.duration
    cut = o.truncated_at is not None and v.exited_at > o.truncated_at
    blind = o.mismatch or (o.started > 0 and v.entered_at + ENTER_DELAY_S - 0.5 < o.started)
    blind = blind or any(v.entered_at <= b and a <= v.exited_at for a, b in o.off)
    cf = conf.CartFeatures(
        event_probs=[e.confidence for e in evs],
        negative=any(n < 0 for n in qty.values()),
        seen=seen and not cut and not blind,
        unattributed_nearby=sum(
            1 for e in unattributed if v.entered_at - NEARBY_S <= e.t_start <= v.exited_at + NEARBY_S
        ),
        ambiguous=any(e.ambiguous for e in evs),
        rivals=max((len(e.candidates) - 1 for e in evs), default=0),
        min_margin=min((e.attribution_margin for e in evs if len(e.candidates) > 1), default=1.0),
        overlap=sum(
            1
            for w in o.visits
            if w.token != v.token and w.entered_at < v.exited_at and v.entered_at < w.exited_at
        ),
        doubtful=any(e.kind == "return" and e.match_margin < conf.LOOKALIKE_MARGIN for e in evs),
        murmurs=sum(o.share(t) for t in inside),
        cancelled=sum(o.share(t) for t in o.cancelled if v.entered_at <= t <= v.exited_at),
        pairs=len(both),
        merged=any(e.evidence is not None and e.evidence.merged for e in evs),
        dwell=max((e.covered_s for e in evs), default=0.0),
        min_named=min(
            (e.evidence.named for e in evs if e.evidence is not None and len(e.candidates) > 1),
            default=1.0,
        ),
        contested=max(
            (
                1.0 - e.attribution_margin
                for e in events
                if e.token != v.token and v.token in e.candidates[1:]
            ),
            default=0.0,
        ),
    )
    pc = conf.cart_probability(cf)
    return ProposedCart(v.token, lines, round(pc, 4), evs, flagged=pc < o.threshold, evidence=cf)


def _split(
    visits: list[VisitInfo], events: list[TrackedEvent]
) -> tuple[dict[str, list[TrackedEvent]], list[TrackedEvent]]:
    """The events of each visit, and those tied to nobody."""
    by_token: dict[str, list[TrackedEvent]] = {v.token: [] for v in visits}
    unattributed: list[TrackedEvent] = []
    for e in events:
        if e.token is None or e.token not in by_token:
            unattributed.append(e)
        else:
            by_token[e.token].append(e)
    return by_token, unattributed


def _assemble(
    plan: Planogram,
    visits: list[VisitInfo],
    events: list[TrackedEvent],
    p: _Pass,
    threshold: float,
    truncated_at: float | None,
    report: DecodeReport,
    info: StreamInfo,
    cancelled: Sequence[float] = (),
    gaps: Sequence[tuple[float, float]] = (),
    ready: dict[str, ProposedCart] | None = None,
) -> TrackResult:
    """The result, `ready` holding the carts already made while the footage was read."""
    by_token, unattributed = _split(visits, events)
    o = _outlook(p, visits, threshold, truncated_at, cancelled, gaps)
    ready = ready or {}
    carts = {
        v.token: ready.get(v.token) or _cart(v, o, by_token[v.token], events, unattributed) for v in visits
    }
    stats: dict[str, Any] = {
        "frames": p.frames * p.step,  # of footage, read
        "fps": p.fps * p.step,
        "analysis_fps": p.fps,  # the frames looked at (`ANALYSIS_FPS`)
        "duration_s": round(o.duration, 3),
        "analysis_size": [p.aw, p.ah],
        "events": len(events),
        "unattributed": len(unattributed),
        "cancelled_pairs": len(cancelled),
        "murmurs": len(p.murmurs),
        "flagged": sum(c.flagged for c in carts.values()),
        "decode_errors": report.stderr[-500:] if report.had_errors else "",
        "expected_frames": info.frame_count,
        "view_fit": round(p.view_fit, 3),
        "shelf_in_view": not o.mismatch,
        # (from, to) seconds with no picture in the stream
        "gaps": [list(g) for g in gaps],
        # (from, to or None: to the end) seconds in which the picture did not look like the shelf
        "view_lost": [[round(max(0.0, a), 3), None if b == math.inf else round(b, 3)] for a, b in o.lost],
        # (time, dx, dy in full-frame pixels) of each shift of the camera undone
        "camera_moves": [
            [round(f / p.fps, 3), round(dx * 2 / p.scale), round(dy * 2 / p.scale)] for f, dx, dy in p.moves
        ],
    }
    started_at = round(o.started, 3) if o.started > 0 and not o.mismatch else None
    return TrackResult(carts, unattributed, threshold, stats, truncated_at, p.tracks, started_at)
