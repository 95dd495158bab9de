"""A store simulator: what a ceiling-mounted shelf camera sees, with the answers.

    python -m tracking.simulator --seed 7 --preset mixed --out var/scenes/mixed-7

writes a scene folder (see tracking.scene): footage.mp4, planogram.json,
visits.json, truth.json, products/<sku>.png, gate/<token>.png and preview.png.

How a scene is made:
1. Lay out the shelf unit: four shelves of slots, each slot a few facings of one
   product; look-alike pairs are two variants of one family, side by side.
2. Plan the shoppers one after another (arrival times keep the number in the store
   within the preset's range). Each walks in, stops in front of slots, reaches in
   and picks, returns (to its own slot or a wrong one) or only touches, and leaves.
   A slot is only changed after the last change already planned for it, so stock
   is consistent at every moment and never below zero.
3. Label each event from the planned geometry: `occluded` when bodies cover at
   least 40% of the facings the hand went to, at some moment of the reach, `ambiguous` when another shopper is
   within reach of the slot at the same time.
4. Render: the shelf is drawn once and redrawn only when a slot changes; each frame
   copies it, draws the shoppers (legs, arms, then back sprite, so the torso hides
   what it stands in front of), applies brightness drift/flicker and sensor noise,
   and streams to the H.264 encoder.

Everything random comes from numpy PCG64 generators seeded from --seed, so the
JSON files are byte-identical for the same seed and parameters.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.scene import (
    Camera,
    Planogram,
    Product,
    Slot,
    Touch,
    Truth,
    TruthEvent,
    VisitInfo,
    planogram_to_dict,
    truth_to_dict,
    visits_to_list,
    write_json,
)
from tracking.sim_people import (
    Appearance,
    body_boxes,
    draw_arm,
    draw_legs,
    gate_image,
    random_appearance,
    render_back_sprite,
    rest_hand,
    shoulder_point,
)
from tracking.sim_products import (
    FAMILIES,
    Family,
    Image,
    ProductDesign,
    design_name,
    design_price,
    reference_image,
    render_design,
)
from tracking.video import H264Writer

Kind = Literal["pick", "return", "touch"]


@dataclass(frozen=True)
class Preset:
    name: str
    concurrent: tuple[int, int]  # shoppers in the store at once
    interactions: tuple[int, int]  # per shopper, touches included
    return_rate: float  # share of interactions that are returns
    wrong_return_rate: float  # share of interactions that are returns to a wrong slot
    occluded_rate: float  # share of interactions where the shopper's own body covers the slot
    lookalike_pairs: int
    noise_sigma: float
    drift: float  # brightness drift amplitude (0.1 = +-10%)
    flicker: bool
    multi_grab_rate: float  # share of picks that take 2 or 3 at once
    touch_rate: float
    crowding: float  # how often a shopper steps in next to another instead of waiting
    bitrate_kbps: int
    default_shoppers: int
    default_duration: float


PRESETS: dict[str, Preset] = {
    "easy": Preset(
        name="easy",
        concurrent=(1, 1),
        interactions=(1, 4),
        return_rate=0.0,
        wrong_return_rate=0.0,
        occluded_rate=0.0,
        lookalike_pairs=0,
        noise_sigma=0.0,
        drift=0.0,
        flicker=False,
        multi_grab_rate=0.0,
        touch_rate=0.0,
        crowding=0.0,
        bitrate_kbps=1500,
        default_shoppers=3,
        default_duration=60.0,
    ),
    "mixed": Preset(
        name="mixed",
        concurrent=(1, 3),
        interactions=(2, 6),
        return_rate=0.15,
        wrong_return_rate=0.05,
        occluded_rate=0.09,
        lookalike_pairs=2,
        noise_sigma=3.0,
        drift=0.10,
        flicker=False,
        multi_grab_rate=0.0,
        touch_rate=0.10,
        crowding=0.05,
        bitrate_kbps=1500,
        default_shoppers=6,
        default_duration=90.0,
    ),
    "hard": Preset(
        name="hard",
        concurrent=(2, 5),
        interactions=(2, 8),
        return_rate=0.30,
        wrong_return_rate=0.15,
        occluded_rate=0.2,
        lookalike_pairs=4,
        noise_sigma=6.0,
        drift=0.12,
        flicker=True,
        multi_grab_rate=0.24,
        touch_rate=0.10,
        crowding=0.08,
        bitrate_kbps=800,
        default_shoppers=8,
        default_duration=90.0,
    ),
}

GATE_W, GATE_H = 160, 320
ROWS = 5  # shelves in the unit
OCCLUDED_COVERAGE = 0.4
REACH_M = 0.55  # from the body's centre line to the slot's nearest edge
CAM_HEIGHT_M, CAM_DIST_M = 3.2, 3.4
STAND_DEPTH = (0.3, 0.42)
NEAR_DEPTH = 0.6  # closer to the shelf than this counts as within reach


class SimulatorError(ValueError):
    pass


# -- geometry ----------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Where a person at `depth` metres from the shelf appears in the frame."""

    width: int
    height: int

    @property
    def floor_y(self) -> float:
        return 0.9 * self.height

    @property
    def px_per_m(self) -> float:
        return 0.43 * self.height

    def scale(self, depth: float) -> float:
        return (self.height / 720) * (CAM_DIST_M - 0.35) / (CAM_DIST_M - depth)

    def head_top(self, depth: float, height_m: float) -> float:
        drop = (CAM_HEIGHT_M - height_m) * CAM_DIST_M / (CAM_DIST_M - depth)
        return self.floor_y - self.px_per_m * (CAM_HEIGHT_M - drop)

    def reach_px(self, depth: float) -> float:
        return REACH_M * self.px_per_m * self.scale(depth) / (self.height / 720)


# -- the plan ----------------------------------------------------------------


@dataclass
class SlotLayout:
    slot_id: str
    design: ProductDesign
    x: int
    y: int
    w: int
    h: int
    facing_w: int
    pitch: int
    capacity: int
    row: int
    start: list[str | None]
    jitter: list[int]

    def position_x(self, i: int) -> float:
        return self.x + i * self.pitch + self.facing_w / 2 + self.jitter[i]


@dataclass(frozen=True)
class Keyframe:
    t: float
    x: float
    depth: float


@dataclass(frozen=True)
class ArmMove:
    t0: float
    t_reach: float
    t_release: float
    t1: float
    side: int
    target: tuple[float, float]
    carry_in: str | None  # sku held while reaching in (a return)
    carry_out: str | None  # sku held while coming back (a pick)
    qty: int


@dataclass
class Interaction:
    token: str
    t_start: float
    t_end: float
    slot_id: str
    kind: Kind
    sku: str
    qty: int
    t_change: float
    region: tuple[int, int, int, int]  # x, y, w, h of the facings the hand went to
    ambiguous: bool = False
    occluded: bool = False


@dataclass
class ShopperPlan:
    token: str
    appearance: Appearance
    keys: list[Keyframe]
    arms: list[ArmMove]
    interactions: list[Interaction]
    entered_at: float
    exited_at: float

    @property
    def appear_t(self) -> float:
        return self.keys[0].t

    @property
    def gone_t(self) -> float:
        return self.keys[-1].t

    def at(self, t: float) -> tuple[float, float, float]:
        """(x, depth, distance walked so far) at time t (clamped to the path)."""
        keys = self.keys
        if t <= keys[0].t:
            return keys[0].x, keys[0].depth, 0.0
        walked = 0.0
        for a, b in zip(keys, keys[1:], strict=False):
            if t <= b.t:
                u = (t - a.t) / (b.t - a.t) if b.t > a.t else 1.0
                return a.x + (b.x - a.x) * u, a.depth + (b.depth - a.depth) * u, walked + abs(b.x - a.x) * u
            walked += abs(b.x - a.x)
        return keys[-1].x, keys[-1].depth, walked


@dataclass
class ScenePlan:
    geometry: Geometry
    layouts: list[SlotLayout]
    designs: dict[str, ProductDesign]
    shoppers: list[ShopperPlan]
    changes: list[tuple[float, str, list[str | None]]]  # (time, slot id, positions after)


@dataclass
class Scene:
    """A planned scene: the files' contents, and (privately) what the renderer needs."""

    seed: int
    preset: Preset
    planogram: Planogram
    visits: list[VisitInfo]
    truth: Truth
    duration: float
    frame_count: int
    plan: ScenePlan = field(repr=False, compare=False)

    @property
    def fps(self) -> int:
        return int(self.planogram.camera.fps)


# -- layout ------------------------------------------------------------------


def _layout_shelf(rng: np.random.Generator, geo: Geometry, pairs: int) -> list[SlotLayout]:
    W, H = geo.width, geo.height
    rows = ROWS
    top, row_h, rail_h = _row_bounds(geo)
    inner_x0, inner_x1 = 0.035 * W + 0.014 * W, 0.965 * W - 0.014 * W
    gap = max(1, round(3 * H / 720))
    row_shapes: list[tuple[str, ...]] = [("box",), ("box",), ("bottle",), ("bottle", "jar"), ("can", "jar")]
    row_height = {"box": (0.95, 0.88), "bottle": (0.95, 0.95), "can": (0.82, 0.82), "jar": (0.75, 0.75)}
    capacity_range = {"box": (4, 6), "bottle": (5, 8), "can": (4, 6), "jar": (4, 6)}

    order = [int(i) for i in rng.permutation(len(FAMILIES))]
    # look-alike pairs spread over the kinds of shelf so that every pair finds room
    groups = [
        [i for i in order if FAMILIES[i].shape == "box"],
        [i for i in order if FAMILIES[i].shape == "bottle"],
        [i for i in order if FAMILIES[i].shape in ("can", "jar")],
    ]
    pair_set: set[int] = set()
    for k in range(pairs):
        group = groups[(0, 1, 2, 0)[k % 4]]
        pair_set.add(group[k // 4 + (1 if k % 4 == 3 else 0)])
    used: set[int] = set()
    layouts: list[SlotLayout] = []
    sku_n = 0
    for r in range(rows):
        y_board = top + (r + 1) * row_h - rail_h
        max_h = row_h - rail_h - 0.025 * H
        fams = [i for i in order if FAMILIES[i].shape in row_shapes[r] and i not in used]
        # rows fill from their own families; pairs first so that the requested number fits
        fams.sort(key=lambda i: 0 if i in pair_set else 1)
        placed: list[tuple[Family, int, int, int, int, int]] = []  # family, variant, h, facing_w, capacity, w
        x = inner_x0
        fi = 0
        while fi < len(fams):
            fam = FAMILIES[fams[fi]]
            variants = [0, 1] if fams[fi] in pair_set else [int(rng.integers(2))]
            if fams[fi] in pair_set and rng.random() < 0.5:
                variants.reverse()
            k = 0 if fam.shape == "box" and r == 0 else 1
            h = round(max_h * row_height[fam.shape][k])
            facing_w = max(4, round(h * fam.aspect))
            pitch = facing_w + gap
            lo, hi = capacity_range[fam.shape]
            caps = [int(rng.integers(lo, hi + 1)) for _ in variants]
            need = sum(c * pitch - gap for c in caps) + gap * 4 * len(variants)
            while need > inner_x1 - x and max(caps) > lo:
                caps = [max(lo, c - 1) for c in caps]
                need = sum(c * pitch - gap for c in caps) + gap * 4 * len(variants)
            if need > inner_x1 - x:
                fi += 1
                continue
            used.add(fams[fi])
            for v, c in zip(variants, caps, strict=True):
                placed.append((fam, v, h, facing_w, c, c * pitch - gap))
                x += c * pitch - gap + gap * 4
            fi += 1
        if not placed:
            continue
        total = sum(p[5] for p in placed)
        spare = (inner_x1 - inner_x0) - total
        between = spare / (len(placed) + 1)
        x = inner_x0 + between
        for fam, v, h, facing_w, cap, w in placed:
            sku_n += 1
            design = ProductDesign(
                sku=f"SKU-{sku_n:03d}",
                name=design_name(fam, v),
                price=design_price(fam, v),
                family=fam,
                variant=v,
            )
            empties = int(rng.choice([0, 0, 0, 0, 1, 1, 2])) if cap > 2 else 0
            start: list[str | None] = [design.sku] * cap
            for i in rng.choice(cap, size=empties, replace=False):
                start[int(i)] = None
            jitter = [int(rng.integers(-1, 2)) for _ in range(cap)]
            layouts.append(
                SlotLayout(
                    slot_id=f"S{sku_n:02d}",
                    design=design,
                    x=int(round(x)),
                    y=int(round(y_board - h)),
                    w=w,
                    h=h,
                    facing_w=facing_w,
                    pitch=facing_w + gap,
                    capacity=cap,
                    row=r,
                    start=start,
                    jitter=jitter,
                )
            )
            x += w + between
    return layouts


# -- planning the shoppers -----------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _token(rng: np.random.Generator) -> str:
    return "pm_" + "".join(_ALNUM[int(i)] for i in rng.integers(0, len(_ALNUM), 24))


class _Planner:
    def __init__(
        self, rng: np.random.Generator, preset: Preset, geo: Geometry, layouts: list[SlotLayout]
    ) -> None:
        self.rng = rng
        self.preset = preset
        self.geo = geo
        self.layouts = layouts
        self.by_id = {s.slot_id: s for s in layouts}
        self.home = {s.design.sku: s for s in layouts}
        self.state: dict[str, list[str | None]] = {s.slot_id: list(s.start) for s in layouts}
        self.last_change: dict[str, float] = {s.slot_id: -1.0 for s in layouts}
        self.changes: list[tuple[float, str, list[str | None]]] = []
        self.shoppers: list[ShopperPlan] = []
        self.used_shirts: set[int] = set()

    def _conflict(self, x: float, slot: SlotLayout, t0: float, t1: float) -> bool:
        """Would standing at x to reach `slot` during [t0, t1] put this shopper next to another?"""
        geo = self.geo
        my_reach = geo.reach_px(STAND_DEPTH[1])
        for other in self.shoppers:
            if other.gone_t < t0 or other.appear_t > t1:
                continue
            for t in np.arange(max(t0, other.appear_t), min(t1, other.gone_t) + 1e-9, 0.25):
                ox, od, _ = other.at(float(t))
                if od > NEAR_DEPTH:
                    continue
                if abs(ox - x) < 0.6 * geo.px_per_m * geo.scale(od) / (geo.height / 720):
                    return True
                if _dist_to_span(ox, slot.x, slot.x + slot.w) <= geo.reach_px(od):
                    return True
            for it in other.interactions:
                if it.t_end >= t0 and it.t_start <= t1:
                    o = self.by_id[it.slot_id]
                    if _dist_to_span(x, o.x, o.x + o.w) <= my_reach:
                        return True
        return False

    def plan_shopper(self, sub_seed: int, t_appear: float, appearance: Appearance, token: str) -> ShopperPlan:
        """Plan one shopper without committing slot changes; `commit` does that."""
        rng = np.random.default_rng(np.random.PCG64(sub_seed))
        geo, p = self.geo, self.preset
        W = geo.width
        state = {k: list(v) for k, v in self.state.items()}
        last_change = dict(self.last_change)
        pending: list[tuple[float, str, list[str | None]]] = []
        speed = float(rng.uniform(1.0, 1.4)) * geo.px_per_m
        walk_depth = float(rng.uniform(0.75, 1.1))
        depth_now = walk_depth
        step = 0.4  # stepping up to the shelf or back from it
        enter_side = -1 if rng.random() < 0.5 else 1
        margin = 200 * geo.scale(walk_depth)
        x = -margin if enter_side < 0 else W + margin
        t = t_appear
        keys = [Keyframe(t, x, walk_depth)]
        arms: list[ArmMove] = []
        inters: list[Interaction] = []
        held: list[str] = []
        n_total = int(rng.integers(p.interactions[0], p.interactions[1] + 1))
        done = 0
        while done < n_total:
            stand_depth = float(rng.uniform(*STAND_DEPTH))
            for _attempt in range(10):
                kind, slot, item = self._choose(rng, state, held, x)
                if slot is None:
                    break
                x_stand, cover = self._stand_x(rng, slot, appearance, stand_depth, x)
                if cover or self._own_cover(slot, appearance, x_stand, stand_depth) < 0.1:
                    break
            if slot is None:
                break
            if depth_now < walk_depth:
                t += step
                keys.append(Keyframe(t, x, walk_depth))
            t_near = t + max(0.3, abs(x_stand - x) / speed)
            keys.append(Keyframe(t_near, x_stand, walk_depth))
            # wait, a little back from the shelf, while someone else is at this spot (unless crowding in)
            t_in = t_near
            tries = 0
            while (
                tries < 8 and self._conflict(x_stand, slot, t_in, t_in + 5.0) and rng.random() >= p.crowding
            ):
                tries += 1
                t_in += 1.5
            if t_in > t_near:
                keys.append(Keyframe(t_in, x_stand, walk_depth))
            t_arrive = t_in + step
            keys.append(Keyframe(t_arrive, x_stand, stand_depth))
            depth_now = stand_depth
            t = t_arrive + float(rng.uniform(0.3, 1.0))
            keys.append(Keyframe(t, x_stand, stand_depth))
            at_stop = 1 if n_total - done == 1 or rng.random() < 0.55 else 2
            for k in range(at_stop):
                if k > 0:
                    kind, slot, item = self._choose(rng, state, held, x_stand, near_only=True)
                    # a second reach from the same spot: only to a slot within reach that the body leaves visible
                    if (
                        slot is None
                        or _dist_to_span(x_stand, slot.x, slot.x + slot.w) > geo.reach_px(stand_depth)
                        or self._own_cover(slot, appearance, x_stand, stand_depth) >= 0.1
                    ):
                        break
                assert slot is not None
                reach = float(rng.uniform(0.3, 0.5))
                hold = float(rng.uniform(0.15, 0.4))
                back = float(rng.uniform(0.3, 0.5))
                t0 = t
                t_reach, t_release, t1 = t0 + reach, t0 + reach + hold, t0 + reach + hold + back
                t_change = t_reach if kind == "return" else t_release
                if kind != "touch" and t_change <= last_change[slot.slot_id] + 0.2:
                    kind = "touch"  # someone else's change to this slot is already planned later
                positions: list[int] = []
                qty = 1
                sku = item or slot.design.sku
                occupied = [i for i, v in enumerate(state[slot.slot_id]) if v is not None]
                empty = [i for i, v in enumerate(state[slot.slot_id]) if v is None]
                if kind == "pick":
                    occupied.sort(key=lambda i: abs(slot.position_x(i) - x_stand))
                    first = occupied[0]
                    sku = state[slot.slot_id][first] or slot.design.sku
                    want = 1
                    if rng.random() < p.multi_grab_rate:
                        want = 2 if rng.random() < 0.7 else 3
                    same = [i for i in occupied if state[slot.slot_id][i] == sku][:want]
                    positions = same
                    qty = len(same)
                    for i in positions:
                        state[slot.slot_id][i] = None
                    held.extend([sku] * qty)
                elif kind == "return":
                    empty.sort(key=lambda i: abs(slot.position_x(i) - x_stand))
                    positions = [empty[0]]
                    assert item is not None
                    state[slot.slot_id][positions[0]] = item
                    held.remove(item)
                else:
                    pool = occupied or list(range(slot.capacity))
                    pool.sort(key=lambda i: abs(slot.position_x(i) - x_stand))
                    positions = [pool[0]]
                    sku = slot.design.sku
                tx = float(np.mean([slot.position_x(i) for i in positions]))
                ty = slot.y + slot.h * float(rng.uniform(0.45, 0.65))
                side = 1 if tx >= x_stand else -1
                if kind != "touch":
                    pending.append((t_change, slot.slot_id, list(state[slot.slot_id])))
                    last_change[slot.slot_id] = t_change
                arms.append(
                    ArmMove(
                        t0,
                        t_reach,
                        t_release,
                        t1,
                        side,
                        (tx, ty),
                        sku if kind == "return" else None,
                        sku if kind == "pick" else None,
                        qty,
                    )
                )
                rx0 = int(min(slot.x + i * slot.pitch for i in positions))
                rx1 = int(max(slot.x + i * slot.pitch + slot.facing_w for i in positions))
                region = (rx0, slot.y, rx1 - rx0, slot.h)
                inters.append(Interaction(token, t0, t1, slot.slot_id, kind, sku, qty, t_change, region))
                done += 1
                t = t1 + float(rng.uniform(0.25, 0.9))
                if done >= n_total:
                    break
            keys.append(Keyframe(t, x_stand, stand_depth))
            x = x_stand
        t += step
        keys.append(Keyframe(t, x, walk_depth))
        exit_side = enter_side if rng.random() < 0.35 else -enter_side
        x_out = -margin if exit_side < 0 else W + margin
        t_leave = t + max(0.8, abs(x_out - x) / speed)
        keys.append(Keyframe(t_leave, x_out, walk_depth))
        entered = t_appear - float(rng.uniform(2.0, 4.0))
        exited = t_leave + float(rng.uniform(1.0, 3.0))
        plan = ShopperPlan(token, appearance, keys, arms, inters, entered, exited)
        plan_changes = pending
        self._pending = plan_changes
        return plan

    def commit(self, plan: ShopperPlan) -> None:
        for t_change, slot_id, after in self._pending:
            self.state[slot_id] = list(after)
            self.last_change[slot_id] = t_change
            self.changes.append((t_change, slot_id, list(after)))
        self.shoppers.append(plan)

    def _choose(
        self,
        rng: np.random.Generator,
        state: dict[str, list[str | None]],
        held: list[str],
        x: float,
        near_only: bool = False,
    ) -> tuple[Kind, SlotLayout | None, str | None]:
        p = self.preset
        W = self.geo.width
        r = rng.random()
        share_wrong = min(1.0, 1.3 * p.wrong_return_rate / p.return_rate) if p.return_rate > 0 else 0.0
        # returns need something in hand; asking more often when holding keeps the overall share near the preset's
        if held and r < min(0.95, p.return_rate * 1.6):
            item = held[int(rng.integers(len(held)))]
            home = self.home[item]
            wrong = rng.random() < share_wrong
            if not wrong and any(v is None for v in state[home.slot_id]):
                return "return", home, item
            cands = [
                s for s in self.layouts if s.design.sku != item and any(v is None for v in state[s.slot_id])
            ]
            if cands:
                return "return", self._nearby(rng, cands, x, 0.15 * W if near_only else 0.3 * W), item
        if rng.random() < p.touch_rate:
            return "touch", self._nearby(rng, self.layouts, x, 0.15 * W if near_only else 0.4 * W), None
        cands = [s for s in self.layouts if any(v is not None for v in state[s.slot_id])]
        if not cands:
            return "touch", None, None
        return "pick", self._nearby(rng, cands, x, 0.15 * W if near_only else 0.45 * W), None

    def _nearby(
        self, rng: np.random.Generator, cands: list[SlotLayout], x: float, spread: float
    ) -> SlotLayout:
        xc = min(max(x, 0.0), float(self.geo.width))
        weights = np.array([math.exp(-abs(s.x + s.w / 2 - xc) / spread) for s in cands])
        weights /= weights.sum()
        return cands[int(rng.choice(len(cands), p=weights))]

    def _own_cover(self, slot: SlotLayout, a: Appearance, x: float, depth: float) -> float:
        """How much of the slot, or of its facing nearest to x, this shopper's own body hides."""
        geo = self.geo
        boxes = body_boxes(a, x, geo.head_top(depth, a.height), geo.scale(depth))
        nearest = min(range(slot.capacity), key=lambda i: abs(slot.position_x(i) - x))
        facing = (slot.x + nearest * slot.pitch, slot.y, slot.facing_w, slot.h)
        return max(_coverage((slot.x, slot.y, slot.w, slot.h), boxes), _coverage(facing, boxes))

    def _stand_x(
        self, rng: np.random.Generator, slot: SlotLayout, a: Appearance, depth: float, x_now: float
    ) -> tuple[float, bool]:
        """Where to stand for `slot`: beside it (it stays visible) or in front of it (True: the body covers it)."""
        geo = self.geo
        W = geo.width
        s = geo.scale(depth)
        head_top = geo.head_top(depth, a.height)
        half_body = (a.shoulder_half + a.hip_half) / 2 * s
        lo, hi = 0.05 * W, 0.95 * W
        slot_cx = slot.x + slot.w / 2
        if slot.y + slot.h < head_top - 4:
            # above the head: nothing of the body covers it wherever they stand
            xs = slot_cx + float(rng.uniform(-0.5, 0.5)) * min(slot.w, geo.reach_px(depth))
            return min(max(xs, lo), hi), False
        if rng.random() < self.preset.occluded_rate:
            return min(max(slot_cx + float(rng.uniform(-0.25, 0.25)) * slot.w, lo), hi), True
        offset = half_body + float(rng.uniform(6, 22)) * s
        left, right = slot.x - offset, slot.x + slot.w + offset
        options = [v for v in (left, right) if lo <= v <= hi]
        if not options:
            return (left if left >= lo else right), False
        if len(options) == 2:
            near_left = abs(left - x_now) < abs(right - x_now)
            return (left if near_left or rng.random() < 0.3 else right), False
        return options[0], False


def _dist_to_span(x: float, a: float, b: float) -> float:
    return 0.0 if a <= x <= b else min(abs(x - a), abs(x - b))


def _coverage(rect: tuple[int, int, int, int], boxes: Sequence[tuple[float, float, float, float]]) -> float:
    x, y, w, h = rect
    f = 4
    mask = np.zeros((max(1, h // f), max(1, w // f)), bool)
    for x0, y0, x1, y1 in boxes:
        a0, a1 = int((max(x0, x) - x) // f), int(math.ceil((min(x1, x + w) - x) / f))
        b0, b1 = int((max(y0, y) - y) // f), int(math.ceil((min(y1, y + h) - y) / f))
        if a1 > a0 and b1 > b0:
            mask[b0:b1, a0:a1] = True
    return float(mask.mean())


def _label(plan: ScenePlan) -> None:
    geo = plan.geometry
    for shopper in plan.shoppers:
        for it in shopper.interactions:
            slot = next(s for s in plan.layouts if s.slot_id == it.slot_id)
            rect = it.region
            occluded = False
            ambiguous = False
            for t in np.arange(it.t_start, it.t_end + 1e-9, 0.1):
                boxes: list[tuple[float, float, float, float]] = []
                for other in plan.shoppers:
                    if not (other.appear_t <= t <= other.gone_t):
                        continue
                    ox, od, _ = other.at(float(t))
                    boxes += body_boxes(
                        other.appearance, ox, geo.head_top(od, other.appearance.height), geo.scale(od)
                    )
                    if (
                        other is not shopper
                        and od <= NEAR_DEPTH
                        and _dist_to_span(ox, slot.x, slot.x + slot.w) <= geo.reach_px(od)
                    ):
                        ambiguous = True
                if _coverage(rect, boxes) >= OCCLUDED_COVERAGE:
                    occluded = True
            it.occluded = occluded
            it.ambiguous = ambiguous


def plan_scene(
    *,
    seed: int,
    preset: str = "mixed",
    shoppers: int | None = None,
    duration: float | None = None,
    width: int = 1280,
    height: int = 720,
    fps: int = 15,
) -> Scene:
    """Lay out the shelf, plan every shopper and the answers; nothing is rendered or written."""
    if preset not in PRESETS:
        raise SimulatorError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    n = p.default_shoppers if shoppers is None else shoppers
    dur = p.default_duration if duration is None else duration
    if n < 1 or n > 500:
        raise SimulatorError(f"shoppers must be between 1 and 500, got {n}")
    if not (1.0 <= dur <= 4 * 3600):
        raise SimulatorError(f"duration must be between 1 and 14400 seconds, got {dur}")
    if width < 160 or height < 90 or width > 3840 or height > 2160 or width % 2 or height % 2:
        raise SimulatorError(f"frame size must be even, between 160x90 and 3840x2160, got {width}x{height}")
    if not (1 <= fps <= 60):
        raise SimulatorError(f"fps must be between 1 and 60, got {fps}")
    if seed < 0:
        raise SimulatorError(f"seed must not be negative, got {seed}")

    rng = np.random.Generator(np.random.PCG64(seed))
    geo = Geometry(width, height)
    layouts = _layout_shelf(rng, geo, p.lookalike_pairs)
    planner = _Planner(rng, p, geo, layouts)

    est_visit = 8.0 + 3.2 * sum(p.interactions) / 2
    first = 3.0
    span = max(0.0, dur - est_visit - first)
    gap = span / max(1, n - 1) if n > 1 else 0.0
    target = first
    visits: list[tuple[float, float]] = []
    for _ in range(n):
        token = _token(rng)
        appearance = random_appearance(rng, planner.used_shirts)
        sub_seed = int(rng.integers(2**62))
        jitter = float(rng.uniform(-0.35, 0.35)) * gap
        t_appear = max(first, target + jitter)
        if p.concurrent[1] == 1 and visits:
            t_appear = max(t_appear, max(v[1] for v in visits) + float(rng.uniform(0.5, 2.0)) + 4.0)
        for _ in range(200):
            plan = planner.plan_shopper(sub_seed, t_appear, appearance, token)
            overlap = [v for v in visits if v[0] < plan.exited_at and plan.entered_at < v[1]]
            if _max_concurrent(overlap, plan.entered_at, plan.exited_at) + 1 <= p.concurrent[1]:
                break
            t_appear = min(v[1] for v in overlap) + 4.5
        planner.commit(plan)
        visits.append((plan.entered_at, plan.exited_at))
        target += gap

    changes = sorted(planner.changes, key=lambda c: (c[0], c[1]))
    designs = {s.design.sku: s.design for s in layouts}
    scene_plan = ScenePlan(geo, layouts, designs, planner.shoppers, changes)
    _label(scene_plan)

    end = max(max(s.exited_at for s in planner.shoppers) + 0.5, dur)
    frame_count = int(math.ceil(end * fps))
    duration_out = frame_count / fps

    products = tuple(
        Product(
            sku=s.design.sku,
            name=s.design.name,
            price=s.design.price,
            currency="USD",
            image=f"products/{s.design.sku}.png",
        )
        for s in layouts
    )
    slots = tuple(
        Slot(
            id=s.slot_id,
            sku=s.design.sku,
            x=s.x,
            y=s.y,
            w=s.w,
            h=s.h,
            facings=sum(v is not None for v in s.start),
        )
        for s in layouts
    )
    planogram = Planogram(Camera("shelf-1", width, height, fps), "USD", products, slots)
    visit_infos = sorted(
        (
            VisitInfo(s.token, round(s.entered_at, 3), round(s.exited_at, 3), f"gate/{s.token}.png")
            for s in planner.shoppers
        ),
        key=lambda v: (v.entered_at, v.token),
    )
    events: list[TruthEvent] = []
    touches: list[Touch] = []
    carts: dict[str, dict[str, int]] = {s.token: {} for s in planner.shoppers}
    for shopper in planner.shoppers:
        for it in shopper.interactions:
            if it.kind == "touch":
                touches.append(Touch(round(it.t_start, 3), round(it.t_end, 3), it.token, it.slot_id))
                continue
            events.append(
                TruthEvent(
                    round(it.t_start, 3),
                    round(it.t_end, 3),
                    it.token,
                    it.slot_id,
                    it.sku,
                    it.kind,
                    it.qty,
                    it.ambiguous,
                    it.occluded,
                )
            )
            cart = carts[it.token]
            cart[it.sku] = cart.get(it.sku, 0) + (it.qty if it.kind == "pick" else -it.qty)
    for token, cart in carts.items():
        carts[token] = {k: v for k, v in sorted(cart.items()) if v != 0}
    events.sort(key=lambda e: (e.t_start, e.token, e.slot))
    touches.sort(key=lambda e: (e.t_start, e.token))
    n_inter = len(events) + len(touches)
    stats = {
        "interactions": n_inter,
        "events": len(events),
        "picks": sum(e.kind == "pick" for e in events),
        "returns": sum(e.kind == "return" for e in events),
        "wrong_returns": sum(e.kind == "return" and planogram.slot(e.slot).sku != e.sku for e in events),
        "multi_item_picks": sum(e.kind == "pick" and e.qty > 1 for e in events),
        "touches": len(touches),
        "occluded": sum(e.occluded for e in events),
        "ambiguous": sum(e.ambiguous for e in events),
        "max_in_store": _max_concurrent(visits, -1e9, 1e9),
    }
    truth = Truth(
        carts=carts,
        events=tuple(events),
        touches=tuple(touches),
        scene={
            "seed": seed,
            "preset": p.name,
            "shoppers": n,
            "duration": round(duration_out, 3),
            "frames": frame_count,
            "width": width,
            "height": height,
            "fps": fps,
            "noise_sigma": p.noise_sigma,
            "bitrate_kbps": p.bitrate_kbps,
            "lookalike_pairs": p.lookalike_pairs,
            "lookalikes": _lookalikes(layouts),
            "stats": stats,
        },
    )
    return Scene(seed, p, planogram, visit_infos, truth, round(duration_out, 3), frame_count, scene_plan)


def _lookalikes(layouts: list[SlotLayout]) -> list[list[str]]:
    by_family: dict[str, list[str]] = {}
    for s in layouts:
        by_family.setdefault(s.design.family.brand, []).append(s.design.sku)
    return sorted(sorted(skus) for skus in by_family.values() if len(skus) == 2)


def _max_concurrent(intervals: Sequence[tuple[float, float]], t0: float, t1: float) -> int:
    points = sorted(
        [(max(a, t0), 1) for a, b in intervals if a < t1 and b > t0]
        + [(min(b, t1), -1) for a, b in intervals if a < t1 and b > t0]
    )
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


# -- rendering -----------------------------------------------------------------

Sprite = tuple[Image, NDArray[np.float32], NDArray[np.float32]]  # BGR, alpha, 1 - alpha


def _sprite(img: Image, alpha: NDArray[np.float32]) -> Sprite:
    return img, alpha, (1.0 - alpha).astype(np.float32)


def _paste(frame: Image, sprite: Sprite, x0: int, y0: int) -> None:
    img, alpha, inv = sprite
    h, w = img.shape[:2]
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x0, fy0 - y0
    sx1, sy1 = sx0 + (fx1 - fx0), sy0 + (fy1 - fy0)
    roi = frame[fy0:fy1, fx0:fx1]
    frame[fy0:fy1, fx0:fx1] = cv2.blendLinear(
        img[sy0:sy1, sx0:sx1],
        roi,
        np.ascontiguousarray(alpha[sy0:sy1, sx0:sx1]),
        np.ascontiguousarray(inv[sy0:sy1, sx0:sx1]),
    )


def _row_bounds(geo: Geometry) -> tuple[float, float, float]:
    top, bottom = 0.04 * geo.height, geo.floor_y - 0.01 * geo.height
    return top, (bottom - top) / ROWS, 0.025 * geo.height


def _render_background(geo: Geometry, layouts: list[SlotLayout], rng: np.random.Generator) -> Image:
    W, H = geo.width, geo.height
    u = H / 720
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (196, 206, 214)
    ux0, ux1 = int(0.035 * W), int(0.965 * W)
    top, row_h, rail_h = _row_bounds(geo)
    floor_y = int(geo.floor_y)
    # back panel of the gondola, pegboard holes
    cv2.rectangle(img, (ux0, int(0.005 * H)), (ux1, floor_y), (178, 183, 187), -1)
    step = max(4, int(round(14 * u)))
    for y in range(int(top) + step // 2, floor_y, step):
        for x in range(ux0 + step, ux1 - step, step):
            cv2.circle(img, (x, y), max(1, int(1.6 * u)), (120, 124, 128), -1, cv2.LINE_AA)
    # header board
    cv2.rectangle(img, (ux0, int(0.005 * H)), (ux1, int(top - 2 * u)), (60, 90, 40), -1)
    header = "PANTRY   *   BREAKFAST   *   DRINKS   *   CANNED GOODS"
    cv2.putText(
        img,
        header,
        (int(ux0 + 0.25 * W), int(top - 8 * u)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * u,
        (220, 235, 240),
        max(1, int(u)),
        cv2.LINE_AA,
    )
    by_row: dict[int, list[SlotLayout]] = {}
    for s in layouts:
        by_row.setdefault(s.row, []).append(s)
    for r in range(ROWS):
        row_top = top + r * row_h
        y_board = int(round(row_top + row_h - rail_h))
        # the shelf above shades the top of each bay
        shadow_h = int(26 * u)
        for k in range(shadow_h):
            f = 0.55 + 0.45 * k / shadow_h
            band = img[int(row_top) + k : int(row_top) + k + 1, ux0:ux1]
            band[:] = (band.astype(np.float32) * f).astype(np.uint8)
        surf = max(2, int(5 * u))
        cv2.rectangle(img, (ux0, y_board), (ux1, y_board + surf), (205, 208, 210), -1)
        cv2.rectangle(img, (ux0, y_board + surf), (ux1, int(y_board + rail_h)), (62, 64, 68), -1)
        cv2.line(img, (ux0, y_board + surf), (ux1, y_board + surf), (140, 142, 146), max(1, int(u)))
        for s in by_row.get(r, []):
            tw = int(min(max(s.w * 0.8, 62 * u), 90 * u))
            tx0, ty0 = s.x, y_board + surf + max(1, int(2 * u))
            ty1 = int(y_board + rail_h - 2 * u)
            yellow = s.design.price % 7 == 0
            cv2.rectangle(
                img, (tx0, ty0), (tx0 + tw, ty1), (120, 235, 250) if yellow else (240, 243, 245), -1
            )
            price = f"${s.design.price // 100}.{s.design.price % 100:02d}"
            fs = 0.38 * u
            cv2.putText(
                img,
                price,
                (tx0 + int(3 * u), ty1 - int(3 * u)),
                cv2.FONT_HERSHEY_DUPLEX,
                fs,
                (30, 30, 30),
                max(1, int(u)),
                cv2.LINE_AA,
            )
            bx = tx0 + int(tw * 0.68)
            for k in range(int(tw * 0.28)):
                if (k * 7 + s.x) % 3:
                    cv2.line(img, (bx + k, ty0 + int(3 * u)), (bx + k, ty1 - int(3 * u)), (40, 40, 40), 1)
    # uprights
    for x0 in (ux0, ux1 - int(0.014 * W)):
        x1 = x0 + int(0.014 * W)
        ramp = np.linspace(0.7, 1.15, x1 - x0, dtype=np.float32)
        img[:floor_y, x0:x1] = np.clip(
            np.array([120, 122, 126], np.float32)[None, None, :] * ramp[None, :, None], 0, 255
        ).astype(np.uint8)
    # kick plate and floor
    cv2.rectangle(img, (ux0, floor_y - int(0.01 * H)), (ux1, floor_y + int(0.03 * H)), (55, 57, 60), -1)
    kick_bottom = floor_y + int(0.03 * H)
    img[kick_bottom:] = (170, 178, 184)
    for k in range(-12, 13):
        xb = W / 2 + k * 0.14 * W
        cv2.line(
            img,
            (int(W / 2 + k * 0.1 * W), kick_bottom),
            (int(xb), H),
            (150, 156, 162),
            max(1, int(u)),
            cv2.LINE_AA,
        )
    for y in (kick_bottom + int(0.03 * H), kick_bottom + int(0.07 * H)):
        cv2.line(img, (0, y), (W, y), (150, 156, 162), max(1, int(u)), cv2.LINE_AA)
    # light from above, a lens that darkens the corners, fixed texture
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    vignette = 1.0 - 0.28 * (((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2) / 2
    light = 1.06 - 0.12 * yy / H
    out = img.astype(np.float32) * (vignette * light)[:, :, None]
    out += rng.normal(0.0, 2.0, (H // 2, W // 2, 1)).repeat(2, 0).repeat(2, 1)[:H, :W].astype(np.float32)
    return np.asarray(np.clip(out, 0, 255), np.uint8)


class _Renderer:
    def __init__(self, scene: Scene) -> None:
        plan = scene.plan
        self.scene = scene
        self.plan = plan
        self.geo = plan.geometry
        W, H = self.geo.width, self.geo.height
        rng = np.random.Generator(np.random.PCG64([scene.seed, 2]))
        self.bg = _render_background(self.geo, plan.layouts, rng)
        self.products: dict[str, Sprite] = {}
        for s in plan.layouts:
            img, alpha = render_design(s.design, s.facing_w, s.h)
            self.products[s.design.sku] = _sprite(img, alpha)
        self.state: dict[str, list[str | None]] = {s.slot_id: list(s.start) for s in plan.layouts}
        self.sharp = self.bg.copy()
        self.shelf = self.bg.copy()
        for r in range(ROWS):
            self._redraw_row(r)
        self.change_i = 0
        self.body_cache: dict[tuple[str, int], tuple[Sprite, int]] = {}
        self.held_cache: dict[tuple[str, int], Sprite] = {}
        # camera: brightness per frame and a bank of noise to take shifted windows from
        p = scene.preset
        n = scene.frame_count
        fps = scene.fps
        t = np.arange(n, dtype=np.float64) / fps
        gain = np.ones(n)
        if p.drift > 0:
            p1, p2 = rng.uniform(25, 45), rng.uniform(7, 13)
            f1, f2 = rng.uniform(0, 2 * np.pi, 2)
            gain += p.drift * (
                0.65 * np.sin(2 * np.pi * t / p1 + f1) + 0.35 * np.sin(2 * np.pi * t / p2 + f2)
            )
        if p.flicker:
            gain *= 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t)
            i = 0
            while i < n:
                if rng.random() < 0.03:
                    length = int(rng.integers(1, 4))
                    gain[i : i + length] *= 1 - rng.uniform(0.08, 0.2)
                    i += length
                i += 1
        self.gain_q = np.round(gain / 0.005).astype(int)
        self.luts: dict[int, NDArray[np.uint8]] = {}
        self.noise: tuple[Image, Image] | None = None
        self.pad = 32
        if p.noise_sigma > 0:
            nz = rng.normal(0.0, p.noise_sigma, (H + self.pad, W + self.pad, 3)).astype(np.float32)
            self.noise = (np.clip(nz, 0, 255).astype(np.uint8), np.clip(-nz, 0, 255).astype(np.uint8))
        self.offsets = rng.integers(0, self.pad, (n, 2))

    def _redraw_row(self, r: int) -> None:
        top, row_h, rail_h = _row_bounds(self.geo)
        y0, y1 = int(top + r * row_h), int(round(top + (r + 1) * row_h - rail_h))
        self.sharp[y0:y1] = self.bg[y0:y1]
        u = self.geo.height / 720
        for s in self.plan.layouts:
            if s.row != r:
                continue
            for i, sku in enumerate(self.state[s.slot_id]):
                if sku is None:
                    continue
                spr = self.products[sku]
                h, w = spr[0].shape[:2]
                x0 = int(round(s.position_x(i) - w / 2))
                yb = s.y + s.h
                # a soft contact shadow on the back panel
                sh = self.sharp[max(y0, yb - h + int(4 * u)) : yb, x0 + int(3 * u) : x0 + w + int(4 * u)]
                sh[:] = (sh.astype(np.float32) * 0.72).astype(np.uint8)
                sub = self.sharp[y0:y1]
                _paste(sub, spr, x0, yb - h - y0)
        m = int(4 * u) + 2
        a0, a1 = max(0, y0 - m), min(self.geo.height, y1 + m)
        self.shelf[a0:a1] = cv2.GaussianBlur(self.sharp[a0:a1], (3, 3), 0.75)

    def _body(self, shopper: ShopperPlan, s: float) -> tuple[Sprite, int]:
        key = (shopper.token, int(round(s * 40)))
        if key not in self.body_cache:
            img, alpha, cx = render_back_sprite(shopper.appearance, key[1] / 40)
            self.body_cache[key] = (_sprite(img, alpha), cx)
        return self.body_cache[key]

    def _held(self, sku: str, qty: int) -> Sprite:
        key = (sku, qty)
        if key not in self.held_cache:
            img, alpha, _ = self.products[sku]
            if qty > 1:
                h, w = img.shape[:2]
                off = max(2, w // 3)
                big = np.zeros((h, w + off * (qty - 1), 3), np.uint8)
                ba = np.zeros((h, w + off * (qty - 1)), np.float32)
                for k in range(qty):
                    x = off * (qty - 1 - k)
                    a3 = alpha[:, :, None]
                    big[:, x : x + w] = (img * a3 + big[:, x : x + w] * (1 - a3)).astype(np.uint8)
                    ba[:, x : x + w] = np.maximum(ba[:, x : x + w], alpha)
                img, alpha = big, ba
            self.held_cache[key] = _sprite(img, alpha)
        return self.held_cache[key]

    def _draw_shopper(self, frame: Image, shopper: ShopperPlan, t: float) -> None:
        geo = self.geo
        a = shopper.appearance
        x, d, walked = shopper.at(t)
        x_next, _, _ = shopper.at(t + 0.05)
        walking = abs(x_next - x) > 0.5
        s = geo.scale(d)
        phase = walked / (0.35 * geo.px_per_m) * math.pi
        top = geo.head_top(d, a.height) - (abs(math.sin(phase)) * 4 * s if walking else 0.0)
        draw_legs(frame, a, x, top, s, phase if walking else 0.0)
        move = next((m for m in shopper.arms if m.t0 <= t <= m.t1), None)
        for side in (-1, 1):
            sh = shoulder_point(a, x, top, s, side)
            swing = math.sin(phase + (0.0 if side < 0 else math.pi)) * 22 if walking else 0.0
            rest = rest_hand(a, x, top, s, side, swing)
            hand = rest
            carried: tuple[str, int] | None = None
            if move is not None and move.side == side:
                tx, ty = move.target
                if t < move.t_reach:
                    u = _ease((t - move.t0) / (move.t_reach - move.t0))
                    hand = (rest[0] + (tx - rest[0]) * u, rest[1] + (ty - rest[1]) * u)
                    if move.carry_in:
                        carried = (move.carry_in, 1)
                elif t < move.t_release:
                    wobble = math.sin((t - move.t_reach) * 20) * 2 * s
                    hand = (tx + wobble, ty)
                    if move.carry_in and t < move.t_reach + 0.05:
                        carried = (move.carry_in, 1)
                else:
                    u = _ease((t - move.t_release) / (move.t1 - move.t_release))
                    hand = (tx + (rest[0] - tx) * u, ty + (rest[1] - ty) * u)
                    if move.carry_out:
                        carried = (move.carry_out, move.qty)
            draw_arm(frame, a, sh, hand, s, side)
            if carried is not None:
                spr = self._held(*carried)
                h, w = spr[0].shape[:2]
                _paste(frame, spr, int(hand[0] - w / 2), int(hand[1] - h * 0.6))
                cv2.circle(frame, (int(hand[0]), int(hand[1])), max(2, int(10 * s)), a.skin, -1, cv2.LINE_AA)
        body, cx = self._body(shopper, s)
        _paste(frame, body, int(round(x - cx)), int(round(top)))

    def frame(self, i: int) -> Image:
        t = i / self.scene.fps
        changes = self.plan.changes
        dirty: set[int] = set()
        while self.change_i < len(changes) and changes[self.change_i][0] <= t:
            _, slot_id, after = changes[self.change_i]
            self.state[slot_id] = list(after)
            dirty.add(next(s.row for s in self.plan.layouts if s.slot_id == slot_id))
            self.change_i += 1
        for r in sorted(dirty):
            self._redraw_row(r)
        frame = self.shelf.copy()
        visible = [s for s in self.plan.shoppers if s.appear_t <= t <= s.gone_t]
        visible.sort(key=lambda s: (s.at(t)[1], s.token))
        for shopper in visible:
            self._draw_shopper(frame, shopper, t)
        q = int(self.gain_q[i])
        if q != 200:
            if q not in self.luts:
                self.luts[q] = np.clip(np.arange(256) * (q * 0.005), 0, 255).astype(np.uint8)
            cv2.LUT(frame, self.luts[q], dst=frame)
        if self.noise is not None:
            H, W = frame.shape[:2]
            dy, dx = int(self.offsets[i, 0]), int(self.offsets[i, 1])
            cv2.add(frame, self.noise[0][dy : dy + H, dx : dx + W], dst=frame)
            cv2.subtract(frame, self.noise[1][dy : dy + H, dx : dx + W], dst=frame)
        return frame


def _ease(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def _preview(frames: list[tuple[float, Image]], planogram: Planogram) -> Image:
    """A 3-wide grid of half-size frames with the slots outlined and named, for a person to look at."""
    tiles = []
    u = planogram.camera.height / 720
    for t, fr in frames:
        tile = fr.copy()
        for s in planogram.slots:
            cv2.rectangle(
                tile, (s.x, s.y), (s.x + s.w - 1, s.y + s.h - 1), (0, 255, 255), max(1, round(2 * u))
            )
            cv2.putText(
                tile,
                s.id,
                (s.x + 2, s.y + int(18 * u)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * u,
                (0, 255, 255),
                max(1, round(2 * u)),
                cv2.LINE_AA,
            )
        cv2.putText(
            tile,
            f"t={t:.1f}s",
            (int(10 * u), tile.shape[0] - int(14 * u)),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.1 * u,
            (255, 255, 255),
            max(1, round(3 * u)),
            cv2.LINE_AA,
        )
        h, w = tile.shape[:2]
        tiles.append(cv2.resize(tile, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    if not tiles:
        return np.zeros((planogram.camera.height // 2, planogram.camera.width // 2, 3), np.uint8)
    while len(tiles) % 3:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)])


def write_scene(
    scene: Scene,
    out_dir: str | Path,
    *,
    video: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the scene folder: JSON files, product and gate images, and (with `video`) footage and preview."""
    out = Path(out_dir)
    (out / "products").mkdir(parents=True, exist_ok=True)
    (out / "gate").mkdir(parents=True, exist_ok=True)
    write_json(out / "planogram.json", planogram_to_dict(scene.planogram))
    write_json(out / "visits.json", visits_to_list(scene.visits))
    write_json(out / "truth.json", truth_to_dict(scene.truth))
    for design in scene.plan.designs.values():
        cv2.imwrite(str(out / "products" / f"{design.sku}.png"), reference_image(design))
    for i, shopper in enumerate(scene.plan.shoppers):
        rng = np.random.Generator(np.random.PCG64([scene.seed, 3, i]))
        cv2.imwrite(
            str(out / "gate" / f"{shopper.token}.png"), gate_image(shopper.appearance, rng, GATE_W, GATE_H)
        )
    if video:
        render_footage(scene, out / "footage.mp4", preview=out / "preview.png", progress=progress)
    return out


def render_footage(
    scene: Scene,
    path: str | Path,
    *,
    preview: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    renderer = _Renderer(scene)
    cam = scene.planogram.camera
    n = scene.frame_count
    picks = {min(n - 1, int((k + 0.5) * n / 6)) for k in range(6)}
    grabbed: list[tuple[float, Image]] = []
    with H264Writer(
        path, width=cam.width, height=cam.height, fps=cam.fps, bitrate_kbps=scene.preset.bitrate_kbps
    ) as writer:
        for i in range(n):
            frame = renderer.frame(i)
            writer.write(frame)
            if i in picks:
                grabbed.append((i / cam.fps, frame.copy()))
            if progress is not None and (i % 50 == 0 or i == n - 1):
                progress(i + 1, n)
    if preview is not None:
        cv2.imwrite(str(preview), _preview(grabbed, scene.planogram))


def simulate(
    out_dir: str | Path,
    *,
    seed: int,
    preset: str = "mixed",
    shoppers: int | None = None,
    duration: float | None = None,
    width: int = 1280,
    height: int = 720,
    fps: int = 15,
    video: bool = True,
) -> Scene:
    """Plan a scene and write its folder; returns the same description `plan_scene` gives."""
    scene = plan_scene(
        seed=seed, preset=preset, shoppers=shoppers, duration=duration, width=width, height=height, fps=fps
    )
    write_scene(scene, out_dir, video=video)
    return scene


# -- command line ----------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    lines = [
        f"  {p.name:6s} {p.default_shoppers} shoppers, {p.default_duration:g} s" for p in PRESETS.values()
    ]
    parser = argparse.ArgumentParser(
        prog="python -m tracking.simulator",
        description="Render simulated shelf-camera footage of a small store, with the answers (truth.json).",
        epilog="preset defaults:\n" + "\n".join(lines) + "\n\nThe footage is made longer than --duration "
        "when the last shopper needs more time to leave.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="random seed; the same seed and options give the same scene (default 0)",
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="mixed", help="difficulty (default mixed)"
    )
    parser.add_argument(
        "--shoppers", type=_positive_int, default=None, help="number of shoppers (default: per preset)"
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        help="footage length in seconds, at least (default: per preset)",
    )
    parser.add_argument("--out", required=True, type=Path, help="scene folder to write")
    parser.add_argument(
        "--width", type=_positive_int, default=1280, help="frame width in pixels, even (default 1280)"
    )
    parser.add_argument(
        "--height", type=_positive_int, default=720, help="frame height in pixels, even (default 720)"
    )
    parser.add_argument("--fps", type=_positive_int, default=15, help="frames per second, 1-60 (default 15)")
    parser.add_argument(
        "--no-video", action="store_true", help="write the JSON files and images only, no footage or preview"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if it is not empty (its files are replaced)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        parser.error(f"--out {out} is not empty; pass --force to overwrite it")
    try:
        scene = plan_scene(
            seed=args.seed,
            preset=args.preset,
            shoppers=args.shoppers,
            duration=args.duration,
            width=args.width,
            height=args.height,
            fps=args.fps,
        )
    except SimulatorError as exc:
        parser.error(str(exc))
    if args.force and out.is_dir():
        for name in ("products", "gate"):
            shutil.rmtree(out / name, ignore_errors=True)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.quiet and sys.stderr.isatty():
            print(f"\rframe {done}/{total}", end="", file=sys.stderr, flush=True)

    write_scene(scene, out, video=not args.no_video, progress=progress)
    if not args.quiet:
        took = time.perf_counter() - started
        stats = scene.truth.scene["stats"]
        print(file=sys.stderr)
        print(
            f"{out}: {args.preset}, {len(scene.visits)} shoppers, {scene.duration:.1f} s "
            f"({scene.frame_count} frames) in {took:.1f} s; {stats['events']} events "
            f"({stats['returns']} returns, {stats['occluded']} occluded, {stats['ambiguous']} ambiguous), "
            f"{stats['touches']} touches"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
