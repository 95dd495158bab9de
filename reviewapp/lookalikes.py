"""Products that look alike, for the reviewer's product picker.

The database has no look-alike field, so similarity is computed from the reference
images: a coarse hue/saturation/value histogram per product (cached per image, so a
store's catalogue is read once), compared by histogram intersection. Products with
no image fall back to sharing the first word of the name ("Cola Zero" ~ "Cola Classic").
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from django.core.cache import cache

from .models import Product

_BINS = (12, 4, 4)
_CACHE_SECONDS = 24 * 3600


def _histogram(product: Product) -> np.ndarray | None:
    if not product.image:
        return None
    key = f"lookalike-hist:{product.code}:{product.image.name}"
    cached = cache.get(key)
    if cached is not None:
        return np.asarray(cached, dtype=np.float32)
    try:
        with product.image.open("rb") as handle:
            data = np.frombuffer(handle.read(), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return None
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(_BINS), [0, 180, 0, 256, 0, 256]).flatten()
    hist = hist / max(float(hist.sum()), 1.0)
    cache.set(key, hist.tolist(), _CACHE_SECONDS)
    return hist.astype(np.float32)


def _family(product: Product) -> str:
    return product.name.split()[0].lower() if product.name.split() else ""


def lookalikes(products: Iterable[Product], *, limit: int = 4, floor: float = 0.35) -> dict[str, list[str]]:
    """For each product's sku, the skus of up to `limit` others that look most like it, best first."""
    products = list(products)
    hists = {p.sku: _histogram(p) for p in products}
    result: dict[str, list[str]] = {}
    for product in products:
        mine = hists[product.sku]
        scored: list[tuple[float, str]] = []
        for other in products:
            if other.sku == product.sku:
                continue
            theirs = hists[other.sku]
            score = 0.0
            if mine is not None and theirs is not None:
                score = float(np.minimum(mine, theirs).sum())
            if _family(other) and _family(other) == _family(product):
                score += 0.5
            if score >= floor:
                scored.append((score, other.sku))
        scored.sort(key=lambda item: (-item[0], item[1]))
        result[product.sku] = [sku for _score, sku in scored[:limit]]
    return result
