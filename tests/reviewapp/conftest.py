"""Fixtures shared by the review tests: products and flagged transactions with a queued task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.models import Product, ProposedLine, ReviewTask


@pytest.fixture
def products(store):
    return {
        sku: Product.objects.create(store=store, sku=sku, name=f"Product {sku}", price=price, currency="USD")
        for sku, price in (("A", 300), ("B", 450), ("C", 199))
    }


@pytest.fixture
def flagged(make_transaction, products):
    """A transaction the tracker flagged (`lines` proposed at `confidence`), its primary task queued."""

    def make(priority: int = 0, settle_in: int = 60, lines=(("A", 2),), confidence: float = 0.5):
        txn = make_transaction("needs_review", confidence=confidence, flagged=True, triaged_at=timezone.now())
        for sku, qty in lines:
            ProposedLine.objects.create(
                transaction=txn,
                product=products[sku],
                qty=qty,
                unit_price=products[sku].price,
                confidence=0.6,
            )
        txn.proposed_amount = sum(products[s].price * q for s, q in lines)
        txn.save()
        task = ReviewTask.objects.create(
            transaction=txn, priority=priority, settle_by=timezone.now() + timedelta(minutes=settle_in)
        )
        return task

    return make
