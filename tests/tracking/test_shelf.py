"""Facing positions compared between two quiet views of a slot (tracking.shelf)."""

from __future__ import annotations

import numpy as np

from tracking.scene import Slot
from tracking.shelf import SlotState, compare_position, crop_box, match_at, view_fit

RNG = np.random.default_rng(1)
PRODUCT = RNG.uniform(40, 220, (20, 10, 3)).astype(np.float32)  # a facing: 10 x 20 pixels
OTHER = RNG.uniform(40, 220, (20, 10, 3)).astype(np.float32)
SHELF = (128 + RNG.uniform(-60, 60, (40, 60, 1))).astype(np.float32) * np.ones((1, 1, 3), np.float32)


def _view(visible: int, right: np.ndarray) -> np.ndarray:
    """The shelf with the product standing at x 25-35 (bottom at row 40), only its `visible` left
    columns showing, the rest of its place showing `right`."""
    frame = SHELF.copy()
    frame[20:40, 25:35] = PRODUCT
    if visible < 10:
        frame[20:40, 25 + visible : 35] = right[:, : 10 - visible]
    return frame


def test_a_position_that_changed_a_lot_was_taken_even_from_a_weak_first_match() -> None:
    """Half hidden in the quiet view before (something beside it), gone after: the product's match
    drops from a weak one to a weaker one, by less than a quarter, but the position changed by far
    more than the threshold; that is a pick, not nothing."""
    slot = SlotState(
        slot=Slot("S1", "SKU-1", 15, 20, 30, 20, 1),
        x0=15,
        y0=20,
        x1=45,
        y1=40,
        capacity=1,
        centers=[30.0],
        facing_w=10,
        labels=["SKU-1"],
        init_margin=1.0,
        ref_bgr=np.zeros((1, 1, 3), np.float32),
    )
    before, after = _view(6, OTHER), _view(3, SHELF[20:40, 25:35])
    was, still = match_at(before, PRODUCT, 30, 40, 2), match_at(after, PRODUCT, 30, 40, 2)
    assert 0.5 < was < 0.6 and still > max(was - 0.25, 0.6 * was)  # weak, and not down by a quarter or to 60%
    change, diff = compare_position(
        slot, 0, crop_box(before, slot), crop_box(after, slot), after, {"SKU-1": (10, 20, PRODUCT)}, 18.0
    )
    assert diff >= 2 * 18.0
    assert change is not None and change.before == "SKU-1" and change.after is None
    # the same drop on a position that changed only a little is not enough
    change, _ = compare_position(
        slot, 0, crop_box(before, slot), crop_box(after, slot), after, {"SKU-1": (10, 20, PRODUCT)}, 25.0
    )
    assert change is None


def _shelf_of(products: list[np.ndarray]) -> np.ndarray:
    """A shelf 200 x 80 with three slots, 60 wide, 40 tall, each holding three facings of a product."""
    frame = (128 + RNG.uniform(-20, 20, (80, 200, 1))).astype(np.float32) * np.ones((1, 1, 3), np.float32)
    for k, product in enumerate(products):
        for i in range(3):
            frame[30:70, 10 + 60 * k + 20 * i : 30 + 60 * k + 20 * i] = product
    return frame


def test_the_shelf_check_tells_the_planograms_shelf_from_another_and_from_no_picture() -> None:
    # packs alike in layout (a light label band across a dark body), each with its own print
    layout = np.full((40, 20, 3), 60.0, np.float32)
    layout[12:24] = 100.0
    looks = [np.clip(layout + RNG.uniform(-90, 90, (40, 20, 3)), 0, 255).astype(np.float32) for _ in range(3)]
    slots = [Slot(f"S{k}", f"SKU-{k}", 10 + 60 * k, 30, 60, 40, 3) for k in range(3)]
    templates = {f"SKU-{k}": (20, 40, looks[k]) for k in range(3)}
    assert view_fit(_shelf_of(looks), slots, templates, 1.0) == [True, True, True]
    moved = _shelf_of([looks[1], looks[2], looks[0]])  # every product on another's slot
    assert view_fit(moved, slots, templates, 1.0) == [False, False, False]
    grey = np.full((80, 200, 3), 128, np.float32)  # nothing there to judge: no picture
    assert view_fit(grey, slots, templates, 1.0) == [None, None, None]
