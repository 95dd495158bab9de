"""The simulator's product catalogue and how a product looks.

Products come in families (a brand line): the two variants of a family share
shape, body colour and label layout and differ only in the variant text and a
small badge, which is what makes a look-alike pair. Sprites are drawn at 4x and
shrunk with area interpolation, so edges and print are anti-aliased.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

Shape = Literal["box", "bottle", "can", "jar"]
Color = tuple[int, int, int]  # BGR
Image = NDArray[np.uint8]

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Family:
    brand: str
    shape: Shape
    aspect: float  # facing width / height
    body: Color
    accent: Color
    ink: Color
    pattern: str
    variants: tuple[tuple[str, str], str, int, int]  # ((name A, name B), size text, price A, price B)


@dataclass(frozen=True)
class ProductDesign:
    sku: str
    name: str
    price: int
    family: Family
    variant: int  # 0 or 1 within its family

    @property
    def shape(self) -> Shape:
        return self.family.shape


def _c(b: int, g: int, r: int) -> Color:
    return (b, g, r)


# Body colours are spread so that products of different families do not look alike by accident.
FAMILIES: tuple[Family, ...] = (
    Family(
        "OAT CRUNCH",
        "box",
        0.62,
        _c(20, 175, 240),
        _c(30, 70, 140),
        _c(30, 40, 90),
        "bowl",
        (("Oat Crunch", "Oat Crunch Honey"), "500g", 399, 429),
    ),
    Family(
        "CHOCO RINGS",
        "box",
        0.62,
        _c(35, 55, 115),
        _c(40, 200, 250),
        _c(230, 240, 250),
        "rings",
        (("Choco Rings", "Choco Rings Duo"), "375g", 449, 469),
    ),
    Family(
        "CORN FLAKES",
        "box",
        0.62,
        _c(45, 45, 205),
        _c(245, 245, 245),
        _c(250, 250, 250),
        "band",
        (("Corn Flakes", "Corn Flakes Light"), "750g", 379, 389),
    ),
    Family(
        "MUESLI",
        "box",
        0.58,
        _c(70, 150, 60),
        _c(200, 235, 245),
        _c(240, 250, 250),
        "stripes",
        (("Muesli Fruit", "Muesli Nut"), "1kg", 549, 569),
    ),
    Family(
        "RICE CRISPS",
        "box",
        0.58,
        _c(205, 125, 35),
        _c(80, 220, 250),
        _c(250, 250, 250),
        "dots",
        (("Rice Crisps", "Rice Crisps Cocoa"), "300g", 329, 349),
    ),
    Family(
        "GRANOLA",
        "box",
        0.58,
        _c(125, 45, 115),
        _c(120, 200, 240),
        _c(250, 240, 250),
        "chevron",
        (("Granola Bars", "Granola Bars Choc"), "6pk", 299, 319),
    ),
    Family(
        "CRACKERS",
        "box",
        0.75,
        _c(35, 125, 230),
        _c(230, 240, 250),
        _c(40, 40, 120),
        "wave",
        (("Crackers Salt", "Crackers Herb"), "200g", 219, 229),
    ),
    Family(
        "PASTA",
        "box",
        0.55,
        _c(170, 85, 20),
        _c(240, 240, 240),
        _c(250, 250, 250),
        "window",
        (("Pasta Penne", "Pasta Fusilli"), "500g", 189, 189),
    ),
    Family(
        "TEA",
        "box",
        0.8,
        _c(50, 95, 25),
        _c(120, 190, 215),
        _c(150, 215, 240),
        "leaf",
        (("Tea Earl Grey", "Tea Green"), "100g", 349, 349),
    ),
    Family(
        "COFFEE",
        "box",
        0.62,
        _c(35, 35, 45),
        _c(60, 170, 210),
        _c(80, 190, 230),
        "band",
        (("Coffee Roast", "Coffee Decaf"), "250g", 699, 729),
    ),
    Family(
        "RICE",
        "box",
        0.7,
        _c(220, 225, 228),
        _c(40, 40, 190),
        _c(40, 40, 150),
        "stripes",
        (("Basmati Rice", "Jasmine Rice"), "1kg", 299, 319),
    ),
    Family(
        "COOKIES",
        "box",
        0.75,
        _c(110, 40, 25),
        _c(90, 170, 235),
        _c(240, 245, 250),
        "dots",
        (("Choc Cookies", "Oat Cookies"), "300g", 279, 279),
    ),
    Family(
        "COLA",
        "bottle",
        0.3,
        _c(25, 30, 50),
        _c(40, 30, 200),
        _c(250, 250, 250),
        "wave",
        (("Cola", "Cola Zero"), "1.5L", 199, 199),
    ),
    Family(
        "SPRING",
        "bottle",
        0.3,
        _c(215, 195, 160),
        _c(175, 95, 30),
        _c(250, 250, 250),
        "wave",
        (("Sparkling Water", "Still Water"), "1L", 99, 89),
    ),
    Family(
        "SUNNY",
        "bottle",
        0.32,
        _c(30, 140, 245),
        _c(40, 190, 250),
        _c(30, 60, 110),
        "circle",
        (("Orange Juice", "Orange Juice Pulp"), "1L", 259, 269),
    ),
    Family(
        "LEMONA",
        "bottle",
        0.3,
        _c(90, 215, 200),
        _c(30, 160, 80),
        _c(250, 250, 250),
        "stripes",
        (("Lemonade", "Lemonade Lime"), "1L", 179, 179),
    ),
    Family(
        "OLIVA",
        "bottle",
        0.27,
        _c(30, 80, 55),
        _c(70, 180, 215),
        _c(80, 200, 235),
        "band",
        (("Olive Oil", "Olive Oil Extra"), "500ml", 799, 899),
    ),
    Family(
        "KETCHUP",
        "bottle",
        0.36,
        _c(30, 30, 175),
        _c(240, 240, 245),
        _c(40, 40, 160),
        "circle",
        (("Ketchup", "Ketchup Hot"), "500ml", 249, 259),
    ),
    Family(
        "BRITE",
        "bottle",
        0.34,
        _c(160, 170, 40),
        _c(245, 245, 245),
        _c(150, 110, 20),
        "dots",
        (("Dish Soap", "Dish Soap Lemon"), "750ml", 229, 229),
    ),
    Family(
        "SILK",
        "bottle",
        0.34,
        _c(170, 100, 210),
        _c(245, 235, 245),
        _c(120, 50, 140),
        "chevron",
        (("Shampoo", "Shampoo Repair"), "400ml", 449, 479),
    ),
    Family(
        "ICE TEA",
        "bottle",
        0.3,
        _c(40, 110, 175),
        _c(80, 200, 240),
        _c(40, 60, 90),
        "leaf",
        (("Iced Tea Peach", "Iced Tea Lemon"), "1L", 189, 189),
    ),
    Family(
        "ORCHARD",
        "bottle",
        0.32,
        _c(120, 220, 170),
        _c(40, 120, 40),
        _c(250, 250, 250),
        "circle",
        (("Apple Juice", "Apple Cider"), "1L", 239, 299),
    ),
    Family(
        "TOMATO",
        "can",
        0.72,
        _c(40, 40, 190),
        _c(80, 170, 60),
        _c(250, 250, 250),
        "band",
        (("Chopped Tomatoes", "Whole Tomatoes"), "400g", 119, 129),
    ),
    Family(
        "BEANS",
        "can",
        0.72,
        _c(150, 120, 30),
        _c(60, 150, 230),
        _c(250, 250, 250),
        "circle",
        (("Baked Beans", "Kidney Beans"), "415g", 109, 119),
    ),
    Family(
        "NUTTY",
        "jar",
        0.82,
        _c(60, 130, 190),
        _c(30, 40, 120),
        _c(250, 250, 250),
        "band",
        (("Peanut Butter", "Peanut Butter Crunchy"), "350g", 359, 379),
    ),
    Family(
        "BERRY",
        "jar",
        0.82,
        _c(60, 25, 135),
        _c(235, 240, 245),
        _c(80, 20, 120),
        "dots",
        (("Strawberry Jam", "Raspberry Jam"), "340g", 329, 329),
    ),
    Family(
        "TUNA",
        "can",
        0.95,
        _c(175, 130, 60),
        _c(60, 200, 245),
        _c(250, 250, 250),
        "wave",
        (("Tuna Chunks", "Tuna in Oil"), "160g", 189, 199),
    ),
    Family(
        "SOUP",
        "can",
        0.72,
        _c(40, 130, 215),
        _c(245, 245, 245),
        _c(30, 30, 140),
        "stripes",
        (("Tomato Soup", "Lentil Soup"), "400g", 149, 149),
    ),
)


def design_price(family: Family, variant: int) -> int:
    return family.variants[2] if variant == 0 else family.variants[3]


def design_name(family: Family, variant: int) -> str:
    return f"{family.variants[0][variant]} {family.variants[1]}"


def label_text(design: ProductDesign) -> str:
    """The variant line of the label: the product name without the brand's words."""
    brand = set(design.family.brand.lower().split())
    words = [w for w in design.family.variants[0][design.variant].split() if w.lower() not in brand]
    return " ".join(words) if words else "Original"


def _luma(c: Color) -> float:
    return 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]


def readable(ink: Color, background: Color) -> Color:
    """`ink`, unless it is too close to the background; then black or white."""
    if abs(_luma(ink) - _luma(background)) >= 80:
        return ink
    return (25, 25, 25) if _luma(background) > 128 else (245, 245, 245)


def shade(color: Color, factor: float) -> Color:
    return (
        int(min(255, max(0, color[0] * factor))),
        int(min(255, max(0, color[1] * factor))),
        int(min(255, max(0, color[2] * factor))),
    )


def _mix(a: Color, b: Color, t: float) -> Color:
    return (int(a[0] * (1 - t) + b[0] * t), int(a[1] * (1 - t) + b[1] * t), int(a[2] * (1 - t) + b[2] * t))


def put_text_fit(
    img: Image,
    text: str,
    center: tuple[int, int],
    max_w: int,
    max_h: int,
    color: Color,
    *,
    bold: bool = False,
) -> None:
    """Centered text, as large as fits in max_w x max_h."""
    font = cv2.FONT_HERSHEY_DUPLEX if bold else cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, int(max_h / 9)) if bold else max(1, int(max_h / 13))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min(max_w / max(tw, 1), max_h / max(th, 1))
    if scale <= 0.05:
        return
    thickness = max(1, min(thickness, int(scale * 3)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (int(center[0] - tw / 2), int(center[1] + th / 2))
    cv2.putText(img, text, org, font, scale, color, thickness, cv2.LINE_AA)


def _pattern(img: Image, design: ProductDesign, x0: int, y0: int, x1: int, y1: int) -> None:
    """The family's print in the rectangle; variant 1 differs in small details."""
    f = design.family
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    acc = f.accent
    v = design.variant
    if f.pattern == "bowl":
        cv2.ellipse(img, (cx, cy + h // 6), (int(w * 0.38), int(h * 0.28)), 0, 0, 180, shade(acc, 1.2), -1)
        for i in range(7):
            px = cx + int((i - 3) * w * 0.09)
            cv2.circle(
                img, (px, cy + h // 8 - (i % 2) * h // 14), max(2, w // 14), _mix(f.body, acc, 0.5), -1
            )
        if v:
            cv2.circle(img, (cx + int(w * 0.3), cy - int(h * 0.25)), max(3, w // 10), (40, 200, 240), -1)
    elif f.pattern == "rings":
        for i in range(5 + v):
            px = x0 + int(w * (0.2 + 0.15 * i))
            py = cy + int(h * 0.15 * np.sin(i * 1.7))
            cv2.circle(img, (px, py), max(3, w // 9), acc, max(2, w // 24))
    elif f.pattern == "band":
        cv2.rectangle(img, (x0, cy - h // 6), (x1, cy + h // 6), acc, -1)
        cv2.rectangle(img, (x0, cy + h // 6), (x1, cy + h // 6 + max(2, h // 30)), shade(acc, 0.7), -1)
        if v:
            cv2.rectangle(img, (x0, cy - h // 6 - max(3, h // 20)), (x1, cy - h // 6), shade(acc, 0.6), -1)
    elif f.pattern == "stripes":
        n = 3 + v
        for i in range(n):
            yy = y0 + int(h * (0.15 + 0.7 * i / n))
            cv2.rectangle(img, (x0, yy), (x1, yy + max(2, h // 16)), acc, -1)
    elif f.pattern == "dots":
        step = max(6, w // (5 + v))
        for yy in range(y0 + step // 2, y1, step):
            for xx in range(x0 + step // 2, x1, step):
                cv2.circle(img, (xx, yy), max(2, step // 4), acc, -1)
    elif f.pattern == "chevron":
        for i in range(3 + v):
            yy = y0 + int(h * (0.2 + 0.2 * i))
            pts = np.array([[x0, yy], [cx, yy + h // 8], [x1, yy]], np.int32)
            cv2.polylines(img, [pts], False, acc, max(2, h // 25), cv2.LINE_AA)
    elif f.pattern == "wave":
        xs = np.linspace(x0, x1, 40)
        for k in range(2 + v):
            ys = (
                cy
                + (k - 0.5) * h * 0.18
                + np.sin((xs - x0) / max(w, 1) * 2 * np.pi * (1.0 + 0.3 * k)) * h * 0.08
            )
            pts = np.stack([xs, ys], axis=1).astype(np.int32)
            cv2.polylines(img, [pts], False, acc, max(2, h // 20), cv2.LINE_AA)
    elif f.pattern == "circle":
        cv2.circle(img, (cx, cy), int(min(w, h) * 0.32), acc, -1)
        cv2.circle(img, (cx, cy), int(min(w, h) * 0.32), shade(acc, 0.6), max(2, w // 30))
        if v:
            cv2.circle(img, (cx, cy), int(min(w, h) * 0.16), shade(f.body, 1.1), -1)
    elif f.pattern == "window":
        cv2.rectangle(img, (x0 + w // 6, cy - h // 4), (x1 - w // 6, cy + h // 4), (70, 170, 225), -1)
        for i in range(6):
            yy = cy - h // 5 + i * h // 13
            if v:
                cv2.ellipse(img, (cx, yy), (w // 5, h // 40 + 1), 20, 0, 360, (40, 130, 200), max(1, h // 60))
            else:
                cv2.line(img, (cx - w // 5, yy), (cx + w // 5, yy + h // 30), (40, 130, 200), max(2, h // 40))
    elif f.pattern == "leaf":
        for i in range(2 + v):
            c = (cx + int((i - 0.5 * (1 + v)) * w * 0.25), cy)
            cv2.ellipse(img, c, (max(3, w // 7), max(5, h // 5)), 30 + 40 * i, 0, 360, acc, -1)


def _front_label(img: Image, design: ProductDesign, x0: int, y0: int, x1: int, y1: int) -> None:
    f = design.family
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) // 2
    brand_h = int(h * 0.2)
    cv2.rectangle(img, (x0, y0), (x1, y0 + brand_h), f.accent, -1)
    put_text_fit(
        img,
        f.brand,
        (cx, y0 + brand_h // 2),
        int(w * 0.9),
        int(brand_h * 0.55),
        readable(f.body, f.accent),
        bold=True,
    )
    _pattern(img, design, x0, y0 + brand_h, x1, y1 - int(h * 0.25))
    ink = readable(f.ink, f.body)
    put_text_fit(
        img, label_text(design), (cx, y1 - int(h * 0.17)), int(w * 0.9), int(h * 0.09), ink, bold=True
    )
    put_text_fit(img, f.variants[1], (cx, y1 - int(h * 0.06)), int(w * 0.6), int(h * 0.06), ink)


def render_design(design: ProductDesign, width: int, height: int) -> tuple[Image, NDArray[np.float32]]:
    """One facing, `width` x `height` pixels: BGR image and alpha in [0, 1]."""
    s = SUPERSAMPLE
    W, H = max(1, width) * s, max(1, height) * s
    img: Image = np.zeros((H, W, 3), np.uint8)
    mask: Image = np.zeros((H, W), np.uint8)
    f = design.family
    if f.shape == "box":
        top = max(2, int(H * 0.06))
        side = max(2, int(W * 0.1))
        cv2.rectangle(img, (0, top), (W - 1, H - 1), f.body, -1)
        # the lid seen from above and the right side in shadow give the box its depth
        cv2.rectangle(img, (0, 0), (W - 1, top), shade(f.body, 1.25), -1)
        cv2.rectangle(img, (W - side, top), (W - 1, H - 1), shade(f.body, 0.7), -1)
        cv2.line(img, (0, top), (W - 1, top), shade(f.body, 0.55), max(1, s // 2))
        _front_label(
            img, design, int(W * 0.04), top + int(H * 0.03), W - side - int(W * 0.03), H - int(H * 0.02)
        )
        mask[:] = 255
    elif f.shape == "bottle":
        neck_w = int(W * 0.36)
        cap_h = int(H * 0.07)
        neck_h = int(H * 0.12)
        shoulder_h = int(H * 0.12)
        cx = W // 2
        body_top = cap_h + neck_h + shoulder_h
        liquid = f.body
        cv2.rectangle(img, (0, body_top), (W - 1, H - 1), liquid, -1)
        pts = np.array(
            [
                [cx - neck_w // 2, cap_h + neck_h],
                [cx + neck_w // 2, cap_h + neck_h],
                [W - 1, body_top],
                [0, body_top],
            ],
            np.int32,
        )
        cv2.fillConvexPoly(img, pts, liquid, cv2.LINE_AA)
        cv2.rectangle(img, (cx - neck_w // 2, cap_h), (cx + neck_w // 2, cap_h + neck_h), liquid, -1)
        cap_w = int(neck_w * 1.15)
        cv2.rectangle(img, (cx - cap_w // 2, 0), (cx + cap_w // 2, cap_h), shade(f.accent, 0.85), -1)
        cv2.ellipse(
            img, (cx, cap_h // 3), (cap_w // 2, max(2, cap_h // 3)), 0, 0, 360, shade(f.accent, 1.1), -1
        )
        # same outline for the alpha
        cv2.rectangle(mask, (0, body_top), (W - 1, H - 1), 255, -1)
        cv2.fillConvexPoly(mask, pts, 255, cv2.LINE_AA)
        cv2.rectangle(mask, (cx - neck_w // 2, cap_h), (cx + neck_w // 2, cap_h + neck_h), 255, -1)
        cv2.rectangle(mask, (cx - cap_w // 2, 0), (cx + cap_w // 2, cap_h), 255, -1)
        label_y0 = body_top + int(H * 0.08)
        label_y1 = H - int(H * 0.1)
        label_bg = _mix(f.accent, (245, 245, 245), 0.15)
        cv2.rectangle(img, (0, label_y0), (W - 1, label_y1), label_bg, -1)
        _bottle_label(img, design, 0, label_y0, W - 1, label_y1, label_bg)
        # cylinder shading: dark edges, a specular highlight left of centre
        ramp = np.abs(np.linspace(-1, 1, W, dtype=np.float32)) ** 2
        shading = (1.0 - 0.35 * ramp)[None, :, None]
        img = np.clip(img.astype(np.float32) * shading, 0, 255).astype(np.uint8)
        hl_x = int(W * 0.24)
        strip = img[body_top : H - int(H * 0.04), hl_x : hl_x + max(2, W // 12)]
        strip[:] = cv2.addWeighted(strip, 0.55, np.full_like(strip, 250), 0.45, 0)
    elif f.shape in ("can", "jar"):
        lid_h = int(H * (0.12 if f.shape == "can" else 0.18))
        cv2.rectangle(img, (0, lid_h // 2), (W - 1, H - 1), f.body, -1)
        lid = (190, 190, 195) if f.shape == "can" else shade(f.accent, 0.9)
        cv2.rectangle(img, (int(W * 0.03), 0), (W - 1 - int(W * 0.03), lid_h), lid, -1)
        cv2.ellipse(
            img, (W // 2, lid_h // 3), (int(W * 0.47), max(2, lid_h // 3)), 0, 0, 360, shade(lid, 1.15), -1
        )
        mask[lid_h // 2 :, :] = 255
        mask[:lid_h, int(W * 0.03) : W - int(W * 0.03)] = 255
        _bottle_label(img, design, 0, lid_h + int(H * 0.04), W - 1, H - int(H * 0.05), f.body)
        ramp = np.abs(np.linspace(-1, 1, W, dtype=np.float32)) ** 2
        img = np.clip(img.astype(np.float32) * (1.0 - 0.4 * ramp)[None, :, None], 0, 255).astype(np.uint8)
    size = (max(1, width), max(1, height))
    small = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)
    alpha = np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_AREA), np.float32)
    return small, alpha / np.float32(255.0)


def _bottle_label(
    img: Image, design: ProductDesign, x0: int, y0: int, x1: int, y1: int, background: Color
) -> None:
    f = design.family
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) // 2
    _pattern(img, design, x0, y0 + int(h * 0.3), x1, y1 - int(h * 0.2))
    ink = readable(f.ink, background)
    put_text_fit(img, f.brand, (cx, y0 + int(h * 0.17)), int(w * 0.9), int(h * 0.16), ink, bold=True)
    put_text_fit(img, label_text(design), (cx, y1 - int(h * 0.12)), int(w * 0.85), int(h * 0.1), ink)


def reference_image(design: ProductDesign, height: int = 240) -> Image:
    """A clean front view of one facing on a neutral background (products/<sku>.png)."""
    width = max(8, int(round(height * design.family.aspect)))
    img, alpha = render_design(design, width, height)
    bg = np.full_like(img, 236)
    a = alpha[:, :, None]
    return (img.astype(np.float32) * a + bg.astype(np.float32) * (1 - a)).astype(np.uint8)
