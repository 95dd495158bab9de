"""Review media cut from store footage: clips, poster frames and slot crops.

Clips are browser-playable H.264 MP4 with the index at the front (faststart), so a
browser can start playing and seek before the whole file has arrived. Store footage
is already H.264 yuv420p with a keyframe at least every second, so a clip is cut by
copying the stream from the keyframe before the wanted start (no re-encode: a 10 s
clip takes a few tens of milliseconds); anything else is re-encoded.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg  # ffmpeg-python
import numpy as np
from numpy.typing import NDArray

from tracking.ffmpeg import ffmpeg_binary


class ClipError(RuntimeError):
    """ffmpeg or OpenCV could not produce the clip, poster or crop; the message says why."""


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    members: tuple[int, ...]  # indexes of the events that fall in this span


def merge_spans(
    intervals: Sequence[tuple[float, float]], *, context: float = 1.5, duration: float | None = None
) -> list[Span]:
    """Pad each (start, end) by `context` seconds and merge those that overlap.

    Returns spans in time order, each with the indexes of the intervals it covers,
    clamped to [0, duration] when the duration is known.
    """
    padded = sorted(
        ((max(0.0, s - context), e + context if duration is None else min(duration, e + context), i))
        for i, (s, e) in enumerate(intervals)
    )
    spans: list[Span] = []
    for start, end, index in padded:
        if spans and start <= spans[-1].end:
            last = spans[-1]
            spans[-1] = Span(last.start, max(last.end, end), (*last.members, index))
        else:
            spans.append(Span(start, end, (index,)))
    return spans


def _video_codec(path: Path) -> tuple[str, str]:
    """(codec, pixel format) as ffmpeg sees them; there is no ffprobe, so ask ffmpeg itself: given
    an input and no output it describes the input and stops (a third of the time of a null
    output, most of a stream-copy cut's)."""
    try:
        err = subprocess.run(
            [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=60,
            check=False,  # with no output named, ffmpeg always ends in an error
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClipError(f"cannot read {path.name}: {exc}") from exc
    for line in err.decode(errors="replace").splitlines():
        if "Video:" in line:
            parts = line.split("Video:", 1)[1].split(",")
            codec = parts[0].strip().split()[0]
            pix = parts[1].strip().split("(")[0].strip() if len(parts) > 1 else ""
            return codec, pix
    last = _last_line(err)
    if not last.startswith("At least one output file"):  # it read the input, and found no video in it
        raise ClipError(f"cannot read {path.name}: {last}")
    raise ClipError(f"{path.name} has no video stream")


def _last_line(stderr: bytes | None) -> str:
    lines = [line for line in (stderr or b"").decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg failed"


def cut_clip(source: str | Path, target: str | Path, *, start: float, end: float) -> Path:
    """Write [start, end] of `source` (seconds) to `target` as a faststart H.264 MP4.

    With stream copy the clip begins at the keyframe at or before `start` (at most one
    second earlier in store footage), which only adds context.
    """
    source, target = Path(source), Path(target)
    if end <= start:
        raise ClipError(f"empty clip span {start:.2f}-{end:.2f}s")
    target.parent.mkdir(parents=True, exist_ok=True)
    codec, pix_fmt = _video_codec(source)
    stream = ffmpeg.input(str(source), ss=f"{start:.3f}")
    common = {"t": f"{end - start:.3f}", "movflags": "+faststart", "an": None, "f": "mp4"}
    if codec == "h264" and pix_fmt == "yuv420p":
        out = stream.output(str(target), c="copy", avoid_negative_ts="make_zero", **common)
    else:
        out = stream.output(
            str(target), vcodec="libx264", pix_fmt="yuv420p", preset="veryfast", crf=23, g=15, **common
        )
    try:
        out.overwrite_output().run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        raise ClipError(
            f"cutting {source.name} {start:.2f}-{end:.2f}s failed: {_last_line(exc.stderr)}"
        ) from exc
    if not target.exists() or target.stat().st_size == 0:
        raise ClipError(f"cutting {source.name} {start:.2f}-{end:.2f}s produced no video")
    return target


def read_frame(source: str | Path, frame_number: int) -> NDArray[np.uint8]:
    """One BGR frame by number (OpenCV seeks to the keyframe before it and decodes forward)."""
    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            raise ClipError(f"cannot open {Path(source).name}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = max(0, min(frame_number, count - 1)) if count > 0 else max(0, frame_number)
        capture.set(cv2.CAP_PROP_POS_FRAMES, wanted)
        ok, frame = capture.read()
        if not ok or frame is None:
            raise ClipError(f"cannot read frame {frame_number} of {Path(source).name}")
        return np.asarray(frame, dtype=np.uint8)
    finally:
        capture.release()


def read_frames(source: str | Path, frame_numbers: Sequence[int]) -> dict[int, NDArray[np.uint8]]:
    """Several BGR frames by number with one open file: decoded forward in order, seeking only
    across long gaps (a seek costs a keyframe's worth of decoding, a forward read one frame)."""
    wanted = sorted({max(0, n) for n in frame_numbers})
    frames: dict[int, NDArray[np.uint8]] = {}
    if not wanted:
        return frames
    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            raise ClipError(f"cannot open {Path(source).name}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        position = -1  # the number of the frame read last
        for number in wanted:
            target = min(number, count - 1) if count > 0 else number
            if target <= position or target - position > 30:
                capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                position = target - 1
            frame = None
            while position < target:
                ok, frame = capture.read()
                if not ok:
                    raise ClipError(f"cannot read frame {number} of {Path(source).name}")
                position += 1
            if frame is not None:
                frames[number] = np.asarray(frame, dtype=np.uint8)
            elif target in frames:
                frames[number] = frames[target]
        return frames
    finally:
        capture.release()


def write_poster(
    source: str | Path, target: str | Path, *, frame_number: int = 0, max_width: int = 960
) -> Path:
    """A JPEG still shown before the clip plays."""
    return write_poster_of(read_frame(source, frame_number), target, max_width=max_width)


def write_poster_of(frame: NDArray[np.uint8], target: str | Path, *, max_width: int = 960) -> Path:
    """As write_poster, from a frame already in memory."""
    if frame.shape[1] > max_width:
        scale = max_width / frame.shape[1]
        frame = np.asarray(
            cv2.resize(frame, (max_width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
    return _write_image(target, frame, ".jpg")


def write_crop(
    source: str | Path,
    target: str | Path,
    *,
    frame_number: int,
    box: tuple[int, int, int, int],
    pad: float = 0.25,
    min_size: int = 160,
) -> Path:
    """The slot `box` (x, y, w, h in frame pixels) with some margin, as PNG, at least `min_size` tall."""
    return write_crop_of(read_frame(source, frame_number), target, box=box, pad=pad, min_size=min_size)


def write_crop_of(
    frame: NDArray[np.uint8],
    target: str | Path,
    *,
    box: tuple[int, int, int, int],
    pad: float = 0.25,
    min_size: int = 160,
) -> Path:
    """As write_crop, from a frame already in memory."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ClipError(f"box {box} is outside the {width}x{height} frame")
    px, py = round(w * pad), round(h * pad)
    x0, y0 = max(0, x - px), max(0, y - py)
    x1, y1 = min(width, x + w + px), min(height, y + h + py)
    crop = frame[y0:y1, x0:x1]
    if crop.shape[0] < min_size:
        scale = min_size / crop.shape[0]
        crop = np.asarray(
            cv2.resize(crop, (round(crop.shape[1] * scale), min_size), interpolation=cv2.INTER_CUBIC),
            dtype=np.uint8,
        )
    return _write_image(target, crop, ".png")


def _write_image(target: str | Path, image: NDArray[np.uint8], ext: str) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 85] if ext == ".jpg" else [])
    if not ok:
        raise ClipError(f"cannot encode {target.name}")
    target.write_bytes(encoded.tobytes())
    return target
