"""Loaded with `-p tests.isolation` (pyproject addopts), before Django reads its settings.

The test run gets its own filesystem-broker folder, media folder and test database, so
a `make demo` or another test run on the same machine never takes the tests' Celery
messages, files or rows, nor the tests theirs.
"""

import os
import tempfile

_run = tempfile.mkdtemp(prefix="cr-test-")
if not os.environ.get("CELERY_BROKER_URL", "").strip() or os.environ["CELERY_BROKER_URL"].startswith(
    "filesystem"
):
    os.environ["CELERY_BROKER_DIR"] = os.path.join(_run, "broker")
os.environ["MEDIA_ROOT"] = os.path.join(_run, "media")
# Two test runs at once (two developers, or CI beside a developer) must not share a test database.
if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
    os.environ.setdefault("TEST_DATABASE_NAME", f"test_cr_{os.getpid()}")
else:
    os.environ.setdefault("TEST_DATABASE_NAME", os.path.join(_run, "test-db.sqlite3"))
