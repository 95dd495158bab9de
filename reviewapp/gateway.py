"""Payment gateways. The built-in one keeps its own ledger in our database.

A gateway's `capture` must be idempotent on the key: asked twice with one key, it
captures once and answers with the same reference. Real gateways (Stripe, Adyen)
behave so; settlement relies on it when a worker dies between the gateway's answer
and our own commit.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string


class GatewayError(Exception):
    """Temporary: the capture may be retried with the same key."""


class GatewayTimeout(GatewayError):
    pass


class GatewayDeclined(Exception):
    """Final: the gateway refused; retrying will not help. Goes to a supervisor."""


@dataclass(frozen=True)
class Capture:
    reference: str
    amount: int
    currency: str


class Gateway(Protocol):
    def capture(self, *, idempotency_key: str, amount: int, currency: str, token_hash: str) -> Capture: ...

    def refund(
        self, *, idempotency_key: str, capture_reference: str, amount: int, currency: str
    ) -> Capture: ...


class BuiltinGateway:
    """Records captures in `GatewayCapture`. Settings make it misbehave for tests and demos:
    PAYMENT_GATEWAY_MODE = fail (declines), timeout (times out), slow (captures, then answers
    after PAYMENT_GATEWAY_SLOW_SECONDS)."""

    def _misbehave(self) -> None:
        mode = settings.PAYMENT_GATEWAY_MODE
        if mode == "fail":
            raise GatewayDeclined("declined by the built-in gateway (PAYMENT_GATEWAY_MODE=fail)")
        if mode == "timeout":
            raise GatewayTimeout("the built-in gateway timed out (PAYMENT_GATEWAY_MODE=timeout)")

    def capture(self, *, idempotency_key: str, amount: int, currency: str, token_hash: str) -> Capture:
        from .models import GatewayCapture

        self._misbehave()
        existing = GatewayCapture.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    existing = GatewayCapture.objects.create(
                        idempotency_key=idempotency_key,
                        reference=f"cap_{secrets.token_hex(10)}",
                        amount=amount,
                        currency=currency,
                    )
            except IntegrityError:  # a concurrent call with the same key won
                existing = GatewayCapture.objects.get(idempotency_key=idempotency_key)
        if settings.PAYMENT_GATEWAY_MODE == "slow":
            # the capture is made, the answer is late: the case where a worker may die in between
            time.sleep(settings.PAYMENT_GATEWAY_SLOW_SECONDS)
        if (existing.amount, existing.currency) != (amount, currency):
            raise GatewayDeclined(f"idempotency key {idempotency_key} was used for a different amount")
        return Capture(existing.reference, existing.amount, existing.currency)

    def refund(self, *, idempotency_key: str, capture_reference: str, amount: int, currency: str) -> Capture:
        return self.capture(idempotency_key=idempotency_key, amount=amount, currency=currency, token_hash="")


def get_gateway() -> Gateway:
    gateway: Gateway = import_string(settings.PAYMENT_GATEWAY)()
    return gateway
