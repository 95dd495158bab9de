"""The Celery app: queues, routing and the one beat schedule.

Settings come from config/settings.py (the CELERY_ names). Heavy work has its own
queue and time limit (tracking, media); money has its own (settlement) so a backlog
of video never delays a charge. Workers ack late and prefetch one task, so a worker
that dies mid-task has it delivered again: every task is therefore idempotent.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
from kombu import Exchange, Queue

from config import broker  # noqa: F401 - filesystem:// URLs get the transport that writes messages whole

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = ("tracking", "media", "settlement", "default")

# Every periodic job, in one place. Each calls a thin task in reviewapp/tasks.py.
BEAT_SCHEDULE = {
    "seal-audit-log": {"task": "reviewapp.tasks.seal_audit_log_task", "schedule": 5.0},
    "requeue-stuck-media": {"task": "reviewapp.tasks.requeue_stuck_media_task", "schedule": 120.0},
    "release-expired-leases": {"task": "reviewapp.tasks.release_expired_leases_task", "schedule": 30.0},
    "bump-priorities": {"task": "reviewapp.tasks.bump_priorities_task", "schedule": 60.0},
    "apply-deadline-rules": {"task": "reviewapp.tasks.apply_deadline_rules_task", "schedule": 60.0},
    "top-up-gold-checks": {"task": "reviewapp.tasks.top_up_gold_task", "schedule": 120.0},
    "roll-up-metrics": {"task": "reviewapp.tasks.roll_up_metrics_task", "schedule": 60.0},
    "purge-expired-media": {
        "task": "reviewapp.tasks.purge_expired_media_task",
        "schedule": crontab(minute=17),
    },
}

app = Celery("checkout_review")
app.config_from_object("django.conf:settings", namespace="CELERY")
_extra = [q.strip() for q in os.environ.get("CELERY_EXTRA_QUEUES", "").split(",") if q.strip()]
app.conf.task_queues = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in (*QUEUES, *_extra)
]
app.conf.task_create_missing_queues = False
app.conf.beat_schedule = BEAT_SCHEDULE
app.autodiscover_tasks(["reviewapp"])
