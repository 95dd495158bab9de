"""How well and how fast the tracker does on simulated scenes.

    python -m tracking.bench                       # the standard suite, all presets
    python -m tracking.bench --suite quick --presets mixed
    python -m tracking.bench --memory              # peak memory on 1-, 10- and 60-minute footage

Renders each scene once into the cache (var/bench-scenes by default), runs the
tracker and compares with truth.json (only here and in tracking.calibrate's
fitting are the answers read). Speed is measured on one core: the process, and
the ffmpeg it starts, are pinned to CPU 0. "Bare decode" is the tracker's own
ffmpeg pipe (same scaling, same pixel format) with nothing done to the frames;
OpenCV's read() of full-size BGR frames is printed beside it. Under each preset's
figures: how many of the carts that were not exactly right show each kind of
mistake (an event given to another shopper, another's event, one missed, the
wrong product or quantity, an event that did not happen: `wrong_cart_causes`).

The standard suite's seeds are fixed here and are disjoint from the fitting
seeds in tracking.calibrate (100001 and up).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracking.decode import bare_decode, opencv_decode, probe_stream
from tracking.ffmpeg import ffmpeg_binary
from tracking.scene import Truth, TruthEvent, load_truth
from tracking.tracker import DEFAULT_THRESHOLD, TrackedEvent, TrackResult, track_footage

SUITES: dict[str, dict[str, list[int]]] = {
    # at least 200 carts a preset, so one wrong cart moves a share of carts by at most 0.5 points; the
    # share wrong among auto-approved carts moves by one over however many were auto-approved (printed).
    # Mixed has 80 scenes (about 480 carts), so that its calibration error is measured with a chance
    # floor under the 0.05 target (measured: 0.044 on 480 carts, against 0.063 on the 240 of 40 scenes)
    "standard": {"easy": list(range(1, 71)), "mixed": list(range(1, 81)), "hard": list(range(1, 29))},
    "quick": {"easy": [1, 2, 3, 4], "mixed": [1, 2, 3, 4], "hard": [1, 2, 3]},
}
SPEED_SCENES = 3  # per preset, timed against bare decode
SPEED_REPEATS = 2  # each timed this many times, the best kept


def scene_dir(cache: Path, preset: str, seed: int, width: int, height: int) -> Path:
    return cache / f"{preset}-{seed:05d}-{width}x{height}"


def ensure_scene(cache: Path, preset: str, seed: int, width: int, height: int, **kw: float) -> Path:
    """The scene folder, rendered on first use (into a temporary folder, then renamed)."""
    d = scene_dir(cache, preset, seed, width, height)
    if (d / "footage.mp4").is_file() and (d / "truth.json").is_file():
        return d
    from tracking.simulator import simulate  # only the benchmark renders

    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    simulate(tmp, seed=seed, preset=preset, width=width, height=height, **kw)  # type: ignore[arg-type]
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return d


def run_scene(d: Path) -> tuple[TrackResult, Truth, float]:
    started = time.perf_counter()
    result = track_footage(d / "footage.mp4", d / "planogram.json", d / "visits.json")
    took = time.perf_counter() - started
    return result, load_truth(d / "truth.json"), took


def _near(e: TrackedEvent, t: TruthEvent) -> bool:
    """A tracked and a true event at the same slot, at about the same time."""
    return e.slot == t.slot and e.t_start - 2.0 <= t.t_end and t.t_start <= e.t_end + 2.0


def pair_events(
    result: TrackResult, truth: Truth
) -> tuple[list[tuple[TrackedEvent, TruthEvent | None]], list[TruthEvent]]:
    """Each tracked event with the true event that agrees with it (visit, slot, kind, sku, qty,
    time), or None; and the true events no tracked event agrees with."""
    used: set[int] = set()
    out: list[tuple[TrackedEvent, TruthEvent | None]] = []
    events = [e for c in result.carts.values() for e in c.events] + list(result.unattributed)
    for e in sorted(events, key=lambda e: e.t_start):
        found = None
        for i, t in enumerate(truth.events):
            if (
                i not in used
                and _near(e, t)
                and (t.token, t.kind, t.sku, t.qty) == (e.token, e.kind, e.sku, e.qty)
            ):
                used.add(i)
                found = t
                break
        out.append((e, found))
    return out, [t for i, t in enumerate(truth.events) if i not in used]


def match_events(result: TrackResult, truth: Truth) -> list[tuple[TrackedEvent, bool]]:
    """Each tracked event, and whether a true event agrees with it (visit, slot, kind, sku, qty, time)."""
    return [(e, t is not None) for e, t in pair_events(result, truth)[0]]


CAUSES = (
    "given to another shopper",
    "another shopper's event",
    "left unattributed",
    "missed",
    "wrong product",
    "wrong quantity",
    "no such event",
    "other",
)


def wrong_cart_causes(result: TrackResult, truth: Truth) -> Counter[str]:
    """For the carts that are not exactly right, how many show each kind of mistake among their
    events (`CAUSES`; a cart can show several). A take and put-back of the same product at one slot
    by one shopper that the tracker did not report nets to nothing and is not counted as missed."""
    paired, unmatched = pair_events(result, truth)
    stray = [e for e, t in paired if t is None]
    causes: Counter[str] = Counter()
    for token, cart in result.carts.items():
        if {ln.sku: ln.qty for ln in cart.lines} == truth.carts.get(token, {}):
            continue
        found: set[str] = set()
        for e in stray:
            if e.token != token:
                continue
            there = [t for t in unmatched if _near(e, t) and t.kind == e.kind]
            if any(t.token != token and (t.sku, t.qty) == (e.sku, e.qty) for t in there):
                found.add("another shopper's event")
            elif any(t.token == token and t.sku == e.sku for t in there):
                found.add("wrong quantity")
            elif any(t.token == token for t in there):
                found.add("wrong product")
            else:
                found.add("no such event")
        mine = [t for t in unmatched if t.token == token]
        for t in mine:
            undone = "return" if t.kind == "pick" else "pick"
            if any(u.kind == undone and (u.slot, u.sku) == (t.slot, t.sku) for u in mine):
                continue  # taken and put back (or the reverse), neither reported: nets to nothing
            elsewhere = [e for e in stray if _near(e, t) and e.kind == t.kind and e.token != token]
            if any(e.token is None and (e.sku, e.qty) == (t.sku, t.qty) for e in elsewhere):
                found.add("left unattributed")
            elif any(e.token is not None and (e.sku, e.qty) == (t.sku, t.qty) for e in elsewhere):
                found.add("given to another shopper")
            elif not any(e.token == token and _near(e, t) and e.kind == t.kind for e in stray):
                found.add("missed")
        causes.update(found or {"other"})
    return causes


@dataclass
class Tally:
    carts: int = 0
    exact: int = 0
    flagged: int = 0
    auto: int = 0
    auto_wrong: int = 0
    ambiguous_carts: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    seconds: float = 0.0
    conf: list[tuple[float, bool]] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)

    def add(self, result: TrackResult, truth: Truth, took: float) -> None:
        amb_tokens = {e.token for e in truth.events if e.ambiguous}
        for token, cart in result.carts.items():
            want = truth.carts.get(token, {})
            got = {ln.sku: ln.qty for ln in cart.lines}
            ok = got == want
            self.carts += 1
            self.exact += ok
            self.flagged += cart.flagged
            if not cart.flagged:
                self.auto += 1
                self.auto_wrong += not ok
            self.ambiguous_carts += token in amb_tokens
            for sku in set(got) | set(want):
                g, w = got.get(sku, 0), want.get(sku, 0)
                self.tp += min(g, w)
                self.fp += max(0, g - w)
                self.fn += max(0, w - g)
            self.conf.append((cart.confidence, ok))
        self.frames += int(result.stats["frames"])
        self.seconds += took
        self.causes.update(wrong_cart_causes(result, truth))

    def ece(self, bins: int = 10) -> float:
        if not self.conf:
            return 0.0
        total = 0.0
        for b in range(bins):
            lo, hi = b / bins, (b + 1) / bins
            inside = [(p, ok) for p, ok in self.conf if lo <= p < hi or (b == bins - 1 and p == 1.0)]
            if inside:
                mean_p = sum(p for p, _ in inside) / len(inside)
                acc = sum(ok for _, ok in inside) / len(inside)
                total += len(inside) * abs(mean_p - acc)
        return total / len(self.conf)

    def ece_floor(self, bins: int = 10, draws: int = 2000) -> float:
        """The ECE a perfectly calibrated model would still show on these carts, from chance alone:
        each cart right with exactly its stated probability, averaged over `draws` such outcomes.
        A few hundred carts spread over the middle bins cannot show much less."""
        if not self.conf:
            return 0.0
        p = np.array([c for c, _ in self.conf])
        which = np.minimum(bins - 1, (p * bins).astype(int))
        rng = np.random.default_rng(0)
        right = rng.random((draws, len(p))) < p
        total = np.zeros(draws)
        for b in np.unique(which):
            inside = which == b
            total += np.abs(right[:, inside].sum(axis=1) - p[inside].sum())
        return float(total.mean() / len(p))


def pin_one_core() -> str:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return "one core (pinned)"
    except (AttributeError, OSError):
        return "not pinned"


def speed(paths: list[Path], repeats: int = SPEED_REPEATS) -> tuple[float, float, float, int]:
    """Seconds for the tracker, the bare pipe decode and OpenCV read() over the same files, and frames.

    Each is the best of `repeats` runs, taken in turn: on a shared machine one run can be 10-15%
    slower than the next for the same work, and the least time is the closest to the work's own."""
    t_track = t_pipe = t_cv = 0.0
    frames = 0
    for d in paths:
        f = d / "footage.mp4"
        best = [math.inf, math.inf, math.inf]
        for _ in range(repeats):
            t = time.perf_counter()
            r = track_footage(f, d / "planogram.json", d / "visits.json")
            best[0] = min(best[0], time.perf_counter() - t)
            w, h = r.stats["analysis_size"]
            t = time.perf_counter()
            bare_decode(f, w, h)
            best[1] = min(best[1], time.perf_counter() - t)
            t = time.perf_counter()
            opencv_decode(f)
            best[2] = min(best[2], time.perf_counter() - t)
        frames += int(r.stats["frames"])
        t_track, t_pipe, t_cv = t_track + best[0], t_pipe + best[1], t_cv + best[2]
    return t_track, t_pipe, t_cv, frames


def repeated_scene(src: Path, dst: Path, times: int) -> Path:
    """A scene `times` as long: `src`'s footage played `times` times over (the stream copied, no new
    encode) and its visits again on each pass under new tokens, so the tracker sees `times` as many
    shoppers come and go. How an hour is made without rendering one. Each pass starts on the full
    shelf again, as if restocked: the tracker sees the items taken put back with nobody there."""
    d = dst / f"{src.name}-x{times}"
    if (d / "footage.mp4").is_file():
        return d
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("planogram.json", "products", "gate"):
        (tmp / name).symlink_to((src / name).resolve())
    listing = tmp / "parts.txt"
    listing.write_text("".join(f"file '{(src / 'footage.mp4').resolve()}'\n" for _ in range(times)))
    subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0"]
        + ["-i", str(listing), "-c", "copy", str(tmp / "footage.mp4")],
        check=True,
    )
    length = probe_stream(src / "footage.mp4").duration
    visits = json.loads((src / "visits.json").read_text())
    again = [
        {
            **v,
            "token": f"{v['token']}_{k}",
            "entered_at": v["entered_at"] + k * length,
            "exited_at": v["exited_at"] + k * length,
        }
        for k in range(times)
        for v in visits
    ]
    (tmp / "visits.json").write_text(json.dumps(again))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return d


@dataclass(frozen=True)
class MemoryPeak:
    label: str
    seconds: float  # of footage
    visits: int
    rss_kib: int  # the process's peak resident memory (VmHWM), interpreter and libraries included
    traced_kib: int  # the most the tracker itself held at once, by tracemalloc (numpy's arrays included)


# each run in a fresh process: the footage's peak RSS, then (in a second process, as tracing slows the
# tracker and takes memory of its own) the most the tracker's own allocations held at once
_PEAK_RSS = (
    "from tracking.tracker import track_footage as t; t({f!r}, {p!r}, {v!r}); "
    # VmHWM, not ru_maxrss: a child's ru_maxrss can start from its parent's at fork
    "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])"
)
_PEAK_TRACED = (
    "import tracemalloc; from tracking.tracker import track_footage as t; tracemalloc.start(); "
    "t({f!r}, {p!r}, {v!r}); print(tracemalloc.get_traced_memory()[1] // 1024)"
)


def memory_check(cache: Path, width: int, height: int) -> list[MemoryPeak]:
    """The tracker's peak memory, each run in its own process, on 1-, 10- and 60-minute footage, each
    rendered at the same pace of shoppers (four a minute). Then the 10-minute scene played six times
    over (`repeated_scene`): a second hour, with the shelf restocked at once at each seam.

    Two figures a footage: the process's peak RSS, and the most the tracker's own allocations (Python
    objects and numpy arrays, traced from after the imports) held at once. The first is what a
    machine sees, but it also holds how the C allocator's heap happens to fragment: the same minute
    of footage peaked anywhere from 75.1 to 77.1 MB over eleven runs in a day. The second leaves the
    heap out: four runs of that minute read 17.6 to 18.0 MB."""
    scenes = []
    for minutes in (1, 10, 60):
        d = ensure_scene(
            cache / "memory",
            "mixed",
            900 + minutes,
            width,
            height,
            duration=60.0 * minutes,
            shoppers=max(2, 4 * minutes),
        )
        scenes.append((f"{minutes} min", d))
    scenes.append(("60 min (10 min x6)", repeated_scene(scenes[1][1], cache / "memory", 6)))
    return [footage_peaks(label, d) for label, d in scenes]


def footage_peaks(label: str, d: Path) -> MemoryPeak:
    """The tracker's two peaks (`memory_check`) on one scene folder, each in a fresh process."""
    d = d.resolve()  # the child runs from the repository's root
    files = {"f": str(d / "footage.mp4"), "p": str(d / "planogram.json"), "v": str(d / "visits.json")}
    kib = []
    for code in (_PEAK_RSS, _PEAK_TRACED):
        proc = subprocess.run(
            [sys.executable, "-c", code.format(**files)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        kib.append(int(proc.stdout.strip().splitlines()[-1]))
    visits = len(json.loads((d / "visits.json").read_text()))
    return MemoryPeak(label, probe_stream(d / "footage.mp4").duration, visits, kib[0], kib[1])


def print_memory(cache: Path, width: int, height: int) -> None:
    """Print `memory_check`'s peaks, to a tenth of a MB, and each hour's against the minute's (the
    hours are the last two lines, after the 10 minutes)."""
    peaks = memory_check(cache, width, height)
    for m in peaks:
        print(
            f"memory: {m.label} footage ({m.seconds:.0f} s, {m.visits} visits): peak RSS "
            f"{m.rss_kib / 1024:.1f} MB, the tracker's own allocations at most {m.traced_kib / 1024:.1f} MB"
        )
    short = peaks[0]
    for long in peaks[2:]:
        print(
            f"memory: {long.label} peaks {(long.rss_kib - short.rss_kib) / 1024:+.1f} MB RSS, "
            f"{(long.traced_kib - short.traced_kib) / 1024:+.2f} MB the tracker's own, against {short.label}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="standard")
    parser.add_argument("--presets", default="easy,mixed,hard", help="comma-separated (default all)")
    parser.add_argument("--cache", type=Path, default=Path("var/bench-scenes"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument(
        "--memory", action="store_true", help="also measure peak memory on 1-, 10- and 60-minute footage"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    parser.add_argument("--memory-only", action="store_true", help="only the memory check")
    parser.add_argument(
        "--only-cached",
        action="store_true",
        help="use only the suite's scenes already rendered in the cache (says how many of the suite's)",
    )
    args = parser.parse_args(argv)
    if args.memory_only:
        print_memory(args.cache, args.width, args.height)
        return 0
    presets = [p for p in args.presets.split(",") if p]
    suite = SUITES[args.suite]
    for p in presets:
        if p not in suite:
            parser.error(f"unknown preset {p!r}")
    # render what is missing first (on every core), then measure on one
    seeds = {p: list(suite[p]) for p in presets}
    for p in presets:
        if args.only_cached:
            seeds[p] = [
                s
                for s in suite[p]
                if (scene_dir(args.cache, p, s, args.width, args.height) / "truth.json").is_file()
            ]
            print(f"{p}: {len(seeds[p])} of the suite's {len(suite[p])} scenes are cached; using those")
            continue
        for seed in suite[p]:
            ensure_scene(args.cache, p, seed, args.width, args.height)
    pinned = "not pinned" if args.no_pin else pin_one_core()
    print(f"suite {args.suite}, {args.width}x{args.height}, threshold {DEFAULT_THRESHOLD}, {pinned}")
    header = (
        f"{'preset':7s} {'carts':>5s} {'exact':>6s} {'prec':>6s} {'recall':>6s} {'flagged':>7s} "
        f"{'auto-wrong':>10s} {'amb-floor':>9s} {'ECE':>5s} {'ECE-0':>5s} {'fps':>5s} {'x-bare':>6s} {'x-cv':>5s} {'peakMB':>6s}"
    )
    print(header)
    for p in presets:
        tally = Tally()
        dirs = [scene_dir(args.cache, p, seed, args.width, args.height) for seed in seeds[p]]
        if not dirs:
            continue
        for d in dirs:
            tally.add(*run_scene(d))
        t_track, t_pipe, t_cv, n = speed(dirs[:SPEED_SCENES])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        prec = tally.tp / max(1, tally.tp + tally.fp)
        rec = tally.tp / max(1, tally.tp + tally.fn)
        print(
            f"{p:7s} {tally.carts:5d} {tally.exact / max(1, tally.carts):6.1%} {prec:6.1%} {rec:6.1%} "
            f"{tally.flagged / max(1, tally.carts):7.1%} "
            f"{tally.auto_wrong / max(1, tally.auto):10.2%} "
            f"{tally.ambiguous_carts / max(1, tally.carts):9.1%} {tally.ece():5.3f} {tally.ece_floor():5.3f} "
            f"{n / max(t_track, 1e-9):5.0f} {t_track / max(t_pipe, 1e-9):6.2f} {t_track / max(t_cv, 1e-9):5.2f} "
            f"{peak:6.0f}",
            flush=True,
        )
        print(
            f"        ({tally.auto} auto-approved, {tally.auto_wrong} of them wrong; ECE-0: what a perfectly "
            f"calibrated model would show on these carts by chance; speed on {n} frames, best of {SPEED_REPEATS} runs: "
            f"tracker {t_track:.1f} s, bare pipe decode {t_pipe:.1f} s ({n / max(t_pipe, 1e-9):.0f} fps), "
            f"OpenCV read {t_cv:.1f} s ({n / max(t_cv, 1e-9):.0f} fps))",
            flush=True,
        )
        if tally.causes:
            why = ", ".join(f"{c} {tally.causes[c]}" for c in CAUSES if tally.causes[c])
            print(
                f"        (the {tally.carts - tally.exact} carts not exactly right show: {why})", flush=True
            )
    if args.memory:
        print_memory(args.cache, args.width, args.height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
