"""Reading and writing H.264 footage.

Writing pipes frames into the ffmpeg binary (`tracking.ffmpeg.ffmpeg_binary`);
the frames are converted to I420 in this process with OpenCV, which halves what
goes through the pipe and spares ffmpeg its slower scaler. Reading uses OpenCV.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.ffmpeg import ffmpeg_binary

Frame = NDArray[np.uint8]


class VideoError(RuntimeError):
    pass


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


class H264Writer:
    """Stream BGR frames into an H.264 MP4 (yuv420p, faststart, a keyframe every `keyint` frames).

    `bitrate_kbps` is both the target and the cap (`-maxrate`), as a store camera
    streams. Use as a context manager; `close()` raises `VideoError` if ffmpeg failed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: float,
        bitrate_kbps: int = 1500,
        keyint: int | None = None,
        preset: str = "veryfast",
        threads: int = 1,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        self.width = width
        self.height = height
        self.frames_written = 0
        gop = keyint if keyint is not None else max(1, round(fps))
        # ffmpeg's stderr goes to a file, not a pipe nobody reads while frames are written
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()/abort()
        cmd = [
            ffmpeg_binary(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            f"{width}x{height}",
            "-framerate",
            f"{fps:g}",
            "-i",
            "pipe:0",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-threads",
            str(threads),
            "-pix_fmt",
            "yuv420p",
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-b:v",
            f"{bitrate_kbps}k",
            "-maxrate",
            f"{bitrate_kbps}k",
            "-bufsize",
            f"{bitrate_kbps * 2}k",
            "-movflags",
            "+faststart",
            str(self.path),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame: Frame) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {self.width}x{self.height} BGR uint8 frame, got {frame.shape} {frame.dtype}"
            )
        stdin = self._proc.stdin
        assert stdin is not None
        yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        try:
            stdin.write(yuv.data)
        except BrokenPipeError:
            self._proc.wait()
            raise VideoError(f"ffmpeg stopped while writing {self.path}: {self._stderr()}")
        self.frames_written += 1

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        code = self._proc.wait()
        message = self._stderr()
        self._log.close()
        if code != 0:
            raise VideoError(f"ffmpeg failed ({code}) writing {self.path}: {message}")

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._log.close()

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip()[-2000:]

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _open(path: str | Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open it as a video")
    return cap


def probe(path: str | Path) -> VideoInfo:
    """Size, frame rate and frame count from the container (no decode)."""
    cap = _open(path)
    try:
        return VideoInfo(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
        )
    finally:
        cap.release()


def iter_frames(path: str | Path) -> Iterator[Frame]:
    """Yield every frame as a BGR uint8 array, one at a time (memory stays flat)."""
    cap = _open(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield np.asarray(frame, dtype=np.uint8)
    finally:
        cap.release()
