"""The files that describe a scene, as plain dataclasses.

A scene is a folder: `footage.mp4`, `planogram.json` (camera, products, slots),
`visits.json` (one entry per shopper, from the entry gate) and, for simulated
scenes only, `truth.json` (the answers). The simulator writes these files, the
tracker and the Django ingest read them; the loaders here reject malformed files
with an error that names what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

EventKind = Literal["pick", "return"]


class SceneFormatError(ValueError):
    """A scene file is missing, not JSON, or does not have the promised shape."""


class PlanogramError(SceneFormatError):
    pass


class VisitsError(SceneFormatError):
    pass


class TruthError(SceneFormatError):
    pass


@dataclass(frozen=True)
class Camera:
    name: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: int  # integer minor units (cents)
    currency: str
    image: str  # path relative to the scene folder, products/<sku>.png


@dataclass(frozen=True)
class Slot:
    id: str
    sku: str
    x: int
    y: int
    w: int
    h: int
    facings: int  # at the start of the footage

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


@dataclass(frozen=True)
class Planogram:
    camera: Camera
    currency: str
    products: tuple[Product, ...]
    slots: tuple[Slot, ...]

    def product(self, sku: str) -> Product:
        for product in self.products:
            if product.sku == sku:
                return product
        raise KeyError(sku)

    def slot(self, slot_id: str) -> Slot:
        for slot in self.slots:
            if slot.id == slot_id:
                return slot
        raise KeyError(slot_id)


@dataclass(frozen=True)
class VisitInfo:
    token: str
    entered_at: float  # seconds from the footage start
    exited_at: float
    gate_image: str  # path relative to the scene folder, gate/<token>.png


@dataclass(frozen=True)
class TruthEvent:
    t_start: float
    t_end: float
    token: str
    slot: str  # the slot the hand went into (for a wrong return: where the item was put)
    sku: str  # the item's own sku
    kind: EventKind
    qty: int
    ambiguous: bool
    occluded: bool


@dataclass(frozen=True)
class Touch:
    """A reach into a slot that took nothing and put nothing back (not an event)."""

    t_start: float
    t_end: float
    token: str
    slot: str


@dataclass(frozen=True)
class Truth:
    carts: dict[str, dict[str, int]]
    events: tuple[TruthEvent, ...]
    touches: tuple[Touch, ...] = ()
    scene: dict[str, Any] = field(default_factory=dict)


# -- writing -----------------------------------------------------------------


def _r(value: float) -> float:
    return round(float(value), 3)


def planogram_to_dict(planogram: Planogram) -> dict[str, Any]:
    cam = planogram.camera
    fps: float = int(cam.fps) if float(cam.fps).is_integer() else _r(cam.fps)
    return {
        "camera": {"name": cam.name, "width": cam.width, "height": cam.height, "fps": fps},
        "currency": planogram.currency,
        "products": [
            {"sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency, "image": p.image}
            for p in planogram.products
        ],
        "slots": [
            {"id": s.id, "sku": s.sku, "x": s.x, "y": s.y, "w": s.w, "h": s.h, "facings": s.facings}
            for s in planogram.slots
        ],
    }


def visits_to_list(visits: Sequence[VisitInfo]) -> list[dict[str, Any]]:
    return [
        {
            "token": v.token,
            "entered_at": _r(v.entered_at),
            "exited_at": _r(v.exited_at),
            "gate_image": v.gate_image,
        }
        for v in sorted(visits, key=lambda v: (v.entered_at, v.token))
    ]


def truth_to_dict(truth: Truth) -> dict[str, Any]:
    data: dict[str, Any] = {
        "carts": {token: dict(cart) for token, cart in truth.carts.items()},
        "events": [
            {
                "t_start": _r(e.t_start),
                "t_end": _r(e.t_end),
                "token": e.token,
                "slot": e.slot,
                "sku": e.sku,
                "kind": e.kind,
                "qty": e.qty,
                "ambiguous": e.ambiguous,
                "occluded": e.occluded,
            }
            for e in truth.events
        ],
        "touches": [
            {"t_start": _r(t.t_start), "t_end": _r(t.t_end), "token": t.token, "slot": t.slot}
            for t in truth.touches
        ],
    }
    if truth.scene:
        data["scene"] = truth.scene
    return data


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON the same way every time: sorted keys, two-space indent, newline at the end."""
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")


# -- reading -----------------------------------------------------------------


def _read_json(path: str | Path, error: type[SceneFormatError]) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON: {exc}")


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, error: type[SceneFormatError]) -> Any:
    if not isinstance(obj, Mapping):
        raise error(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise error(f"{where}: missing {key!r}")
    value = obj[key]
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise error(f"{where}: {key!r} must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise error(f"{where}: {key!r} must be {_kind_name(kind)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{where}: {key!r} must be finite, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"str": "a string", "int": "an integer", "float": "a number", "bool": "true/false"}.get(
            k.__name__, k.__name__
        )
        for k in kinds
    )


def planogram_from_dict(data: Any, *, source: str = "planogram") -> Planogram:
    err = PlanogramError
    cam_data = _get(data, "camera", dict, source, err)
    camera = Camera(
        name=_get(cam_data, "name", str, f"{source}: camera", err),
        width=_get(cam_data, "width", int, f"{source}: camera", err),
        height=_get(cam_data, "height", int, f"{source}: camera", err),
        fps=float(_get(cam_data, "fps", (int, float), f"{source}: camera", err)),
    )
    if camera.width <= 0 or camera.height <= 0 or camera.fps <= 0:
        raise err(f"{source}: camera size and fps must be positive")
    currency = _get(data, "currency", str, source, err)
    products: list[Product] = []
    for i, p in enumerate(_get(data, "products", list, source, err)):
        where = f"{source}: products[{i}]"
        product = Product(
            sku=_get(p, "sku", str, where, err),
            name=_get(p, "name", str, where, err),
            price=_get(p, "price", int, where, err),
            currency=_get(p, "currency", str, where, err),
            image=_get(p, "image", str, where, err),
        )
        if product.price < 0:
            raise err(f"{where}: product {product.sku} has a negative price")
        if any(q.sku == product.sku for q in products):
            raise err(f"{where}: sku {product.sku} appears twice")
        products.append(product)
    skus = {p.sku for p in products}
    slots: list[Slot] = []
    for i, s in enumerate(_get(data, "slots", list, source, err)):
        where = f"{source}: slots[{i}]"
        slot = Slot(
            id=_get(s, "id", str, where, err),
            sku=_get(s, "sku", str, where, err),
            x=_get(s, "x", int, where, err),
            y=_get(s, "y", int, where, err),
            w=_get(s, "w", int, where, err),
            h=_get(s, "h", int, where, err),
            facings=_get(s, "facings", int, where, err),
        )
        if slot.sku not in skus:
            raise err(f"{source}: slot {slot.id} holds unknown sku {slot.sku}")
        if slot.w <= 0 or slot.h <= 0:
            raise err(f"{source}: slot {slot.id} has an empty rectangle")
        if slot.x < 0 or slot.y < 0 or slot.x + slot.w > camera.width or slot.y + slot.h > camera.height:
            raise err(
                f"{source}: slot {slot.id} ({slot.x},{slot.y} {slot.w}x{slot.h}) lies outside the "
                f"{camera.width}x{camera.height} frame"
            )
        if slot.facings < 0:
            raise err(f"{source}: slot {slot.id} has negative facings")
        if any(t.id == slot.id for t in slots):
            raise err(f"{source}: slot id {slot.id} appears twice")
        slots.append(slot)
    return Planogram(camera=camera, currency=currency, products=tuple(products), slots=tuple(slots))


def load_planogram(path: str | Path) -> Planogram:
    return planogram_from_dict(_read_json(path, PlanogramError), source=str(path))


def visits_from_list(data: Any, *, source: str = "visits") -> list[VisitInfo]:
    err = VisitsError
    if not isinstance(data, list):
        raise err(f"{source}: expected a list of visits")
    visits: list[VisitInfo] = []
    for i, v in enumerate(data):
        where = f"{source}: [{i}]"
        visit = VisitInfo(
            token=_get(v, "token", str, where, err),
            entered_at=float(_get(v, "entered_at", (int, float), where, err)),
            exited_at=float(_get(v, "exited_at", (int, float), where, err)),
            gate_image=_get(v, "gate_image", str, where, err),
        )
        if not visit.token:
            raise err(f"{where}: empty token")
        if visit.exited_at < visit.entered_at:
            raise err(f"{where}: visit {visit.token} exits before it enters")
        if any(w.token == visit.token for w in visits):
            raise err(f"{where}: token {visit.token} appears twice")
        visits.append(visit)
    return visits


def load_visits(path: str | Path) -> list[VisitInfo]:
    return visits_from_list(_read_json(path, VisitsError), source=str(path))


def truth_from_dict(data: Any, *, source: str = "truth") -> Truth:
    err = TruthError
    carts_data = _get(data, "carts", dict, source, err)
    carts: dict[str, dict[str, int]] = {}
    for token, cart in carts_data.items():
        if not isinstance(cart, dict) or not all(
            isinstance(k, str) and type(q) is int for k, q in cart.items()
        ):
            raise err(f"{source}: cart {token} must map skus to integer quantities")
        carts[str(token)] = dict(cart)
    events: list[TruthEvent] = []
    for i, e in enumerate(_get(data, "events", list, source, err)):
        where = f"{source}: events[{i}]"
        kind = _get(e, "kind", str, where, err)
        if kind not in ("pick", "return"):
            raise err(f"{where}: kind must be 'pick' or 'return', got {kind!r}")
        events.append(
            TruthEvent(
                t_start=float(_get(e, "t_start", (int, float), where, err)),
                t_end=float(_get(e, "t_end", (int, float), where, err)),
                token=_get(e, "token", str, where, err),
                slot=_get(e, "slot", str, where, err),
                sku=_get(e, "sku", str, where, err),
                kind="pick" if kind == "pick" else "return",
                qty=_get(e, "qty", int, where, err),
                ambiguous=_get(e, "ambiguous", bool, where, err),
                occluded=_get(e, "occluded", bool, where, err),
            )
        )
    touches: list[Touch] = []
    touches_data = data.get("touches", [])
    if not isinstance(touches_data, list):
        raise err(f"{source}: 'touches' must be a list")
    for i, t in enumerate(touches_data):
        where = f"{source}: touches[{i}]"
        touches.append(
            Touch(
                t_start=float(_get(t, "t_start", (int, float), where, err)),
                t_end=float(_get(t, "t_end", (int, float), where, err)),
                token=_get(t, "token", str, where, err),
                slot=_get(t, "slot", str, where, err),
            )
        )
    scene = data.get("scene", {})
    if not isinstance(scene, dict):
        raise err(f"{source}: 'scene' must be an object")
    return Truth(carts=carts, events=tuple(events), touches=tuple(touches), scene=scene)


def load_truth(path: str | Path) -> Truth:
    return truth_from_dict(_read_json(path, TruthError), source=str(path))
