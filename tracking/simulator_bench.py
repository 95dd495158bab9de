"""How fast the simulator renders and encodes footage.

    taskset -c 0 python -m tracking.simulator_bench --preset hard --seconds 30

Renders `--seconds` of a preset scene (720p15 by default) into a temporary
folder and prints frames per second and the real-time ratio, rendering and
encoding together (the encoder runs in its own process; pin both to one core
with taskset to measure the one-core figure). The target is 3x real time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tracking.simulator import PRESETS, plan_scene, render_footage


def bench(*, preset: str, seconds: float, width: int, height: int, fps: int, seed: int) -> tuple[int, float]:
    """Render and encode `seconds` of footage; returns (frames, wall seconds)."""
    scene = plan_scene(seed=seed, preset=preset, duration=seconds, width=width, height=height, fps=fps)
    # only time the footage that was asked for, even if the plan runs longer
    scene.frame_count = min(scene.frame_count, int(seconds * fps))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        render_footage(scene, Path(tmp) / "footage.mp4")
        took = time.perf_counter() - started
    return scene.frame_count, took


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracking.simulator_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--preset", choices=[*sorted(PRESETS), "all"], default="all", help="preset to time (default all)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="footage seconds per preset (default 30)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    presets = sorted(PRESETS) if args.preset == "all" else [args.preset]
    print(f"{'preset':8s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'x real time':>12s}")
    for name in presets:
        frames, took = bench(
            preset=name,
            seconds=args.seconds,
            width=args.width,
            height=args.height,
            fps=args.fps,
            seed=args.seed,
        )
        rate = frames / took
        print(f"{name:8s} {frames:7d} {took:8.2f} {rate:9.1f} {rate / args.fps:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
