"""Benchmark: claim-next latency with many reviewers claiming at once, and no double claims.

    python manage.py bench_claim --reviewers 32 --claims 10000            # all three modes
    python manage.py bench_claim --mode burst                             # one of them
    python manage.py bench_claim --think-ms 250                           # paced only, as before

Each reviewer is a separate process with its own database connection. Three ways to
read "32 reviewers claiming at once", each run on a fresh queue of `--claims` tasks:

- closed: every reviewer claims again the moment its claim returns. The worst case:
  it keeps `--reviewers` claims in flight all the time, so on a machine with fewer
  cores than that it measures CPU saturation (Little's law: latency = in flight /
  throughput), not the claim.
- burst: all reviewers wait at a barrier, claim at the same instant, and wait again,
  round after round until `--claims`. The issue's wording taken literally; it also
  prints how long each round takes to serve its last reviewer.
- paced: each reviewer pauses a random 0-2x `--think-ms` between claims (a person
  looks at a clip between claims), so claims overlap the way they do in a store.

After a claim the reviewer marks the task done (one plain UPDATE, not timed) so its
next claim takes a new task. Needs PostgreSQL (DATABASE_URL); it writes stores,
tasks, users and audit records, so point it at a scratch database (`make bench`
does). Tasks an earlier run left queued are retired first, so every run starts from
a queue of exactly `--claims` tasks.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.utils import timezone

MODES = ("closed", "burst", "paced")
STORE_PREFIX = "bench-claim-"


def _cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU of a process on this host (the database server's backend), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _machine_busy() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class ReviewerResult:
    claims: list[tuple[int, float, float, float]] = field(default_factory=list)  # id, start, end, seconds
    finish_mismatches: int = 0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    error: str = ""


def _reviewer(
    user_id: int,
    mode: str,
    index: int,
    n_reviewers: int,
    n_claims: int,
    think_ms: float,
    deadline: float,
    budget: Any,
    barrier: Any,
    out: Any,
) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    settings.DEBUG = False  # as in production: with DEBUG on, Django's cursor logs every query

    from reviewapp.services.review import claim_next_task

    connections.close_all()  # never share the parent's connection
    user = get_user_model().objects.get(pk=user_id)
    from reviewapp.access import roles_of

    roles_of(user)  # cached on the user, as on a logged-in request
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    server_cpu_before = _cpu_seconds_of(backend)
    cpu_before = time.process_time()
    rng = random.Random(user_id)
    result = ReviewerResult()

    def claim_once() -> bool:
        started = time.monotonic()  # system-wide clock on Linux: comparable across processes
        task = claim_next_task(reviewer=user)
        ended = time.monotonic()
        if task is None:
            return False
        result.claims.append((task.pk, started, ended, ended - started))
        with connection.cursor() as cursor:  # finish it (untimed) so the next claim takes a new task
            cursor.execute(
                "UPDATE reviewapp_reviewtask SET state = 'done', done_at = now()"
                " WHERE id = %s AND state = 'assigned' AND assignee_id = %s",
                [task.pk, user.pk],
            )
            result.finish_mismatches += cursor.rowcount != 1
        return True

    try:
        if mode == "burst":
            for round_no in range((n_claims + n_reviewers - 1) // n_reviewers):
                barrier.wait(timeout=120)
                if round_no * n_reviewers + index < n_claims and time.monotonic() < deadline:
                    claim_once()
        else:
            while time.monotonic() < deadline:
                if mode == "paced":
                    time.sleep(rng.uniform(0, 2 * think_ms) / 1000)
                with budget.get_lock():
                    if budget.value <= 0:
                        break
                    budget.value -= 1
                if not claim_once():
                    break
    except Exception as exc:  # noqa: BLE001 - reported by the parent, which must not wait forever
        result.error = f"{type(exc).__name__}: {exc}"
        barrier.abort()  # a reviewer that stops breaks the barrier for the others
    result.client_cpu = time.process_time() - cpu_before
    server_cpu_after = _cpu_seconds_of(backend)
    if server_cpu_before is not None and server_cpu_after is not None:
        result.server_cpu = server_cpu_after - server_cpu_before
    out.put(result)
    connections.close_all()


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of `values` in milliseconds."""
    ms = sorted(v * 1000 for v in values)
    if len(ms) < 2:
        return (ms[0], ms[0], ms[0]) if ms else (0.0, 0.0, 0.0)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return q[49], q[98], ms[-1]


class Command(BaseCommand):
    help = "Measure claim_next_task latency with N reviewer processes claiming at once (PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reviewers", type=int, default=32)
        parser.add_argument("--claims", type=int, default=10_000, help="claims per mode")
        parser.add_argument("--mode", choices=(*MODES, "all"), help="default: all, or paced with --think-ms")
        parser.add_argument(
            "--think-ms",
            type=float,
            help="paced mode: mean pause between a reviewer's claims (default 250)",
        )
        parser.add_argument("--seconds", type=float, default=300.0, help="stop a mode after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "run this on PostgreSQL: DATABASE_URL=postgres://... python manage.py bench_claim"
            )
        mode = options["mode"] or ("paced" if options["think_ms"] is not None else "all")
        think_ms = options["think_ms"] if options["think_ms"] is not None else 250.0
        cores = os.cpu_count() or 1
        self.stdout.write(
            f"claim benchmark: {options['reviewers']} reviewer processes, {options['claims']} claims per mode, "
            f"on {cores} cores (Django DEBUG off in them); load average {self._load()} before"
        )
        for name in MODES if mode == "all" else (mode,):
            self._run(name, options["reviewers"], options["claims"], think_ms, options["seconds"], cores)

    @staticmethod
    def _load() -> str:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())

    def _seed(self, n_reviewers: int, n_claims: int) -> list[int]:
        """A fresh store with `n_claims` queued tasks and `n_reviewers` reviewers; earlier runs' leftovers retired."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from reviewapp.models import ReviewTask, Store, Transaction, Visit

        ReviewTask.objects.filter(
            transaction__store__name__startswith=STORE_PREFIX, state__in=("queued", "assigned")
        ).update(state="done", done_at=timezone.now())
        stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
        store = Store.objects.create(name=f"{STORE_PREFIX}{stamp}")
        now = timezone.now()
        visits = Visit.objects.bulk_create(
            Visit(store=store, external_id=f"b{i}", token_hash="0" * 64, token_last4="0000", entered_at=now)
            for i in range(n_claims)
        )
        txns = Transaction.objects.bulk_create(
            Transaction(store=store, visit=v, state="needs_review", currency="USD") for v in visits
        )
        # five priorities and 120 deadlines: many ties, broken by id
        ReviewTask.objects.bulk_create(
            ReviewTask(transaction=t, priority=i % 5, settle_by=now + timedelta(minutes=i % 120))
            for i, t in enumerate(txns)
        )
        group, _ = Group.objects.get_or_create(name="reviewer")
        users = []
        for i in range(n_reviewers):
            user = get_user_model().objects.create(username=f"bench-{stamp}-{i}")
            user.groups.add(group)
            users.append(user.pk)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE reviewapp_reviewtask")
        queued = ReviewTask.objects.filter(state="queued").count()
        if queued != n_claims:
            self.stdout.write(
                f"  note: {queued} tasks queued in all, {queued - n_claims} of them not the bench's"
            )
        return users

    def _run(
        self, mode: str, n_reviewers: int, n_claims: int, think_ms: float, seconds: float, cores: int
    ) -> None:
        users = self._seed(n_reviewers, n_claims)
        connections.close_all()
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        budget = ctx.Value("i", n_claims)
        barrier = ctx.Barrier(n_reviewers)
        load_before = self._load()
        busy_before = _machine_busy()
        deadline = time.monotonic() + seconds
        procs = [
            ctx.Process(
                target=_reviewer,
                args=(pk, mode, i, n_reviewers, n_claims, think_ms, deadline, budget, barrier, out),
            )
            for i, pk in enumerate(users)
        ]
        started = time.monotonic()
        for p in procs:
            p.start()
        results: list[ReviewerResult] = [out.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.monotonic() - started
        busy_after = _machine_busy()

        claims = [c for r in results for c in r.claims]
        ids = [c[0] for c in claims]
        double = len(ids) - len(set(ids))
        mismatches = sum(r.finish_mismatches for r in results)
        p50, p99, worst = _quantiles([c[3] for c in claims])
        label = {
            "closed": "closed loop (no pause)",
            "burst": "burst (barrier)",
            "paced": f"paced (think {think_ms:.0f} ms)",
        }
        w = self.stdout.write
        w(f"\n{label[mode]}: {len(ids)} claims in {wall:.1f} s, {len(ids) / wall:.0f} claims/s")
        w(f"  latency ms: p50 {p50:.1f}  p99 {p99:.1f}  max {worst:.1f}")
        if mode == "burst":
            rounds: dict[int, list[tuple[float, float]]] = {}
            for r in results:
                for n, c in enumerate(r.claims):
                    rounds.setdefault(n, []).append((c[1], c[2]))
            spans = [max(e for _, e in v) - min(s for s, _ in v) for v in rounds.values()]
            r50, r99, rmax = _quantiles(spans)
            w(
                f"  a round ({n_reviewers} claims at once) served in full, ms: p50 {r50:.1f}  p99 {r99:.1f}  max {rmax:.1f}"
            )
        for error in sorted({r.error for r in results if r.error}):
            w(f"  a reviewer process stopped early: {error}")
        w(f"  double claims: {double}   finish updates that found the task not theirs: {mismatches}")
        client = sum(r.client_cpu for r in results)
        server = [r.server_cpu for r in results]
        cpu = f"  CPU per claim (with its untimed finish): clients {client / max(len(ids), 1) * 1000:.2f} ms"
        if all(s is not None for s in server):
            cpu += f", database backends {sum(s for s in server if s) / max(len(ids), 1) * 1000:.2f} ms"
        w(cpu)
        if busy_before and busy_after:
            busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
            ours = (client + sum(s or 0 for s in server)) / (wall * cores)
            w(
                f"  machine: {cores} cores {busy:.0%} busy during the run ({ours:.0%} by these clients and their backends); "
                f"load average {load_before} before, {self._load()} after"
            )
        if mode == "closed":
            w(
                f"  why: {n_reviewers} claims are always in flight, so mean latency = {n_reviewers} / throughput "
                f"= {n_reviewers / max(len(ids) / wall, 1e-9) * 1000:.0f} ms (Little's law). With {n_reviewers} client "
                f"processes and the database on {cores} cores this measures CPU saturation, not one claim; "
                "burst and paced show the claim itself with the same reviewers and the same machine."
            )
