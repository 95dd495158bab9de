"""Personas for every role, and a real Celery worker for the tests that need the queue."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str, *roles: str, **extra: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
    # get_or_create: a transactional test's flush removes the groups the migration made
    user.groups.set([Group.objects.get_or_create(name=role)[0] for role in roles])
    return user


@pytest.fixture
def reviewer(db: None) -> Any:
    return make_user("rita", "reviewer")


@pytest.fixture
def other_reviewer(db: None) -> Any:
    return make_user("oscar", "reviewer")


@pytest.fixture
def supervisor(db: None) -> Any:
    return make_user("sue", "supervisor", "reviewer")


@pytest.fixture
def auditor(db: None) -> Any:
    return make_user("aud", "auditor")


@pytest.fixture
def outsider(db: None) -> Any:
    return make_user("nobody")


@pytest.fixture
def store(db: None) -> Any:
    from reviewapp.models import Store

    # no random second opinions or gold checks unless a test asks for them
    return Store.objects.create(name="Corner Shop", currency="USD", second_opinion_percent=0, gold_percent=0)


@pytest.fixture
def make_transaction(store: Any) -> Callable[..., Any]:
    """A transaction with a visit; state and amounts as given."""
    from datetime import timedelta

    from django.utils import timezone

    from reviewapp.models import Transaction, Visit
    from reviewapp.tokens import token_hash, token_last4

    counter = {"n": 0}

    def make(state: str = "needs_review", **fields: Any) -> Transaction:
        counter["n"] += 1
        token = f"pm_test{counter['n']:04d}"
        now = timezone.now()
        visit = Visit.objects.create(
            store=store,
            external_id=f"visit-{counter['n']}",
            token_hash=token_hash(token),
            token_last4=token_last4(token),
            entered_at=now - timedelta(minutes=10),
            exited_at=now - timedelta(minutes=2),
        )
        fields.setdefault("currency", store.currency)
        return Transaction.objects.create(store=store, visit=visit, state=state, **fields)

    return make


def database_url_of_test_db() -> str:
    from django.db import connection

    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{cfg['NAME']}"


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(
    extra_env: dict[str, str] | None = None,
    *,
    concurrency: int = 2,
    queues: str = "tracking,media,settlement,default",
) -> Worker:
    """Start a real `celery worker` process on the configured broker, consuming every queue.

    On the embedded defaults the broker is the filesystem transport in this run's own
    folder (tests/isolation.py), so a running demo cannot steal test tasks; in CI it is
    Redis. The worker uses the test database; tests that use it need
    `transactional_db`, since the worker only sees committed rows.
    """
    from django.conf import settings

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["DATABASE_URL"] = database_url_of_test_db()
    env["CELERY_BROKER_DIR"] = str(settings.CELERY_BROKER_DIR)
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["RETRY_BASE_SECONDS"] = "0.2"
    env.update(extra_env or {})
    tmp = Path(tempfile.mkdtemp(prefix="cr-worker-"))
    log = tmp / "worker.log"
    cmd = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
        "--pool", "prefork", "--concurrency", str(concurrency), "--prefetch-multiplier=1", "-l", "INFO",
        "--without-heartbeat", "--without-mingle", "--without-gossip", "-n", f"test-{os.getpid()}-{tmp.name}@%h",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(proc, log)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start:\n{worker.output()[-4000:]}")
        time.sleep(0.2)
    return worker


def stop_worker(worker: Worker) -> None:
    proc = worker.proc
    proc.terminate()  # the main process only: it stops its pool children itself (warm shutdown)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: Any) -> Iterator[Worker]:
    """One real worker for the whole run (see start_worker)."""
    with django_db_blocker.unblock():
        worker = start_worker()
    yield worker
    stop_worker(worker)


@pytest.fixture
def worker_factory(transactional_db: None) -> Iterator[Callable[..., Worker]]:
    """Start workers with their own environment (e.g. a misbehaving gateway); stopped after the test."""
    started: list[Worker] = []

    def start(concurrency: int = 2, queues: str = "tracking,media,settlement,default", **env: str) -> Worker:
        worker = start_worker(env, concurrency=concurrency, queues=queues)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_worker(worker)


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 30,
    what: str = "condition",
    worker: Worker | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\nworker log:\n{worker.output()[-3000:]}" if worker else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        time.sleep(0.1)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Tests marked `postgres` skip, with the reason, when the database is SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory: Any) -> Path:
    """A short, small mixed scene rendered once per test run (a few seconds)."""
    from tracking.simulator import simulate

    out = tmp_path_factory.mktemp("scene-small")
    simulate(out, seed=11, preset="mixed", shoppers=2, duration=20, width=640, height=360, fps=15)
    return out
