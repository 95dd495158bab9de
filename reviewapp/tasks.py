"""Celery tasks: thin. Ids in, load, call a service, own the retries.

Each task is routed to its queue with that queue's time limit. Workers ack late, so a
task may run twice after a crash: every service called here is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings

from .services import review


def queue_task(queue: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    limit = settings.CELERY_TASK_TIME_LIMITS[queue]
    options.setdefault("acks_late", True)
    return shared_task(queue=queue, time_limit=limit, soft_time_limit=int(limit * 0.9), **options)


@queue_task("default")
def release_expired_leases_task() -> int:
    return review.lease_release_expired()
