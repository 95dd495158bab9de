"""Products that look alike, for the reviewer's product picker.

The database has no look-alike field, so similarity is computed from the reference
images: a coarse hue/saturation/value histogram of the packaging (white background
left out) and the image's aspect ratio (bottle, box, can), cached per image so a
store's catalogue is read once. Products sharing the first word of their name
("Dish Soap" ~ "Dish Soap Lemon") count as alike too.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from django.core.cache import cache

from .models import Product

_BINS = (12, 4, 4)
_CACHE_SECONDS = 24 * 3600


def _features(product: Product) -> tuple[np.ndarray, float] | None:
    """(normalised colour histogram, width/height) of the product's image, or None."""
    if not product.image:
        return None
    key = f"lookalike-v2:{product.code}:{product.image.name}"
    cached = cache.get(key)
    if cached is not None:
        return np.asarray(cached[0], dtype=np.float32), float(cached[1])
    try:
        with product.image.open("rb") as handle:
            data = np.frombuffer(handle.read(), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return None
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    packaging = ((hsv[:, :, 1] > 35) | (hsv[:, :, 2] < 200)).astype(np.uint8)  # not the white backdrop
    hist = cv2.calcHist([hsv], [0, 1, 2], packaging, list(_BINS), [0, 180, 0, 256, 0, 256]).flatten()
    hist = hist / max(float(hist.sum()), 1.0)
    aspect = image.shape[1] / max(image.shape[0], 1)
    cache.set(key, (hist.tolist(), aspect), _CACHE_SECONDS)
    return hist.astype(np.float32), aspect


def _family(product: Product) -> str:
    return product.name.split()[0].lower() if product.name.split() else ""


def lookalikes(products: Iterable[Product], *, limit: int = 4, floor: float = 0.1) -> dict[str, list[str]]:
    """For each product's sku, the skus of up to `limit` others that look most like it, best first.

    Score: 0.75 x colour-histogram intersection + 0.25 x aspect-ratio agreement, +0.5
    for the same name family; only scores of at least `floor` count.
    """
    products = list(products)
    features = {p.sku: _features(p) for p in products}
    result: dict[str, list[str]] = {}
    for product in products:
        mine = features[product.sku]
        scored: list[tuple[float, str]] = []
        for other in products:
            if other.sku == product.sku:
                continue
            theirs = features[other.sku]
            score = 0.0
            if mine is not None and theirs is not None:
                colour = float(np.minimum(mine[0], theirs[0]).sum())
                shape = min(mine[1], theirs[1]) / max(mine[1], theirs[1], 1e-6)
                score = 0.75 * colour + 0.25 * shape
            if _family(other) and _family(other) == _family(product):
                score += 0.5
            if score >= floor:
                scored.append((score, other.sku))
        scored.sort(key=lambda item: (-item[0], item[1]))
        result[product.sku] = [sku for _score, sku in scored[:limit]]
    return result
