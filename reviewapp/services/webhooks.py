"""Telling the store system that a charge settled or a transaction was voided.

The body is signed with HMAC-SHA256 under the store's secret and sent in
`X-Checkout-Signature: sha256=<hex>`; the receiver recomputes it over the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from ..models import Transaction, WebhookDelivery
from ..selectors import final_cart
from .audit import SYSTEM, audit_record

SIGNATURE_HEADER = "X-Checkout-Signature"
TIMEOUT_SECONDS = 10


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(*, txn: Transaction, event: str) -> str:
    charge = getattr(txn, "charge", None)
    payload = {
        "event": event,
        "transaction": str(txn.code),
        "visit": txn.visit.external_id,
        "state": txn.state,
        "amount": txn.final_amount if txn.final_amount is not None else txn.proposed_amount,
        "currency": txn.currency,
        "charge_reference": charge.gateway_reference if charge else None,
        "lines": final_cart(txn),  # what the shopper paid for: the receipt's lines
        "at": timezone.now().isoformat(),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def webhook_queue(*, txn: Transaction, event: str) -> WebhookDelivery | None:
    """Record a delivery (once per transaction and event) and send it after commit. No URL, no webhook."""
    from ..tasks import send_webhook_task

    store = txn.store
    if not store.webhook_url:
        return None
    txn.refresh_from_db()
    body = webhook_body(txn=txn, event=event)
    try:
        with db.atomic():
            delivery = WebhookDelivery.objects.create(
                store=store,
                transaction=txn,
                event=event,
                url=store.webhook_url,
                body=body,
                signature=sign(store.webhook_secret, body.encode()),
            )
    except IntegrityError:
        return None
    db.on_commit(lambda: send_webhook_task.delay(delivery.pk))
    return delivery


class WebhookRetry(Exception):
    pass


def webhook_send(*, delivery_id: int, final_attempt: bool = False) -> str:
    delivery = WebhookDelivery.objects.select_related("store", "transaction").get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        return "already delivered"
    if not delivery.url.startswith(("https://", "http://")):
        raise ValueError(f"webhook URL must be http(s): {delivery.url}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        delivery.url,
        data=delivery.body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: delivery.signature,
            "User-Agent": "checkout-review",
        },
    )
    code: int | None = None
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - store-configured URL
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        error = str(getattr(exc, "reason", exc))
    ok = code is not None and 200 <= code < 300
    with db.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=delivery.attempts + 1,
            response_code=code,
            last_error=error[:1000],
            status=WebhookDelivery.Status.DELIVERED
            if ok
            else (WebhookDelivery.Status.FAILED if final_attempt else WebhookDelivery.Status.PENDING),
            delivered_at=timezone.now() if ok else None,
        )
        audit_record(
            actor=SYSTEM,
            action="webhook.delivered" if ok else "webhook.attempt_failed",
            obj=delivery,
            store=delivery.store,
            txn=delivery.transaction,
            data={
                "event": delivery.event,
                "url": delivery.url,
                "code": code,
                "error": error[:200],
                "attempt": delivery.attempts + 1,
            },
        )
    if not ok and not final_attempt:
        raise WebhookRetry(error or f"HTTP {code}")
    return "delivered" if ok else "failed"
