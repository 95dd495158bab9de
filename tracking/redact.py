"""Redacting review clips: faces and shoppers' heads blurred, slot zones left sharp.

    python -m tracking.redact IN.mp4 OUT.mp4 [--keep X,Y,W,H ...] [--tracks TRACKS.json]
    python -m tracking.redact --bench

How a clip is redacted, one pass, memory flat in its length:
1. ffmpeg decodes to planar YUV 4:2:0 through a pipe (every frame, no rate change).
2. A face detector (tracking.faces, default ``yunet``) runs at a reduced size (longest
   side DETECT_SIDE, or larger for large frames: a face SMALLEST_FACE tall must stay big
   enough for the detector) on every n-th frame (about five a second) and also on any
   frame whose picture moved a lot since the last detection.
3. Frames between two detections wait (at most n-1 of them) and get the boxes of both
   detections, and each face seen in both moved along between them (a face crossing the
   frame between two detections is covered in between, not only at its ends); a face the
   detector stops seeing is held, growing, for about half a second. Each face box is
   padded by FACE_PAD of its size on every side.
4. Every shopper track (the tracker's ``tracks``: per token [frame, x, y, w, h]
   samples, interpolated between samples) adds the top HEAD_AND_TORSO of its box and
   HEAD_ABOVE of its height above it, padded, so a shopper seen from behind or missed
   by the detector is still covered.
5. Each box is pixelated to a few cells and smoothed (an area downscale followed by a
   linear upscale) in all three planes; then the ``keep`` rectangles are copied back
   from the decoded frame, so they leave this process byte-identical.
6. libx264 encodes yuv420p, faststart, at the input's exact frame rate and frame count,
   at the input's size or, given ``out_height``, scaled down (area filter, in the encoder's
   process) to that height: faces are found and blurred on the full-size frames either way.
"""

from __future__ import annotations

import argparse
import bisect
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.decode import DecodeError, probe_stream
from tracking.faces import DEFAULT_DETECTOR, DETECTORS, Detector, DetectorUnavailable, make_detector
from tracking.ffmpeg import ffmpeg_binary

U8 = NDArray[np.uint8]
Rect = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Span = tuple[int, int, int, int]  # x0, y0, x1, y1, exclusive ends
TrackSample = tuple[int, int, int, int, int]  # frame, x, y, w, h

DETECT_SIDE = 480  # longest side of the picture the face detector sees ...
# ... unless that would shrink a face this tall in the footage (the detector's box, brow to chin:
# a shopper a few metres from a 720p shelf camera) under the smallest face the detector finds (about
# 9 px for yunet): 1080p and larger footage is looked at larger, so what a face needs to be blurred
# does not depend on the camera's resolution
SMALLEST_FACE = 24
DETECTOR_SMALLEST = 9
DETECT_RATE = 5.0  # detections a second, at the least
MOTION_DETECT = 6.0  # mean grey-level change since the last detection that triggers one now
FACE_PAD = 0.4  # of a face box's width/height, on each side
HOLD_S = 0.6  # a face that vanishes from the detections stays blurred this long
HOLD_GROW = 0.15  # and its box grows by this share on each side per missed detection
HEAD_AND_TORSO = 0.45  # the top share of a shopper's box that is blurred
# ... and this share of its height above it: a shopper's box starts where they stand out from the
# shelf behind them, at the shoulders when the head does not (dark hair over dark products; seen in
# the demo's clips, the backs of heads above the blur)
HEAD_ABOVE = 0.2
TRACK_PAD = 0.15
TRACK_GAP_S = 3.0  # interpolate between track samples at most this far apart
TRACK_HOLD_S = 0.5  # and hold a track's first and last box this long
# The detector looks only where the picture changed since its last look (and where it found or
# held a face then), with a margin: a face cannot appear where nothing moved. The whole picture
# at least every ROI_WHOLE_S, and whenever the changed part is most of it.
ROI_BLOCK = 16  # detection-size pixels (about 43 at 720p): the grid changes are looked for on
ROI_CHANGE = 3.0  # mean grey-level change of a block that counts as a change
ROI_ALIGN = 32  # the detector's largest stride
ROI_MARGIN = 2  # blocks added on each side of the changed ones (a face is about one block)
ROI_WHOLE_S = 1.0
ROI_WHOLE_SHARE = 0.6
MATCH_WIDTHS = 3.0  # a face in the next detection at most this many box widths away is the same face
CELLS = 6  # a blurred box is reduced to about this many cells across its shorter side
# cheaper than plain veryfast: one reference, diamond search, no trellis (about 25% less encoder
# time at the same size), then no B-frames and no inter sub-partitions (another 15-40% less, for
# 4-18% more bits and the same PSNR on the benchmark clip and the real face clip)
X264 = (
    "-preset",
    "veryfast",
    "-crf",
    "23",
    "-x264-params",
    "ref=1:subme=1:me=dia:trellis=0:bframes=0:partitions=i8x8,i4x4",
)
X264_CAP = ("-maxrate", "3000k", "-bufsize", "6000k")  # a noisy picture cannot blow up the clip


class RedactError(RuntimeError):
    """The clip cannot be redacted as asked (bad input, bad arguments, ffmpeg failed); says why."""


@dataclass(frozen=True)
class RedactReport:
    frames: int
    width: int
    height: int
    fps: float
    detector: str
    detections_run: int  # frames the face detector looked at
    faces_found: int  # face boxes it returned, over all those frames
    frames_with_faces: int  # frames blurred for at least one face (found, carried or held)
    frames_with_tracks: int  # frames blurred for at least one shopper track
    seconds: float
    looked_share: float = 1.0  # the mean share of the picture each detection looked at
    out_width: int = 0  # the encoded size (the input's unless out_height asked for less)
    out_height: int = 0
    # the redacted frames asked for with `grab` (BGR, as encoded), by frame number; a number past
    # the end gets the last frame
    grabbed: Mapping[int, U8] = field(default_factory=dict, repr=False, compare=False)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# -- boxes ------------------------------------------------------------------------


def _pad(rect: Rect, left: float, top: float, right: float, bottom: float) -> Span:
    x, y, w, h = rect
    return (
        math.floor(x - w * left),
        math.floor(y - h * top),
        math.ceil(x + w * (1 + right)),
        math.ceil(y + h * (1 + bottom)),
    )


def _clip_even(span: Span, width: int, height: int) -> Span | None:
    """Clamp to the frame and widen to even edges, so the chroma planes line up."""
    x0, y0 = max(0, span[0]) & ~1, max(0, span[1]) & ~1
    x1, y1 = min(width, span[2] + (span[2] & 1)), min(height, span[3] + (span[3] & 1))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grow(span: Span, share: float) -> Span:
    dx, dy = (span[2] - span[0]) * share, (span[3] - span[1]) * share
    return (
        math.floor(span[0] - dx),
        math.floor(span[1] - dy),
        math.ceil(span[2] + dx),
        math.ceil(span[3] + dy),
    )


def validate_keep(keep: Sequence[Sequence[int]], width: int, height: int) -> list[Rect]:
    """The keep rectangles as (x, y, w, h) ints; each must lie inside the frame."""
    rects: list[Rect] = []
    for item in keep:
        if len(item) != 4 or not all(isinstance(v, int | np.integer) for v in item):
            raise RedactError(f"keep region {tuple(item)!r} is not four integers X,Y,W,H")
        x, y, w, h = (int(v) for v in item)
        if w <= 0 or h <= 0:
            raise RedactError(f"keep region {x},{y},{w},{h} is empty")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise RedactError(f"keep region {x},{y},{w},{h} is outside the {width}x{height} frame")
        rects.append((x, y, w, h))
    return rects


class TrackBoxes:
    """Each shopper's head-and-torso span on any frame, interpolated between track samples."""

    def __init__(self, tracks: Mapping[str, Sequence[Sequence[int]]], fps: float) -> None:
        self.gap = max(1, round(TRACK_GAP_S * fps))
        self.hold = max(1, round(TRACK_HOLD_S * fps))
        self.tracks: list[tuple[list[int], list[Rect]]] = []
        for token, samples in tracks.items():
            rows: dict[int, Rect] = {}
            for sample in samples:
                if len(sample) != 5 or not all(isinstance(v, int | np.integer) for v in sample):
                    raise RedactError(
                        f"track {token!r}: sample {sample!r} is not five integers [frame, x, y, w, h]"
                    )
                f, x, y, w, h = (int(v) for v in sample)
                if f < 0 or w <= 0 or h <= 0:
                    raise RedactError(
                        f"track {token!r}: sample {list(sample)!r} has a negative frame or empty box"
                    )
                rows[f] = (x, y, w, h)
            if rows:
                frames = sorted(rows)
                self.tracks.append((frames, [rows[f] for f in frames]))

    def spans(self, frame: int) -> list[Span]:
        out: list[Span] = []
        for frames, rects in self.tracks:
            rect = self._at(frames, rects, frame)
            if rect is not None:
                x, y, w, h = rect
                above = round(h * HEAD_ABOVE)
                top = (x, y - above, w, max(1, round(h * HEAD_AND_TORSO) + above))
                out.append(_pad(top, TRACK_PAD, TRACK_PAD, TRACK_PAD, TRACK_PAD / 2))
        return out

    def _at(self, frames: list[int], rects: list[Rect], frame: int) -> Rect | None:
        i = bisect.bisect_left(frames, frame)
        if i < len(frames) and frames[i] == frame:
            return rects[i]
        before = i - 1 if i > 0 else None
        after = i if i < len(frames) else None
        if before is not None and after is not None and frames[after] - frames[before] <= self.gap:
            u = (frame - frames[before]) / (frames[after] - frames[before])
            a, b = rects[before], rects[after]
            x, y, w, h = (round(p + (q - p) * u) for p, q in zip(a, b, strict=True))
            return (x, y, w, h)
        near = [k for k in (before, after) if k is not None and abs(frames[k] - frame) <= self.hold]
        return rects[min(near, key=lambda k: abs(frames[k] - frame))] if near else None


def load_tracks(path: str | Path) -> dict[str, list[TrackSample]]:
    """A tracks file: ``{token: [[frame, x, y, w, h], ...]}``, or the tracker's whole JSON
    (whose ``tracks`` member is that mapping)."""
    p = Path(path)
    try:
        data: Any = json.loads(p.read_text())
    except FileNotFoundError:
        raise RedactError(f"{p}: no such tracks file")
    except (OSError, ValueError) as exc:
        raise RedactError(f"{p}: not a JSON tracks file ({exc})")
    if isinstance(data, dict) and isinstance(data.get("tracks"), dict):
        data = data["tracks"]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise RedactError(f"{p}: expected {{token: [[frame, x, y, w, h], ...]}}")
    out: dict[str, list[TrackSample]] = {}
    for token, samples in data.items():
        rows: list[TrackSample] = []
        for s in samples:
            if not (isinstance(s, list) and len(s) == 5 and all(type(v) is int for v in s)):
                raise RedactError(f"{p}: track {token!r} has a sample {s!r} that is not [frame, x, y, w, h]")
            rows.append((s[0], s[1], s[2], s[3], s[4]))
        out[str(token)] = rows
    return out


# -- pixels -----------------------------------------------------------------------


def _blur_plane(plane: U8, x0: int, y0: int, x1: int, y1: int) -> None:
    region = plane[y0:y1, x0:x1]
    h, w = region.shape
    cell = max(2, min(w, h) // CELLS)
    small = cv2.resize(region, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
    region[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _planes(frame: U8, width: int, height: int) -> tuple[U8, U8, U8]:
    """Views of the Y, U and V planes of one I420 frame held as a flat buffer."""
    y_size, c_size = width * height, (width // 2) * (height // 2)
    y = frame[:y_size].reshape(height, width)
    u = frame[y_size : y_size + c_size].reshape(height // 2, width // 2)
    v = frame[y_size + c_size :].reshape(height // 2, width // 2)
    return y, u, v


def redact_frame(frame: U8, width: int, height: int, spans: Sequence[Span], keep: Sequence[Rect]) -> None:
    """Blur `spans` (even-aligned, inside the frame) of an I420 frame in place, except `keep`."""
    if not spans:
        return
    planes = _planes(frame, width, height)
    saved: list[tuple[int, int, int, int, U8]] = []
    for x, y, w, h in keep:
        if any(_overlaps((x, y, x + w, y + h), s) for s in spans):
            # chroma cells touching the kept rectangle are kept as well
            cx0, cy0, cx1, cy1 = x // 2, y // 2, (x + w + 1) // 2, (y + h + 1) // 2
            saved.append((x, y, w, h, planes[0][y : y + h, x : x + w].copy()))
            saved.append((cx0, cy0, cx1 - cx0, cy1 - cy0, planes[1][cy0:cy1, cx0:cx1].copy()))
            saved.append((cx0, cy0, cx1 - cx0, cy1 - cy0, planes[2][cy0:cy1, cx0:cx1].copy()))
    for x0, y0, x1, y1 in spans:
        _blur_plane(planes[0], x0, y0, x1, y1)
        _blur_plane(planes[1], x0 // 2, y0 // 2, x1 // 2, y1 // 2)
        _blur_plane(planes[2], x0 // 2, y0 // 2, x1 // 2, y1 // 2)
    for i, (x, y, w, h, pixels) in enumerate(saved):
        planes[i % 3][y : y + h, x : x + w] = pixels


def _detect_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, max(DETECT_SIDE / max(width, height), DETECTOR_SMALLEST / SMALLEST_FACE))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _small_bgr(frame: U8, width: int, height: int, size: tuple[int, int]) -> U8:
    """The frame as BGR at the detection size, scaling the planes before the colour conversion."""
    if size == (width, height):
        return np.asarray(cv2.cvtColor(frame.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420))
    sw, sh = size
    y, u, v = _planes(frame, width, height)
    small = np.empty(sw * sh * 3 // 2, np.uint8)
    sy, su, sv = _planes(small, sw, sh)
    cv2.resize(y, (sw, sh), dst=sy, interpolation=cv2.INTER_AREA)
    cv2.resize(u, (sw // 2, sh // 2), dst=su, interpolation=cv2.INTER_AREA)
    cv2.resize(v, (sw // 2, sh // 2), dst=sv, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small.reshape(sh * 3 // 2, sw), cv2.COLOR_YUV2BGR_I420))


def _between(
    before: list[Span], after: list[Span], u: float, *, found: list[Span] | None = None
) -> list[Span]:
    """Face spans for a frame a share `u` of the way from one detection to the next: both
    detections' spans, and for each face seen in both (the nearest within a few box widths),
    its span moved that share of the way, so a face that crossed the gap is covered all along.

    `found`: the spans of `after` the detector actually returned (the default: all of them);
    only those are where a face went. A held copy of a face left where it was last seen is not:
    a face that moved would otherwise be matched to its own copy and not moved along at all."""
    out = before + after
    targets = after if found is None else found
    for a in before:
        ax, ay, aw = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0]
        near = [
            (math.hypot((b[0] + b[2]) / 2 - ax, (b[1] + b[3]) / 2 - ay), b)
            for b in targets
            if math.hypot((b[0] + b[2]) / 2 - ax, (b[1] + b[3]) / 2 - ay)
            <= MATCH_WIDTHS * max(aw, b[2] - b[0])
        ]
        if near:
            b = min(near)[1]
            x0, y0, x1, y1 = (p + (q - p) * u for p, q in zip(a, b, strict=True))
            out.append((math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)))
    return out


class _Faces:
    """Face spans at detection frames, with faces the detector lost held for a while."""

    def __init__(
        self, detector: Detector, width: int, height: int, hold_rounds: int, whole_every: int = 1
    ) -> None:
        self.detector = detector
        self.width, self.height = width, height
        self.size = _detect_size(width, height)
        self.scale = width / self.size[0]
        self.hold_rounds = hold_rounds
        self.whole_every = whole_every  # the whole picture at least every this many detections
        self.held: list[tuple[Span, int]] = []  # span, detections missed since
        self.runs = 0
        self.found = 0
        self.pixels = 0.0  # detection-size pictures' worth of pixels the detector looked at
        self.last_found: list[Span] = []  # what the last detection returned, nothing held
        self.last_grey: U8 | None = None  # the last detection's picture, grey, detection size
        self.since_whole = 0

    def _region(self, grey: U8) -> Span | None:
        """The part of the detection-size picture to look at: the blocks that changed since the
        last detection and every face found or held then, each with a margin; None for the
        whole picture (the first detection, every `whole_every`-th, or when most of it moved)."""
        if self.last_grey is None or self.since_whole + 1 >= self.whole_every:
            return None
        h, w = grey.shape
        b = ROI_BLOCK
        cols, rows = max(1, w // b), max(1, h // b)
        diff = cv2.absdiff(grey, self.last_grey)
        blocks = cv2.resize(diff, (cols, rows), interpolation=cv2.INTER_AREA) > ROI_CHANGE
        s = self.scale
        for span, _missed in self.held:
            x0, y0 = max(0, int(span[0] / s) // b), max(0, int(span[1] / s) // b)
            x1, y1 = min(cols, math.ceil(span[2] / s / b)), min(rows, math.ceil(span[3] / s / b))
            blocks[y0:y1, x0:x1] = True
        ys, xs = np.nonzero(blocks)
        if not len(xs):
            return (0, 0, 0, 0)  # nothing moved and no face: nothing new to find
        m = ROI_MARGIN
        # start on a multiple of the detector's largest stride, so what it finds inside the part
        # is what it finds there in the whole picture
        x0 = max(0, (int(xs.min()) - m) * b) // ROI_ALIGN * ROI_ALIGN
        y0 = max(0, (int(ys.min()) - m) * b) // ROI_ALIGN * ROI_ALIGN
        x1 = w if xs.max() + 1 + m >= cols else (int(xs.max()) + 1 + m) * b
        y1 = h if ys.max() + 1 + m >= rows else (int(ys.max()) + 1 + m) * b
        if (x1 - x0) * (y1 - y0) > ROI_WHOLE_SHARE * w * h:
            return None
        return (x0, y0, x1, y1)

    def detect(self, frame: U8) -> list[Span]:
        image = _small_bgr(frame, self.width, self.height, self.size)
        grey = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        region = self._region(grey)
        self.last_grey = grey
        self.runs += 1
        if region is None:
            self.since_whole = 0
            self.pixels += 1.0
            boxes = self.detector(image)
        else:
            self.since_whole += 1
            rx0, ry0, rx1, ry1 = region
            self.pixels += (rx1 - rx0) * (ry1 - ry0) / (grey.shape[0] * grey.shape[1])
            part = np.ascontiguousarray(image[ry0:ry1, rx0:rx1])
            boxes = (
                [(x + rx0, y + ry0, w, h, sc) for x, y, w, h, sc in self.detector(part)] if part.size else []
            )
        s = self.scale
        found = [
            _pad(
                (round(x * s), round(y * s), round(w * s), round(h * s)),
                FACE_PAD,
                FACE_PAD,
                FACE_PAD,
                FACE_PAD,
            )
            for x, y, w, h, _score in boxes
        ]
        self.found += len(found)
        self.last_found = found
        held = [
            (_grow(span, HOLD_GROW), missed + 1)
            for span, missed in self.held
            if missed < self.hold_rounds and not any(_overlaps(span, f) for f in found)
        ]
        self.held = [(f, 0) for f in found] + held
        return [span for span, _ in self.held]


# -- ffmpeg -----------------------------------------------------------------------


def output_size(width: int, height: int, out_height: int | None) -> tuple[int, int]:
    """The encoded size: the input's, or scaled to `out_height` (never up) with even sides."""
    if out_height is None or out_height >= height:
        return width, height
    if out_height < 2:
        raise RedactError(f"output height {out_height} is too small")
    even = out_height & ~1
    return max(2, round(width * even / height / 2) * 2), even


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    lines = [ln for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return "; ".join(lines[-3:]) if lines else "no message"


def _read_frames(proc: subprocess.Popen[bytes], frame_bytes: int) -> Iterator[U8]:
    """Each frame read straight into its own writable buffer (one copy out of the pipe, not two)."""
    assert proc.stdout is not None
    stdout = cast(io.RawIOBase, proc.stdout)  # unbuffered: the Popen has bufsize=0
    while True:
        buf = bytearray(frame_bytes)
        view, got = memoryview(buf), 0
        while got < frame_bytes:
            n = stdout.readinto(view[got:])
            if not n:
                return
            got += n
        yield np.frombuffer(buf, np.uint8)


def redact_video(
    src: str | Path,
    dst: str | Path,
    *,
    keep: Sequence[Sequence[int]] = (),
    tracks: Mapping[str, Sequence[Sequence[int]]] | None = None,
    detector: str = DEFAULT_DETECTOR,
    first_frame: int = 0,
    grab: Collection[int] = (),
    out_height: int | None = None,
) -> RedactReport:
    """Write `src` to `dst` with faces and tracked shoppers' heads and torsos blurred.

    `keep`: (x, y, w, h) rectangles left sharp (slot zones), each inside the frame.
    `tracks`: the tracker's shopper tracks, {token: [(frame, x, y, w, h), ...]}, numbered
    in the footage the tracker read; `first_frame` is the footage frame that is frame 0 of
    `src` (a clip cut from that footage starts later).
    `grab`: frame numbers of `src` whose redacted pictures the report hands back (a poster, slot
    crops), so the caller need not decode the output again. They are full size.
    `out_height`: encode at most this tall (the width follows the aspect ratio), for a player
    that never shows more; detection and blurring still work on the full-size frames.
    Raises RedactError for a missing or unreadable video, a bad keep rectangle or track,
    or an unavailable detector; `dst` is then left as it was.
    """
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    try:
        info = probe_stream(src)
    except DecodeError as exc:
        raise RedactError(str(exc))
    width, height = info.width, info.height
    if width <= 0 or height <= 0:
        raise RedactError(f"{src}: no video stream with a frame size")
    if width % 2 or height % 2:
        raise RedactError(f"{src}: H.264 yuv420p needs an even frame size, the video is {width}x{height}")
    if not info.fps > 0:
        raise RedactError(f"{src}: the video has no frame rate")
    keep_rects = validate_keep(keep, width, height)
    out_w, out_h = output_size(width, height, out_height)
    if first_frame < 0:
        raise RedactError(f"first frame {first_frame} is negative")
    track_boxes = TrackBoxes(tracks or {}, info.fps)
    try:
        detect = make_detector(detector)
    except DetectorUnavailable as exc:
        raise RedactError(str(exc))

    every = max(1, round(info.fps / DETECT_RATE))
    faces = _Faces(
        detect,
        width,
        height,
        hold_rounds=max(1, math.ceil(HOLD_S * info.fps / every)),
        whole_every=max(1, round(ROI_WHOLE_S * info.fps / every)),
    )
    rate = _rate(info.fps)
    frame_bytes = width * height * 3 // 2
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    ff = ffmpeg_binary()
    decode_cmd = [ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "1", "-i", str(src)]
    decode_cmd += [
        "-map",
        "0:v:0",
        "-an",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
    ]
    decode_cmd += ["pipe:1"]
    encode_cmd = [ff, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p"]
    encode_cmd += ["-s", f"{width}x{height}", "-framerate", f"{rate.numerator}/{rate.denominator}"]
    encode_cmd += [
        "-i",
        "pipe:0",
        "-an",
        "-c:v",
        "libx264",
        *X264,
        *X264_CAP,
        "-threads",
        "1",
        "-pix_fmt",
        "yuv420p",
    ]
    if (out_w, out_h) != (width, height):
        encode_cmd += ["-vf", f"scale={out_w}:{out_h}:flags=area"]
    encode_cmd += ["-g", str(max(1, round(info.fps))), "-movflags", "+faststart", "-f", "mp4", str(part)]

    frames = with_faces = with_tracks = 0
    wanted = {n for n in grab if n >= 0}
    grabbed: dict[int, U8] = {}
    last_frame: U8 | None = None

    def bgr(frame: U8) -> U8:
        return np.asarray(cv2.cvtColor(frame.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420))

    with tempfile.TemporaryFile() as dec_log, tempfile.TemporaryFile() as enc_log:
        dec = subprocess.Popen(decode_cmd, stdout=subprocess.PIPE, stderr=dec_log, bufsize=0)
        enc = subprocess.Popen(encode_cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=enc_log)
        ok = False
        try:
            enc_in = enc.stdin
            assert enc_in is not None

            def emit(frame: U8, index: int, face_spans: list[Span]) -> None:
                nonlocal frames, with_faces, with_tracks, last_frame
                track_spans = track_boxes.spans(first_frame + index)
                spans = [
                    s
                    for s in (_clip_even(s, width, height) for s in (*face_spans, *track_spans))
                    if s is not None
                ]
                redact_frame(frame, width, height, spans, keep_rects)
                if index in wanted:
                    grabbed[index] = bgr(frame)
                last_frame = frame
                with_faces += bool(face_spans)
                with_tracks += bool(track_spans)
                try:
                    enc_in.write(frame.data)
                except BrokenPipeError:
                    enc.wait()
                    raise RedactError(f"ffmpeg stopped while encoding {dst.name}: {_tail(enc_log)}")
                frames += 1

            pending: list[tuple[int, U8]] = []
            last_spans: list[Span] = []
            last_grey: NDArray[np.int16] | None = None
            last_index = -every
            index = -1
            for index, frame in enumerate(_read_frames(dec, frame_bytes)):
                grey = frame[: width * height].reshape(height, width)[::8, ::8].astype(np.int16)
                moved = last_grey is not None and float(np.abs(grey - last_grey).mean()) > MOTION_DETECT
                if index - last_index < every and not moved:
                    pending.append((index, frame))
                    continue
                spans = faces.detect(frame)
                for j, waiting in pending:
                    u = (j - last_index) / (index - last_index)
                    emit(waiting, j, _between(last_spans, spans, u, found=faces.last_found))
                pending.clear()
                emit(frame, index, spans)
                last_spans, last_grey, last_index = spans, grey, index
            if pending:  # the clip ended between detections: look once more at its last frame
                end = pending[-1][0]
                spans = faces.detect(pending[-1][1])
                for j, waiting in pending:
                    u = (j - last_index) / max(1, end - last_index)
                    emit(waiting, j, _between(last_spans, spans, u, found=faces.last_found))
            enc_in.close()
            dec_code, enc_code = dec.wait(), enc.wait()
            if dec_code != 0 or frames == 0:
                raise RedactError(f"{src}: cannot decode the video: {_tail(dec_log)}")
            if enc_code != 0:
                raise RedactError(f"encoding {dst.name} failed: {_tail(enc_log)}")
            if last_frame is not None and any(n >= frames for n in wanted):
                tail = bgr(last_frame)
                grabbed.update({n: tail for n in wanted if n >= frames})
            os.replace(part, dst)
            ok = True
        finally:
            if not ok:
                for proc in (dec, enc):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                part.unlink(missing_ok=True)
    return RedactReport(
        frames=frames,
        width=width,
        height=height,
        fps=info.fps,
        detector=detector,
        detections_run=faces.runs,
        faces_found=faces.found,
        frames_with_faces=with_faces,
        frames_with_tracks=with_tracks,
        seconds=time.perf_counter() - started,
        looked_share=faces.pixels / faces.runs if faces.runs else 1.0,
        out_width=out_w,
        out_height=out_h,
        grabbed=grabbed,
    )


# -- command line ------------------------------------------------------------------


def _keep_arg(text: str) -> Rect:
    parts = text.split(",")
    try:
        x, y, w, h = (int(p.strip()) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,W,H (four integers)")
    return (x, y, w, h)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tracking.redact",
        description="Blur faces and shoppers in a clip for reviewers, leaving slot zones sharp. "
        "Writes H.264 yuv420p faststart MP4 at the input's frame rate and frame count, and its size "
        "unless --height asks for less.",
    )
    parser.add_argument("input", nargs="?", type=Path, help="the clip to redact (any video ffmpeg reads)")
    parser.add_argument("output", nargs="?", type=Path, help="where to write the redacted MP4")
    parser.add_argument(
        "--keep",
        action="append",
        type=_keep_arg,
        default=[],
        metavar="X,Y,W,H",
        help="a rectangle in frame pixels left sharp (an event's slot zone); repeat for several",
    )
    parser.add_argument(
        "--tracks",
        type=Path,
        metavar="TRACKS.json",
        help="shopper tracks, {token: [[frame, x, y, w, h], ...]} or the tracker's JSON with a 'tracks' "
        "member; the head and upper body of each tracked box are blurred as well",
    )
    parser.add_argument(
        "--first-frame",
        type=int,
        default=0,
        metavar="N",
        help="the tracks' frame number of the input's first frame, when the input is a clip cut from the "
        "footage the tracker read (default 0)",
    )
    parser.add_argument(
        "--height",
        type=int,
        metavar="H",
        help="encode at most H pixels tall, the width following (default: the input's size); faces are "
        "still found and blurred on the full-size frames",
    )
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help=f"face detector (default {DEFAULT_DETECTOR}: libfacedetection's CNN from the yuface package; "
        "haar: OpenCV's cascades, weaker)",
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="instead: render a 10 s 720p15 simulator clip and time its redaction on one core",
    )
    parser.add_argument("--no-pin", action="store_true", help="with --bench: do not pin to one core")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bench:
        from tracking.redact_bench import run_bench

        return run_bench(pin=not args.no_pin, detector=args.detector)
    if args.input is None or args.output is None:
        parser.error("the input and output paths are required")
    try:
        tracks = load_tracks(args.tracks) if args.tracks is not None else None
        report = redact_video(
            args.input,
            args.output,
            keep=args.keep,
            tracks=tracks,
            detector=args.detector,
            first_frame=args.first_frame,
            out_height=args.height,
        )
    except RedactError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.output}: {report.frames} frames {report.out_width}x{report.out_height} at {report.fps:g} fps; "
        f"faces blurred in {report.frames_with_faces}, shoppers in {report.frames_with_tracks}; "
        f"{report.detections_run} detections ({report.detector}); {report.seconds:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
