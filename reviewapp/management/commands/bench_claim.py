"""Benchmark: claim-next latency with many reviewers claiming at once, and no double claims.

    python manage.py bench_claim --reviewers 32 --claims 10000

Needs PostgreSQL (DATABASE_URL); each reviewer is a separate process. It writes a
store, tasks, users and audit records: point it at a scratch database (`make bench`
does).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.utils import timezone


def _reviewer_loop(user_id: int, deadline: float, out: Any, stop_after: Any, think_ms: float) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from reviewapp.models import ReviewTask
    from reviewapp.services.review import claim_next_task
    from reviewapp.states import TaskState

    connections.close_all()
    user = get_user_model().objects.get(pk=user_id)
    import random

    rng = random.Random(user_id)
    results = []
    while time.monotonic() < deadline:
        if think_ms:  # a reviewer looks at the clip between claims
            time.sleep(rng.uniform(0, 2 * think_ms) / 1000)
        with stop_after.get_lock():
            if stop_after.value <= 0:
                break
            stop_after.value -= 1
        started = time.perf_counter()
        task = claim_next_task(reviewer=user)
        elapsed = time.perf_counter() - started
        if task is None:
            break
        results.append((task.pk, elapsed))
        # finish it (untimed) so the next claim takes a new task
        ReviewTask.objects.filter(pk=task.pk, assignee=user).update(
            state=TaskState.DONE, done_at=timezone.now()
        )
    out.put(results)
    connections.close_all()


class Command(BaseCommand):
    help = "Measure claim_next_task latency with N reviewer processes claiming at once (PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reviewers", type=int, default=32)
        parser.add_argument("--claims", type=int, default=10_000)
        parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long in any case")
        parser.add_argument(
            "--think-ms",
            type=float,
            default=0.0,
            help="mean pause between a reviewer's claims (0: claim again at once, the saturating worst case)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "run this on PostgreSQL: DATABASE_URL=postgres://... python manage.py bench_claim"
            )
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from reviewapp.models import ReviewTask, Store, Transaction, Visit

        n_reviewers, n_claims = options["reviewers"], options["claims"]
        stamp = timezone.now().strftime("%Y%m%d%H%M%S")
        store = Store.objects.create(name=f"bench-claim-{stamp}")
        now = timezone.now()
        self.stdout.write(f"Creating {n_claims} queued tasks and {n_reviewers} reviewers ...")
        visits = Visit.objects.bulk_create(
            Visit(store=store, external_id=f"b{i}", token_hash="0" * 64, token_last4="0000", entered_at=now)
            for i in range(n_claims)
        )
        txns = Transaction.objects.bulk_create(
            Transaction(store=store, visit=v, state="needs_review", currency="USD") for v in visits
        )
        ReviewTask.objects.bulk_create(
            ReviewTask(transaction=t, priority=i % 5, settle_by=now + timedelta(minutes=i % 120))
            for i, t in enumerate(txns)
        )
        group, _ = Group.objects.get_or_create(name="reviewer")
        users = []
        for i in range(n_reviewers):
            user = get_user_model().objects.create(username=f"bench-{stamp}-{i}")
            user.groups.add(group)
            users.append(user)
        connections.close_all()

        ctx = mp.get_context("fork")
        out = ctx.Queue()
        budget = ctx.Value("i", n_claims)
        deadline = time.monotonic() + options["seconds"]
        procs = [
            ctx.Process(target=_reviewer_loop, args=(u.pk, deadline, out, budget, options["think_ms"]))
            for u in users
        ]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results: list[tuple[int, float]] = []
        for _ in procs:
            results.extend(out.get())
        for p in procs:
            p.join()
        wall = time.perf_counter() - started

        ids = [pk for pk, _ in results]
        latencies = sorted(t * 1000 for _, t in results)
        double = len(ids) - len(set(ids))
        q = statistics.quantiles(latencies, n=100)
        self.stdout.write(
            f"claims {len(ids)} by {n_reviewers} reviewer processes (think {options['think_ms']:.0f} ms) in {wall:.1f}s "
            f"({len(ids) / wall:.0f} claims/s)\n"
            f"latency ms: p50 {q[49]:.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}  max {latencies[-1]:.1f}\n"
            f"double claims: {double}"
        )
