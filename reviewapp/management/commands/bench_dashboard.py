"""Benchmark: the supervisor dashboard's response time over each window.

python manage.py generate_history --transactions 1000000   # into a scratch PostgreSQL database
python manage.py rollup_metrics --days 31
python manage.py bench_dashboard
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.test import Client
from django.test.utils import setup_test_environment

from reviewapp.models import Decision, Transaction
from reviewapp.selectors import WINDOWS


class Command(BaseCommand):
    help = "Time the supervisor dashboard page for each window (median and max of several requests)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--runs", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        setup_test_environment()  # the test client's host and session handling, nothing else
        user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
        user.groups.add(Group.objects.get_or_create(name="supervisor")[0])
        client = Client()
        client.force_login(user)
        self.stdout.write(f"{Transaction.objects.count()} transactions, {Decision.objects.count()} decisions")
        for window in WINDOWS:
            times = []
            for _ in range(options["runs"] + 1):
                started = time.perf_counter()
                response = client.get(f"/supervise/?window={window}")
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"dashboard answered {response.status_code}")
            warm = times[1:]  # the first request warms caches
            self.stdout.write(
                f"window {window:>4}: median {statistics.median(warm):6.1f} ms, max {max(warm):6.1f} ms"
            )
