"""How simulated shoppers look: from behind and above at the shelf, from the front at the gate.

Lengths are in "units": one unit is one pixel for a shopper standing at the shelf
in a 720-line frame; `scale` converts. The shelf camera sees the back of the
head, the shoulders and back (with the bag, if any) and the arms; the gate camera
sees the face, the front of the clothes and the bag's strap, under other light.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.sim_products import Color, Image, shade

SKIN: tuple[Color, ...] = (
    (150, 185, 225),
    (120, 160, 210),
    (95, 135, 185),
    (70, 100, 150),
    (50, 75, 115),
    (165, 200, 235),
)
HAIR: tuple[Color, ...] = (
    (25, 25, 30),
    (30, 45, 70),
    (40, 70, 110),
    (80, 140, 190),
    (150, 150, 155),
    (20, 30, 40),
    (60, 50, 120),
)
CLOTHES: tuple[Color, ...] = (
    (40, 40, 180),  # red
    (160, 90, 30),  # blue
    (60, 140, 50),  # green
    (30, 170, 230),  # yellow
    (130, 50, 110),  # purple
    (200, 200, 200),  # light grey
    (40, 40, 40),  # black
    (30, 100, 200),  # orange
    (150, 150, 40),  # teal
    (90, 60, 140),  # maroon
    (220, 180, 150),  # light blue
    (60, 90, 80),  # olive
    (180, 130, 200),  # pink
    (235, 235, 240),  # white
)
TROUSERS: tuple[Color, ...] = (
    (90, 60, 40),
    (40, 40, 45),
    (110, 110, 115),
    (70, 100, 130),
    (150, 80, 30),
    (60, 80, 70),
)
PATTERNS = ("plain", "plain", "stripes", "check", "yoke", "logo")
HAIR_STYLES = ("short", "short", "long", "bun", "cap", "bald")
BAGS = ("none", "none", "backpack", "shoulder")

HEAD_RX, HEAD_RY = 24, 30
SHOULDER_Y = 82
HIP_Y = 300
LEG_END_Y = 600
SPRITE_H = 330


@dataclass(frozen=True)
class Appearance:
    skin: Color
    hair: Color
    hair_style: str
    shirt: Color
    shirt2: Color
    pattern: str
    long_sleeves: bool
    trousers: Color
    bag: str
    bag_color: Color
    build: float  # shoulder width factor
    height: float  # metres, to the top of the head

    @property
    def shoulder_half(self) -> float:
        return 70.0 * self.build

    @property
    def hip_half(self) -> float:
        return 56.0 * self.build


def random_appearance(rng: np.random.Generator, used_shirts: set[int]) -> Appearance:
    free = [i for i in range(len(CLOTHES)) if i not in used_shirts] or list(range(len(CLOTHES)))
    shirt_i = int(free[int(rng.integers(len(free)))])
    used_shirts.add(shirt_i)
    shirt = CLOTHES[shirt_i]
    second = CLOTHES[int(rng.integers(len(CLOTHES)))]
    if second == shirt:
        second = shade(shirt, 0.55)
    return Appearance(
        skin=SKIN[int(rng.integers(len(SKIN)))],
        hair=HAIR[int(rng.integers(len(HAIR)))],
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        shirt=shirt,
        shirt2=second,
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        long_sleeves=bool(rng.random() < 0.5),
        trousers=TROUSERS[int(rng.integers(len(TROUSERS)))],
        bag=BAGS[int(rng.integers(len(BAGS)))],
        bag_color=CLOTHES[int(rng.integers(len(CLOTHES)))],
        build=float(rng.uniform(0.9, 1.15)),
        height=float(rng.uniform(1.58, 1.9)),
    )


def _torso_poly(a: Appearance, cx: float, top: float, s: float) -> NDArray[np.int32]:
    sw, hw = a.shoulder_half, a.hip_half
    pts = [
        (-sw + 14, SHOULDER_Y - 8),
        (-sw, SHOULDER_Y + 12),
        (-sw + 4, SHOULDER_Y + 60),
        (-hw, HIP_Y),
        (hw, HIP_Y),
        (sw - 4, SHOULDER_Y + 60),
        (sw, SHOULDER_Y + 12),
        (sw - 14, SHOULDER_Y - 8),
        (16, SHOULDER_Y - 16),
        (-16, SHOULDER_Y - 16),
    ]
    return np.array([[cx + x * s, top + y * s] for x, y in pts], np.float64).round().astype(np.int32)


def render_back_sprite(a: Appearance, scale: float) -> tuple[Image, NDArray[np.float32], int]:
    """The head and torso seen from behind: BGR, alpha, and the x of the body's centre in the sprite."""
    ss = 2  # drawn at 2x and shrunk for smooth edges
    s = scale * ss
    half_w = int((a.shoulder_half + 40) * s)
    W, H = 2 * half_w, int(SPRITE_H * s)
    img: Image = np.zeros((H, W, 3), np.uint8)
    mask: Image = np.zeros((H, W), np.uint8)
    cx = float(half_w)

    def both(draw: object) -> None:
        for target, colour in ((img, None), (mask, 255)):
            draw(target, colour)  # type: ignore[operator]

    torso = _torso_poly(a, cx, 0, s)
    cv2.fillPoly(img, [torso], a.shirt, cv2.LINE_AA)
    cv2.fillPoly(mask, [torso], 255, cv2.LINE_AA)
    body_mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(body_mask, [torso], 255)
    pattern = img.copy()
    if a.pattern == "stripes":
        step = max(4, int(22 * s))
        for y in range(int(SHOULDER_Y * s), H, step):
            cv2.rectangle(pattern, (0, y), (W, y + step // 2), a.shirt2, -1)
    elif a.pattern == "check":
        step = max(6, int(28 * s))
        for k in range(0, W + H, step):
            cv2.line(pattern, (k, 0), (k, H), a.shirt2, max(2, int(5 * s)))
            cv2.line(pattern, (0, k), (W, k), a.shirt2, max(2, int(5 * s)))
    elif a.pattern == "yoke":
        cv2.rectangle(pattern, (0, 0), (W, int((SHOULDER_Y + 45) * s)), a.shirt2, -1)
    elif a.pattern == "logo":
        cv2.circle(pattern, (int(cx), int((SHOULDER_Y + 90) * s)), int(32 * s), a.shirt2, -1)
        cv2.circle(pattern, (int(cx), int((SHOULDER_Y + 90) * s)), int(18 * s), a.shirt, -1)
    np.copyto(img, pattern, where=body_mask[:, :, None] > 0)
    # folds and the shading of a rounded back
    ramp = 1.0 - 0.28 * np.abs(np.linspace(-1, 1, W, dtype=np.float32)) ** 2
    img = (img.astype(np.float32) * ramp[None, :, None]).astype(np.uint8)
    cv2.line(
        img,
        (int(cx), int((SHOULDER_Y + 20) * s)),
        (int(cx), int((HIP_Y - 10) * s)),
        shade(a.shirt, 0.8),
        max(1, int(3 * s)),
        cv2.LINE_AA,
    )
    cv2.rectangle(
        img,
        (int(cx - a.hip_half * s), int((HIP_Y - 14) * s)),
        (int(cx + a.hip_half * s), int(HIP_Y * s)),
        shade(a.shirt, 0.75),
        -1,
    )

    if a.bag == "backpack":
        bw, bh = int(50 * a.build * s), int(120 * s)
        y0 = int((SHOULDER_Y + 28) * s)
        for target, colour in ((img, a.bag_color), (mask, 255)):
            cv2.rectangle(target, (int(cx) - bw, y0), (int(cx) + bw, y0 + bh), colour, -1, cv2.LINE_AA)
        cv2.rectangle(
            img,
            (int(cx) - bw + int(10 * s), y0 + bh // 2),
            (int(cx) + bw - int(10 * s), y0 + bh - int(10 * s)),
            shade(a.bag_color, 0.75),
            -1,
        )
        cv2.line(
            img,
            (int(cx) - bw, y0 + bh // 2),
            (int(cx) + bw, y0 + bh // 2),
            shade(a.bag_color, 0.5),
            max(1, int(2 * s)),
        )
        for side in (-1, 1):
            x = int(cx + side * 30 * a.build * s)
            cv2.line(
                img,
                (x, int((SHOULDER_Y - 10) * s)),
                (x, y0),
                shade(a.bag_color, 0.6),
                max(2, int(9 * s)),
                cv2.LINE_AA,
            )
    elif a.bag == "shoulder":
        cv2.line(
            img,
            (int(cx - 40 * s), int((SHOULDER_Y - 10) * s)),
            (int(cx + 45 * s), int((HIP_Y - 40) * s)),
            shade(a.bag_color, 0.6),
            max(2, int(8 * s)),
            cv2.LINE_AA,
        )
        bx0, by0 = int(cx + 30 * s), int((HIP_Y - 70) * s)
        bx1, by1 = min(W - 1, int(cx + (a.hip_half + 34) * s)), int((HIP_Y + 10) * s)
        for target, colour in ((img, a.bag_color), (mask, 255)):
            cv2.rectangle(target, (bx0, by0), (bx1, by1), colour, -1)

    # head from behind: skin of the neck and ears, hair over most of it
    hc = (int(cx), int(HEAD_RY * s))
    axes = (int(HEAD_RX * s), int(HEAD_RY * s))
    cv2.rectangle(
        img,
        (int(cx - 12 * s), int(HEAD_RY * s)),
        (int(cx + 12 * s), int((SHOULDER_Y - 6) * s)),
        shade(a.skin, 0.85),
        -1,
    )
    cv2.rectangle(
        mask, (int(cx - 12 * s), int(HEAD_RY * s)), (int(cx + 12 * s), int((SHOULDER_Y - 6) * s)), 255, -1
    )
    cv2.ellipse(img, hc, axes, 0, 0, 360, a.skin, -1, cv2.LINE_AA)
    cv2.ellipse(mask, hc, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
    for side in (-1, 1):
        cv2.ellipse(
            img,
            (int(cx + side * (HEAD_RX - 1) * s), int(HEAD_RY * 1.05 * s)),
            (int(5 * s), int(9 * s)),
            0,
            0,
            360,
            shade(a.skin, 0.9),
            -1,
            cv2.LINE_AA,
        )
    if a.hair_style == "bald":
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] * 0.95)),
            (int(axes[0] * 0.95), int(axes[1] * 0.85)),
            0,
            0,
            360,
            shade(a.skin, 0.92),
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] * 1.25)),
            (int(axes[0] * 0.95), int(axes[1] * 0.6)),
            0,
            20,
            160,
            shade(a.hair, 1.4),
            max(2, int(6 * s)),
            cv2.LINE_AA,
        )
    else:
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] * 0.94)),
            (int(axes[0] * 1.04), int(axes[1] * 0.98)),
            0,
            0,
            360,
            a.hair,
            -1,
            cv2.LINE_AA,
        )
        if a.hair_style == "long":
            pts = np.array(
                [
                    [cx - 25 * s, 28 * s],
                    [cx + 25 * s, 28 * s],
                    [cx + 22 * s, 125 * s],
                    [cx - 22 * s, 125 * s],
                ],
                np.int32,
            )
            cv2.fillConvexPoly(img, pts, a.hair, cv2.LINE_AA)
            cv2.fillConvexPoly(mask, pts, 255, cv2.LINE_AA)
        elif a.hair_style == "bun":
            cv2.circle(img, (hc[0], int(8 * s)), int(12 * s), shade(a.hair, 0.85), -1, cv2.LINE_AA)
            cv2.circle(mask, (hc[0], int(8 * s)), int(12 * s), 255, -1, cv2.LINE_AA)
        elif a.hair_style == "cap":
            cv2.ellipse(
                img,
                (hc[0], int(hc[1] * 0.85)),
                (int(axes[0] * 1.08), int(axes[1] * 0.85)),
                0,
                180,
                360,
                a.shirt2,
                -1,
                cv2.LINE_AA,
            )
            cv2.rectangle(
                img,
                (int(cx - 10 * s), int(hc[1] * 0.85)),
                (int(cx + 10 * s), int(hc[1] * 0.85 + 6 * s)),
                shade(a.shirt2, 0.6),
                -1,
            )
        # a few strands so the hair is not a flat disc
        for k in range(-2, 3):
            x = int(cx + k * 7 * s)
            cv2.line(
                img,
                (x, int(6 * s)),
                (int(x + k * 2 * s), int(46 * s)),
                shade(a.hair, 1.35),
                max(1, int(1.5 * s)),
                cv2.LINE_AA,
            )
    small = np.asarray(cv2.resize(img, (W // ss, H // ss), interpolation=cv2.INTER_AREA), np.uint8)
    alpha = np.asarray(cv2.resize(mask, (W // ss, H // ss), interpolation=cv2.INTER_AREA), np.float32)
    return small, alpha / np.float32(255.0), half_w // ss


def draw_legs(frame: Image, a: Appearance, cx: float, top: float, s: float, phase: float) -> None:
    """Trousers from the hips down; `phase` swings them when walking (0 when standing)."""
    for side in (-1, 1):
        swing = side * np.sin(phase) * 26 * s
        x_hip = cx + side * 26 * a.build * s
        x_foot = x_hip + swing + side * 6 * s
        w_top, w_bot = 27 * a.build * s, 19 * s
        pts = np.array(
            [
                [x_hip - w_top, top + (HIP_Y - 20) * s],
                [x_hip + w_top, top + (HIP_Y - 20) * s],
                [x_foot + w_bot, top + LEG_END_Y * s],
                [x_foot - w_bot, top + LEG_END_Y * s],
            ]
        )
        cv2.fillConvexPoly(
            frame, pts.round().astype(np.int32), shade(a.trousers, 0.9 + 0.1 * side), cv2.LINE_AA
        )


def shoulder_point(a: Appearance, cx: float, top: float, s: float, side: int) -> tuple[float, float]:
    return (cx + side * (a.shoulder_half - 10) * s, top + (SHOULDER_Y + 10) * s)


def rest_hand(a: Appearance, cx: float, top: float, s: float, side: int, swing: float) -> tuple[float, float]:
    return (
        cx + side * (a.shoulder_half + 2) * s + swing * 0.3 * s,
        top + (HIP_Y - 10) * s - abs(swing) * 0.15 * s,
    )


def draw_arm(
    frame: Image, a: Appearance, shoulder: tuple[float, float], hand: tuple[float, float], s: float, side: int
) -> None:
    sx, sy = shoulder
    hx, hy = hand
    dx, dy = hx - sx, hy - sy
    length = max(1.0, float(np.hypot(dx, dy)))
    # the elbow bends outwards less the further the arm stretches
    bend = max(0.0, 160 * s - length) * 0.35
    ex = sx + dx * 0.5 + side * bend * abs(dy) / length
    ey = sy + dy * 0.5 - side * bend * dx / length * 0.3
    sleeve = a.shirt if a.long_sleeves else a.skin
    cv2.line(
        frame, (int(sx), int(sy)), (int(ex), int(ey)), shade(a.shirt, 0.85), max(2, int(24 * s)), cv2.LINE_AA
    )
    cv2.line(
        frame, (int(ex), int(ey)), (int(hx), int(hy)), shade(sleeve, 0.95), max(2, int(18 * s)), cv2.LINE_AA
    )
    cv2.circle(frame, (int(hx), int(hy)), max(2, int(11 * s)), a.skin, -1, cv2.LINE_AA)


def body_boxes(a: Appearance, cx: float, top: float, s: float) -> list[tuple[float, float, float, float]]:
    """Rectangles (x0, y0, x1, y1) that the head, torso and legs cover: used to measure occlusion."""
    sw, hw = a.shoulder_half, a.hip_half
    return [
        (cx - HEAD_RX * s, top, cx + HEAD_RX * s, top + (SHOULDER_Y - 6) * s),
        (cx - (sw + hw) / 2 * s, top + (SHOULDER_Y - 8) * s, cx + (sw + hw) / 2 * s, top + HIP_Y * s),
        (cx - (hw + 8) * s, top + HIP_Y * s, cx + (hw + 8) * s, top + LEG_END_Y * s),
    ]


def gate_image(a: Appearance, rng: np.random.Generator, width: int = 160, height: int = 320) -> Image:
    """The shopper from the front at the entry gate: other light, other angle, a little off-centre."""
    ss = 2
    W, H = width * ss, height * ss
    img: Image = np.zeros((H, W, 3), np.uint8)
    wall = np.array([200, 205, 210], np.float32) * float(rng.uniform(0.8, 1.05))
    grad = np.linspace(1.05, 0.8, H, dtype=np.float32)[:, None, None]
    img[:] = np.clip(wall[None, None, :] * grad, 0, 255).astype(np.uint8)
    floor_y = int(H * 0.86)
    img[floor_y:] = (120, 125, 130)
    cv2.rectangle(
        img, (int(W * 0.02), int(H * 0.05)), (int(W * 0.12), floor_y), (150, 150, 150), -1
    )  # door frame
    s = (floor_y - 0.04 * H) / 600 * float(rng.uniform(0.86, 0.97)) * (a.height / 1.9)
    cx = W / 2 + float(rng.uniform(-0.08, 0.08)) * W
    top = floor_y - 600 * s
    sw, hw = a.shoulder_half, a.hip_half
    # legs and shoes
    for side in (-1, 1):
        x = cx + side * 24 * a.build * s
        cv2.rectangle(
            img, (int(x - 22 * s), int(top + 290 * s)), (int(x + 22 * s), int(top + 585 * s)), a.trousers, -1
        )
        cv2.ellipse(
            img,
            (int(x + side * 6 * s), int(top + 590 * s)),
            (int(26 * s), int(11 * s)),
            0,
            0,
            360,
            (35, 35, 35),
            -1,
        )
    # arms at the sides
    for side in (-1, 1):
        sx = cx + side * (sw - 6) * s
        arm_colour = a.shirt if a.long_sleeves else a.skin
        cv2.line(
            img,
            (int(sx), int(top + 95 * s)),
            (int(sx + side * 10 * s), int(top + 200 * s)),
            shade(a.shirt, 0.9),
            int(24 * s),
            cv2.LINE_AA,
        )
        cv2.line(
            img,
            (int(sx + side * 10 * s), int(top + 200 * s)),
            (int(sx + side * 12 * s), int(top + 290 * s)),
            arm_colour,
            int(19 * s),
            cv2.LINE_AA,
        )
        cv2.circle(img, (int(sx + side * 12 * s), int(top + 300 * s)), int(11 * s), a.skin, -1, cv2.LINE_AA)
    torso = _torso_poly(a, cx, top, s)
    cv2.fillPoly(img, [torso], a.shirt, cv2.LINE_AA)
    body = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(body, [torso], 255)
    pattern = img.copy()
    if a.pattern == "stripes":
        step = max(4, int(22 * s))
        for y in range(int(top + SHOULDER_Y * s), H, step):
            cv2.rectangle(pattern, (0, y), (W, y + step // 2), a.shirt2, -1)
    elif a.pattern == "check":
        step = max(6, int(28 * s))
        for k in range(0, W + H, step):
            cv2.line(pattern, (k, 0), (k, H), a.shirt2, max(2, int(5 * s)))
            cv2.line(pattern, (0, k), (W, k), a.shirt2, max(2, int(5 * s)))
    elif a.pattern == "yoke":
        cv2.rectangle(pattern, (0, 0), (W, int(top + (SHOULDER_Y + 45) * s)), a.shirt2, -1)
    elif a.pattern == "logo":
        cv2.putText(
            pattern,
            "GO",
            (int(cx - 22 * s), int(top + 170 * s)),
            cv2.FONT_HERSHEY_DUPLEX,
            1.1 * s,
            a.shirt2,
            max(1, int(3 * s)),
            cv2.LINE_AA,
        )
    np.copyto(img, pattern, where=body[:, :, None] > 0)
    # collar and neck
    cv2.rectangle(
        img,
        (int(cx - 11 * s), int(top + 50 * s)),
        (int(cx + 11 * s), int(top + (SHOULDER_Y - 4) * s)),
        shade(a.skin, 0.85),
        -1,
    )
    cv2.ellipse(
        img,
        (int(cx), int(top + (SHOULDER_Y - 12) * s)),
        (int(18 * s), int(10 * s)),
        0,
        0,
        180,
        shade(a.skin, 0.8),
        -1,
    )
    if a.bag == "backpack":
        for side in (-1, 1):
            x = int(cx + side * 32 * a.build * s)
            cv2.line(
                img,
                (x, int(top + (SHOULDER_Y - 8) * s)),
                (x, int(top + 210 * s)),
                a.bag_color,
                max(2, int(10 * s)),
                cv2.LINE_AA,
            )
    elif a.bag == "shoulder":
        cv2.line(
            img,
            (int(cx + 40 * s), int(top + (SHOULDER_Y - 8) * s)),
            (int(cx - 50 * s), int(top + (HIP_Y - 40) * s)),
            shade(a.bag_color, 0.7),
            max(2, int(8 * s)),
            cv2.LINE_AA,
        )
        cv2.rectangle(
            img,
            (int(cx - (hw + 38) * s), int(top + (HIP_Y - 60) * s)),
            (int(cx - (hw - 10) * s), int(top + (HIP_Y + 20) * s)),
            a.bag_color,
            -1,
        )
    # face
    hc = (int(cx), int(top + HEAD_RY * s))
    axes = (int(HEAD_RX * s), int(HEAD_RY * s))
    cv2.ellipse(img, hc, axes, 0, 0, 360, a.skin, -1, cv2.LINE_AA)
    if a.hair_style in ("short", "long", "bun"):
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] - 8 * s)),
            (int(axes[0] * 1.05), int(axes[1] * 0.8)),
            0,
            180,
            360,
            a.hair,
            -1,
            cv2.LINE_AA,
        )
        if a.hair_style == "long":
            for side in (-1, 1):
                cv2.rectangle(
                    img,
                    (int(cx + side * 20 * s - 6 * s), hc[1] - int(10 * s)),
                    (int(cx + side * 26 * s), int(top + 110 * s)),
                    a.hair,
                    -1,
                )
        if a.hair_style == "bun":
            cv2.circle(img, (hc[0], int(top + 2 * s)), int(11 * s), a.hair, -1, cv2.LINE_AA)
    elif a.hair_style == "cap":
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] - 10 * s)),
            (int(axes[0] * 1.08), int(axes[1] * 0.8)),
            0,
            180,
            360,
            a.shirt2,
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            img,
            (hc[0], int(hc[1] - 10 * s)),
            (int(axes[0] * 1.3), int(6 * s)),
            0,
            0,
            180,
            shade(a.shirt2, 0.7),
            -1,
            cv2.LINE_AA,
        )
    for side in (-1, 1):
        cv2.circle(
            img,
            (int(cx + side * 9 * s), int(top + 30 * s)),
            max(1, int(2.5 * s)),
            (40, 35, 30),
            -1,
            cv2.LINE_AA,
        )
    cv2.line(
        img,
        (int(cx - 7 * s), int(top + 46 * s)),
        (int(cx + 7 * s), int(top + 46 * s)),
        shade(a.skin, 0.7),
        max(1, int(2 * s)),
        cv2.LINE_AA,
    )

    # the gate camera: its own white balance and exposure, a slight tilt, soft focus, some noise
    angle = float(rng.uniform(-4, 4))
    m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
    img = np.asarray(cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REPLICATE), np.uint8)
    img = np.asarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    tint = np.array([rng.uniform(0.85, 1.1), rng.uniform(0.92, 1.05), rng.uniform(0.9, 1.15)], np.float32)
    gain = float(rng.uniform(0.85, 1.2))
    out = np.asarray(
        cv2.GaussianBlur(img.astype(np.float32) * tint[None, None, :] * gain, (3, 3), 0.8), np.float32
    )
    out += rng.normal(0.0, 3.0, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
