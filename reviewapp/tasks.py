"""Celery tasks: thin. Ids in, load, call a service, own the retries.

Each task is routed to its queue with that queue's time limit. Workers ack late, so a
task may run twice after a crash: every service called here is idempotent, and a
task whose row is gone returns quietly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings

from .models import Footage, Refund, Transaction, WebhookDelivery
from .services import (
    audit,
    clips,
    deadlines,
    disputes,
    metrics,
    pipeline,
    quality,
    retention,
    review,
    settlement,
    webhooks,
)

SETTLE_RETRIES = 6
WEBHOOK_RETRIES = 8
MEDIA_RECHECK_SECONDS = 5  # a media task whose transaction another task is preparing looks again after this


def queue_task(queue: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    limit = settings.CELERY_TASK_TIME_LIMITS[queue]
    options.setdefault("acks_late", True)
    return shared_task(queue=queue, time_limit=limit, soft_time_limit=int(limit * 0.9), **options)


def backoff(retries: int, factor: float = 1.0, cap: float = 600.0) -> float:
    return float(min(cap, settings.RETRY_BASE_SECONDS * factor * 2**retries))


@queue_task("tracking")
def track_footage_task(footage_id: int) -> str:
    if not Footage.objects.filter(pk=footage_id).exists():
        return "gone"
    return pipeline.footage_track(footage_id=footage_id)


def _unless_held(task: Any, outcome: str) -> str:
    """Another media task holds (some of) the transactions: look again later (a holder that died
    lets its claim lapse). More of the footage's transactions are waiting: again at once, behind
    what else is queued."""
    if outcome == "in progress":
        raise task.retry(countdown=MEDIA_RECHECK_SECONDS)
    if outcome == "more waiting":
        raise task.retry(countdown=0)
    return outcome


@queue_task("media", bind=True, max_retries=None)
def prepare_review_task(self: Any, txn_id: int) -> str:
    if not Transaction.objects.filter(pk=txn_id).exists():
        return "gone"
    return _unless_held(self, clips.review_prepare(txn_id=txn_id))


@queue_task("media", bind=True, max_retries=None)
def prepare_footage_review_task(self: Any, footage_id: int) -> str:
    if not Footage.objects.filter(pk=footage_id).exists():
        return "gone"
    return _unless_held(self, clips.footage_review_prepare(footage_id=footage_id))


@queue_task("settlement", bind=True, max_retries=SETTLE_RETRIES)
def settle_transaction_task(self: Any, txn_id: int) -> str:
    if not Transaction.objects.filter(pk=txn_id).exists():
        return "gone"
    final = self.request.retries >= SETTLE_RETRIES
    try:
        return settlement.charge_settle(txn_id=txn_id, final_attempt=final)
    except settlement.SettlementRetry as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@queue_task("settlement", bind=True, max_retries=SETTLE_RETRIES)
def refund_task(self: Any, refund_id: int) -> str:
    if not Refund.objects.filter(pk=refund_id).exists():
        return "gone"
    final = self.request.retries >= SETTLE_RETRIES
    try:
        return disputes.refund_execute(refund_id=refund_id, final_attempt=final)
    except disputes.RefundRetry as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@queue_task("default", bind=True, max_retries=WEBHOOK_RETRIES)
def send_webhook_task(self: Any, delivery_id: int) -> str:
    if not WebhookDelivery.objects.filter(pk=delivery_id).exists():
        return "gone"
    final = self.request.retries >= WEBHOOK_RETRIES
    try:
        return webhooks.webhook_send(delivery_id=delivery_id, final_attempt=final)
    except webhooks.WebhookRetry as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries, factor=2.5)) from exc


@queue_task("default")
def requeue_stuck_media_task() -> int:
    stuck = clips.media_stuck()
    for txn_id in stuck:
        prepare_review_task.delay(txn_id)
    return len(stuck)


@queue_task("default")
def release_expired_leases_task() -> int:
    return review.lease_release_expired()


@queue_task("default")
def bump_priorities_task() -> int:
    return deadlines.priority_bump()


@queue_task("default")
def apply_deadline_rules_task() -> int:
    return deadlines.deadline_apply()


@queue_task("default")
def seal_audit_log_task() -> int:
    return audit.audit_seal()


@queue_task("default", acks_late=False)
def verify_audit_chain_task(check_id: int) -> str:
    # not redelivered after a crash: the check, left running, may be asked for again (CHECK_STALE)
    return audit.chain_check_run(check_id=check_id)


@queue_task("default")
def roll_up_metrics_task() -> int:
    return metrics.rollup_recent()


@queue_task("default")
def purge_expired_media_task() -> dict[str, int]:
    return retention.media_purge()


@queue_task("default")
def top_up_gold_task() -> int:
    return quality.gold_top_up()
