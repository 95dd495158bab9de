"""Benchmark the review pipeline on real workers and a real broker.

    python manage.py bench_pipeline [--scenes 3] [--preset mixed]

Prints: the time to cut one 10 s clip; for each flagged transaction the time from
being flagged (triage) to a reviewable task (clips cut, task queued), with a footage's
flagged carts arriving together and, the target's case, one at a time; how long before
their footage was done being tracked carts were triaged (each as the tracker hands it
out); and the transactions processed per minute through the whole pipeline with one worker per
queue. It writes stores and footage into the configured database: use a scratch one
(`make bench` points it at a temporary SQLite file and broker folder).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Command(BaseCommand):
    help = "Measure clip cutting, flag-to-reviewable time and pipeline throughput on real workers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--scenes", type=int, default=3)
        parser.add_argument("--preset", default="mixed")
        parser.add_argument("--cache", type=Path, default=settings.BASE_DIR / "var" / "bench-scenes")
        parser.add_argument("--timeout", type=float, default=600)
        parser.add_argument(
            "--lone", type=int, default=12, help="flagged transactions triaged again one at a time (step 4)"
        )
        parser.add_argument(
            "--glob",
            help="use the finished scene folders in --cache matching this pattern (e.g. 'mixed-*-1280x720'), "
            "in name order, instead of rendering pipeline-<preset>-<seed> ones",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from reviewapp.models import Footage, ReviewTask, Transaction
        from tracking.clips import cut_clip
        from tracking.simulator import simulate

        scenes: list[Path] = []
        if options["glob"]:
            found = sorted(p for p in options["cache"].glob(options["glob"]) if (p / "visits.json").exists())
            scenes = [p for p in found if not p.name.endswith(".tmp")][: options["scenes"]]
            if not scenes:
                raise CommandError(f"no finished scene matches {options['glob']!r} in {options['cache']}")
        for n in range(options["scenes"] - len(scenes) if not options["glob"] else 0):
            seed = 9100 + n
            folder = options["cache"] / f"pipeline-{options['preset']}-{seed}"
            if not (folder / "footage.mp4").exists():
                self.stdout.write(f"rendering {folder.name} ...")
                simulate(folder, seed=seed, preset=options["preset"])
            scenes.append(folder)

        self.stdout.write(f"load average at the start: {self._load()}")
        # 1. clip cutting
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(20):
                started = time.perf_counter()
                cut_clip(scenes[0] / "footage.mp4", Path(tmp) / f"c{i}.mp4", start=10.0 + i, end=20.0 + i)
                times.append(time.perf_counter() - started)
        self.stdout.write(
            f"cut a 10 s 720p clip: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
        )

        # 2 and 3: the whole pipeline with one worker per queue
        workers = self._start_workers()
        try:
            # 2. flag to reviewable on an otherwise idle machine: one footage file at a time
            idle_ids = []
            for folder in scenes:
                footage_id = self._ingest(folder, tag="idle")
                self._wait([footage_id], options["timeout"])
                idle_ids.append(footage_id)
            # 3. throughput: every footage file arrives at once
            t0 = time.perf_counter()
            busy_ids = [self._ingest(folder, tag="load") for folder in scenes]
            self._wait(busy_ids, options["timeout"])
            elapsed = time.perf_counter() - t0
            # 4. a lone flagged transaction on an idle machine: nothing else queued or running
            lone = self._lone(idle_ids, options["lone"], options["timeout"])
        finally:
            for proc in workers:
                proc.terminate()
            for proc in workers:
                proc.wait(timeout=30)

        waits = []
        firsts: dict[int, float] = {}  # per footage, the first of its flagged transactions to be reviewable
        for txn in Transaction.objects.filter(footage_id__in=idle_ids, flagged=True):
            task = ReviewTask.objects.filter(transaction=txn).order_by("created_at").first()
            if task and txn.triaged_at and txn.footage_id is not None:
                wait = (task.created_at - txn.triaged_at).total_seconds()
                waits.append(wait)
                firsts[txn.footage_id] = min(wait, firsts.get(txn.footage_id, wait))
        if waits:
            self.stdout.write(
                f"flag to reviewable (idle, one footage at a time): median {statistics.median(waits):.2f}s, "
                f"p95 {_pct(waits, 0.95):.2f}s, max {max(waits):.2f}s over {len(waits)} flagged transactions"
            )
            # a footage's flagged transactions are triaged together and share the one media worker:
            # the first to be ready had nothing ahead of it, what a lone flagged transaction would see
            self.stdout.write(
                f"  of which the first of each footage (nothing ahead in the media queue): "
                f"{', '.join(f'{v:.2f}s' for v in sorted(firsts.values()))}"
            )
        # carts are triaged as the tracker hands them out, while the rest of their footage is read
        ahead = []
        for txn in Transaction.objects.filter(footage_id__in=idle_ids).select_related("footage"):
            assert txn.footage is not None
            if txn.triaged_at and txn.footage.processed_at:
                ahead.append((txn.footage.processed_at - txn.triaged_at).total_seconds())
        if ahead:
            # the carts handed out only at the end are recorded just before the footage's row is
            before = [a for a in ahead if a > 0.5]
            self.stdout.write(
                f"triaged while their footage was still tracked: {len(before)} of {len(ahead)} transactions"
                + (
                    f", median {statistics.median(before):.2f}s before, max {max(before):.2f}s"
                    if before
                    else ""
                )
            )
        if lone:
            self.stdout.write(
                f"flag to reviewable (idle, a lone flagged transaction, the target's case): median "
                f"{statistics.median(lone):.2f}s, p95 {_pct(lone, 0.95):.2f}s, max {max(lone):.2f}s over {len(lone)}"
            )
        txns = list(Transaction.objects.filter(footage_id__in=busy_ids))
        flagged = sum(1 for t in txns if t.flagged)
        settled = sum(1 for t in txns if t.state == "settled")
        seconds = sum(Footage.objects.get(pk=pk).duration_s or 0 for pk in busy_ids)
        self.stdout.write(
            f"throughput: {len(scenes)} footage files ({seconds:.0f}s of video) at once, {len(txns)} transactions "
            f"({flagged} flagged, {settled} settled) done in {elapsed:.1f}s = "
            f"{len(txns) / elapsed * 60:.0f} transactions/minute with one worker per queue"
        )
        self.stdout.write(f"load average at the end: {self._load()} on {os.cpu_count()} cores")

    def _lone(self, footage_ids: list[int], count: int, timeout: float) -> list[float]:
        """Flag to reviewable for one flagged transaction at a time with every worker idle: each of
        the first `count` flagged transactions of these footage files is put back to `tracking`
        (its clips and review task deleted: this is a scratch database) and triaged again by the
        pipeline's own service, which flags it with the same reasons and queues its media; the
        time is from that triage to its review task, as in step 2."""
        from django.db import transaction as db

        from reviewapp.media import delete_file
        from reviewapp.models import ReviewTask, Transaction
        from reviewapp.services.pipeline import transaction_triage

        waits = []
        flagged = Transaction.objects.filter(footage_id__in=footage_ids, flagged=True).order_by("pk")
        for txn in list(flagged)[:count]:
            with db.atomic():
                for clip in txn.clips.all():
                    for field in (clip.file, clip.redacted_file, clip.poster):
                        delete_file(field)
                    clip.delete()
                ReviewTask.objects.filter(transaction=txn).delete()
                Transaction.objects.filter(pk=txn.pk).update(state="tracking", triaged_at=None)
                txn.refresh_from_db()
                transaction_triage(txn=txn)
            deadline = time.monotonic() + timeout
            while not (task := ReviewTask.objects.filter(transaction=txn).first()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"transaction {txn.pk} was not reviewable within {timeout}s")
                time.sleep(0.02)
            txn.refresh_from_db()
            assert txn.triaged_at is not None and txn.flagged
            waits.append((task.created_at - txn.triaged_at).total_seconds())
            time.sleep(1.0)  # let the media worker go back to waiting for work
        return waits

    def _load(self) -> str:
        """The machine's 1, 5 and 15 minute load: other work on it slows every figure above."""
        return " ".join(f"{v:.2f}" for v in os.getloadavg())

    def _ingest(self, folder: Path, *, tag: str) -> int:
        from reviewapp.services.audit import Actor
        from reviewapp.services.ingest import scene_ingest

        name = f"bench-{tag}-{timezone.now():%H%M%S%f}-{folder.name}"
        return scene_ingest(scene_dir=folder, store_name=name, actor=Actor(label="bench")).footage.pk

    def _wait(self, footage_ids: list[int], timeout: float) -> None:
        """Until each footage is tracked and each of its transactions is settled or has a review task."""
        from reviewapp.models import Footage, Transaction

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            txns = Transaction.objects.filter(footage_id__in=footage_ids)
            moving = txns.filter(state__in=["tracking", "auto_approved", "approved", "adjusted"]).exists()
            untasked = txns.filter(state="needs_review", tasks__isnull=True).exists()
            unfinished = (
                Footage.objects.filter(pk__in=footage_ids)
                .exclude(status__in=["processed", "failed"])
                .exists()
            )
            if not (moving or untasked or unfinished) and txns.exists():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the pipeline did not finish within {timeout}s")

    def _start_workers(self) -> list[subprocess.Popen[bytes]]:
        procs = []
        log_dir = Path(tempfile.mkdtemp(prefix="cr-bench-workers-"))
        for queue in ("tracking", "media", "settlement", "default"):
            log = open(log_dir / f"{queue}.log", "wb")  # noqa: SIM115 - lives as long as the worker
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-Q",
                        queue,
                        "--concurrency",
                        "1",
                        "--prefetch-multiplier=1",
                        "-n",
                        f"bench-{queue}@%h",
                        "-l",
                        "INFO",
                        "--without-mingle",
                        "--without-gossip",
                    ],  # fmt: skip
                    cwd=settings.BASE_DIR,
                    env=dict(os.environ),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        time.sleep(4)  # let them connect before work arrives
        self.stdout.write(f"workers: one per queue, logs in {log_dir}")
        return procs
