"""A settled or voided transaction is announced to the store system with a signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from reviewapp.models import AuditEvent, WebhookDelivery
from reviewapp.services import settlement, webhooks


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def hooked_store(store, receiver):
    store.webhook_url = receiver.url
    store.webhook_secret = "s3cret"
    store.save()
    return store


def test_settling_posts_a_signed_webhook(
    hooked_store, receiver, make_transaction, products, django_capture_on_commit_callbacks
):
    from reviewapp.models import ProposedLine

    txn = make_transaction("auto_approved", proposed_amount=250, final_amount=250)
    ProposedLine.objects.create(
        transaction=txn, product=products["C"], qty=1, unit_price=250, confidence=0.99
    )
    with django_capture_on_commit_callbacks(execute=False):
        settlement.charge_settle(txn_id=txn.pk)
    delivery = WebhookDelivery.objects.get(transaction=txn)
    assert webhooks.webhook_send(delivery_id=delivery.pk) == "delivered"
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[webhooks.SIGNATURE_HEADER] == expected
    payload = json.loads(body)
    assert (
        payload["event"] == "transaction.settled"
        and payload["amount"] == 250
        and payload["state"] == "settled"
    )
    assert payload["lines"] == [{"sku": "C", "name": "Product C", "qty": 1, "unit_price": 250}]  # the receipt
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.response_code == 200
    assert AuditEvent.objects.filter(action="webhook.delivered").count() == 1
    assert webhooks.webhook_send(delivery_id=delivery.pk) == "already delivered"
    assert len(receiver.requests) == 1


def test_a_failing_receiver_is_retried_then_logged_as_failed(
    hooked_store, receiver, make_transaction, django_capture_on_commit_callbacks
):
    receiver.status = 500
    txn = make_transaction("auto_approved", proposed_amount=100, final_amount=100)
    with django_capture_on_commit_callbacks(execute=False):
        settlement.charge_settle(txn_id=txn.pk)
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(webhooks.WebhookRetry):
        webhooks.webhook_send(delivery_id=delivery.pk)
    assert webhooks.webhook_send(delivery_id=delivery.pk, final_attempt=True) == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 2, 500)
    assert AuditEvent.objects.filter(action="webhook.attempt_failed").count() == 2


def test_a_store_without_a_url_gets_no_webhook(store, make_transaction, django_capture_on_commit_callbacks):
    txn = make_transaction("auto_approved", proposed_amount=100, final_amount=100)
    with django_capture_on_commit_callbacks(execute=False):
        settlement.charge_settle(txn_id=txn.pk)
    assert not WebhookDelivery.objects.exists()
