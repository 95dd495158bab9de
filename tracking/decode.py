"""Decoding footage once, streaming, at the tracker's analysis size.

The ffmpeg binary decodes and scales in its own process and hands planar
YUV 4:2:0 frames through a pipe: the luma plane at the analysis size for the
shelf and the chroma planes at half of it for colour, without a colour
conversion. One frame buffer is reused, so memory does not grow with length.
"""

from __future__ import annotations

import bisect
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.ffmpeg import ffmpeg_binary

U8 = NDArray[np.uint8]


class DecodeError(RuntimeError):
    """The file cannot be decoded at all (missing, empty, not a video)."""


@dataclass(frozen=True)
class StreamInfo:
    width: int
    height: int
    fps: float
    frame_count: int  # as the container states it; 0 when unknown

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass
class DecodeReport:
    frames: int = 0
    return_code: int | None = None
    stderr: str = ""

    @property
    def had_errors(self) -> bool:
        return bool(self.return_code) or bool(_ERROR_RE.search(self.stderr))


_ERROR_RE = re.compile(r"(invalid data|partial file|error|corrupt|truncat|moov atom)", re.IGNORECASE)


def probe_stream(path: str | Path) -> StreamInfo:
    """Size, frame rate and frame count from the container, without decoding.

    Raises DecodeError for a missing, empty or unreadable file.
    """
    p = Path(path)
    if not p.exists():
        raise DecodeError(f"{p}: no such file")
    if not p.is_file():
        raise DecodeError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise DecodeError(f"{p}: the file is empty")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise DecodeError(f"{p}: not a video that can be opened (corrupt or unknown format)")
        info = StreamInfo(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
            frame_count=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
        )
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise DecodeError(f"{p}: no video stream with a frame size")
    return info


def stream_gaps(path: str | Path, longer_than: float) -> list[tuple[float, float]]:
    """Stretches with no picture in the stream (frames lost or not recorded), longer than
    `longer_than` seconds, as (from, to) seconds after its first frame. From the packets' times
    alone, read as they come (no decoding, memory flat: milliseconds for a minute of footage);
    none if those cannot be read."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path)]
    cmd += ["-map", "0:v:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return []
    assert proc.stdout is not None
    base: Fraction | None = None
    window: list[int] = []  # packets come in decoding order: their times, sorted a few at a time
    first: int | None = None
    last: int | None = None
    gaps: list[tuple[int, int]] = []

    def take(pts: int) -> None:
        nonlocal first, last
        if first is None:
            first = pts
        elif last is not None and base is not None and (pts - last) * base > longer_than:
            gaps.append((last, pts))
        last = pts

    with proc.stdout:
        for raw in proc.stdout:
            line = raw.decode("ascii", "replace")
            if line.startswith("#tb 0:"):
                base = Fraction(line.split(":", 1)[1].strip())
                continue
            fields = line.split(",")
            if line.startswith("#") or len(fields) < 3 or not fields[2].strip().lstrip("-").isdigit():
                continue
            bisect.insort(window, int(fields[2]))
            if len(window) > 32:
                take(window.pop(0))
    proc.wait()
    for pts in window:
        take(pts)
    if base is None or first is None:
        return []
    return [(round(float((a - first) * base), 3), round(float((b - first) * base), 3)) for a, b in gaps]


@dataclass
class YuvFrame:
    """One decoded frame: views into a reused buffer, valid until the next frame is read."""

    index: int
    y: U8  # (h, w) luma
    u: U8  # (h/2, w/2)
    v: U8
    buffer: U8  # the whole I420 buffer, shape (h * 3 / 2, w)


def iter_yuv(
    path: str | Path,
    width: int,
    height: int,
    report: DecodeReport,
    *,
    threads: int = 1,
    fps: float | None = None,
) -> Iterator[YuvFrame]:
    """Yield every frame of `path` scaled to width x height (both even) as I420 planes.

    Given `fps`, at exactly that rate from the first frame's time: frame n is the picture
    shown at n / fps, a frame repeated over a gap in the stream and frames dropped where
    it runs faster (footage recorded with a variable frame rate, or frames lost on the
    way), so that a frame's number tells its time. A constant-rate stream at that rate
    comes through frame for frame.

    Stops quietly where the data ends; `report` then holds the frame count, ffmpeg's
    exit code and its error output, so the caller can tell a truncated file.
    """
    if width % 2 or height % 2:
        raise ValueError("the analysis size must be even")
    cmd = [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-threads",
        str(threads),
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-vf",
        (f"fps={fps!r}," if fps else "") + f"scale={width}:{height}:flags=fast_bilinear",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "rawvideo",
        "pipe:1",
    ]
    log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, bufsize=0)
    stdout = proc.stdout
    assert stdout is not None
    size = width * height * 3 // 2
    _widen_pipe(stdout.fileno(), size)
    buf = np.empty((height * 3 // 2, width), np.uint8)
    mem = memoryview(buf.reshape(-1).data)
    y = buf[:height]
    uv = buf[height:].reshape(-1)
    q = (width // 2) * (height // 2)
    u = uv[:q].reshape(height // 2, width // 2)
    v = uv[q:].reshape(height // 2, width // 2)
    index = 0
    try:
        while True:
            got = 0
            while got < size:
                n = stdout.readinto(mem[got:])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
            if got < size:
                break
            yield YuvFrame(index, y, u, v, buf)
            index += 1
    finally:
        stdout.close()
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        log.seek(0)
        report.frames = index
        report.return_code = code
        report.stderr = log.read().decode("utf-8", "replace").strip()[-2000:]
        log.close()


def _widen_pipe(fd: int, frame_bytes: int) -> None:
    """Let the pipe hold a few frames (Linux; elsewhere, or past the system's limit, it stays as it
    is): with the usual 64 KB, ffmpeg and the reader swap places six times a frame, and on one
    core that costs a few percent of the time."""
    want = min(4 * frame_bytes, 1 << 20)
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, want)
    except (ImportError, AttributeError, OSError):
        pass


def bare_decode(path: str | Path, width: int, height: int) -> int:
    """Decode through the same pipe (at the same rate) and do nothing with the frames: the speed baseline."""
    report = DecodeReport()
    n = 0
    info = probe_stream(path)
    for _ in iter_yuv(path, width, height, report, fps=info.fps if info.fps > 0 else None):
        n += 1
    return n


def opencv_decode(path: str | Path) -> int:
    """OpenCV read() of every full-size BGR frame: the other speed baseline."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
    finally:
        cap.release()
    return n
