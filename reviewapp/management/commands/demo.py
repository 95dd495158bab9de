"""`make demo`: set up the database and demo users, then run web, worker and beat together.

Ctrl-C (or SIGTERM) stops all three and waits for them: no orphaned worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

QUIET_STORE = "Demo Store (quiet aisle)"


class Command(BaseCommand):
    help = "Run the whole product on this machine: web server, Celery worker and beat."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--seed", type=int, default=2026, help="seed of the simulated store's footage")
        parser.add_argument("--no-scene", action="store_true", help="start without simulating a store")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("the demo runs with DEBUG on (it creates demo users with known passwords)")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Demo logins:")
        call_command("create_demo_users", stdout=self.stdout)
        if not options["no_scene"]:
            self._simulated_store(seed=options["seed"], preset="mixed", store_name="Demo Store")

        python = sys.executable
        addr = f"{options['host']}:{options['port']}"
        commands = {
            "web": [python, "manage.py", "runserver", "--noreload", addr],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "tracking,media,settlement,default",
                "--concurrency",
                str(options["concurrency"]),
                "--prefetch-multiplier=1",
                "-l",
                "INFO",
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "INFO"],
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, cmd in commands.items():
                # own process group, so our Ctrl-C handling decides the order of shutdown
                procs[name] = subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
            self.stdout.write(
                self.style.SUCCESS(f"\nOpen http://{addr}/ and log in. Ctrl-C stops everything.\n")
            )
            if not options["no_scene"]:
                # a quiet aisle (lone shoppers) while the worker tracks the busy one: most of its
                # carts are confident and settle without a person
                self._simulated_store(seed=options["seed"] + 1, preset="easy", store_name=QUIET_STORE)
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the demo")
                        stopping = True
                time.sleep(0.5)
        finally:
            self._stop_all(procs)

    def _simulated_store(self, *, seed: int, preset: str, store_name: str) -> None:
        """Render one scene (cached under var/) and ingest it as a store; the worker takes it from there."""
        from reviewapp.models import Footage
        from tracking.simulator import simulate

        scene_dir = settings.VAR_DIR / f"demo-scene-{preset}-{seed}"
        if not (scene_dir / "footage.mp4").exists():
            self.stdout.write(f"Simulating {store_name} ({preset} preset, seed {seed}) into {scene_dir} ...")
            simulate(scene_dir, seed=seed, preset=preset)
        if Footage.objects.filter(store__name=store_name).exists():
            self.stdout.write(
                f"{store_name} has its footage from an earlier run (`make clean` starts afresh)."
            )
            return
        from reviewapp.services.audit import Actor
        from reviewapp.services.ingest import IngestError, scene_ingest

        try:
            result = scene_ingest(scene_dir=scene_dir, store_name=store_name, actor=Actor(label="demo"))
        except IngestError as exc:
            self.stdout.write(f"Not ingesting the demo scene again: {exc}")
            return
        self.stdout.write(f"{store_name}: ingested {len(result.visits)} visits; tracking is queued.")

    def _stop_all(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                # the main process only: a Celery worker stops its own pool children (warm shutdown)
                proc.terminate()
        deadline = time.monotonic() + 20
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.stdout.write("Stopped web, worker and beat.")
