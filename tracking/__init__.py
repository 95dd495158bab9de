"""Shelf-camera tracking: the simulator, the tracker and its benchmark. No Django here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracking.tracker import track_footage as track_footage

__all__ = ["track_footage"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import tracking` stays cheap (no OpenCV or numpy)
    if name == "track_footage":
        from tracking.tracker import track_footage

        return track_footage
    raise AttributeError(f"module 'tracking' has no attribute {name!r}")
