"""Loaded with `-p tests.isolation` (pyproject addopts), before Django reads its settings.

The test run gets its own filesystem-broker folder and media folder, so a `make demo`
running on the same machine never takes the tests' Celery messages or files, nor the
tests the demo's.
"""

import os
import tempfile

_run = tempfile.mkdtemp(prefix="cr-test-")
if not os.environ.get("CELERY_BROKER_URL", "").strip() or os.environ["CELERY_BROKER_URL"].startswith(
    "filesystem"
):
    os.environ["CELERY_BROKER_DIR"] = os.path.join(_run, "broker")
os.environ["MEDIA_ROOT"] = os.path.join(_run, "media")
