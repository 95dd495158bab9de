"""Settings are driven by the environment and fail loudly, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE']); print(s.CELERY_BROKER_URL); print(s.DEBUG)"
)


def run_with_env(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_work_with_no_environment(tmp_path: Path) -> None:
    result = run_with_env(tmp_path)
    assert result.returncode == 0, result.stderr
    engine, broker, debug = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://localhost//"
    assert debug == "True"


def test_a_bad_database_url_fails_naming_the_variable(tmp_path: Path) -> None:
    result = run_with_env(tmp_path, DATABASE_URL="mysql-ish://nope")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_production_without_secret_key_fails_naming_the_variable(tmp_path: Path) -> None:
    result = run_with_env(tmp_path, DEBUG="0", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_a_bad_boolean_fails_naming_the_variable(tmp_path: Path) -> None:
    result = run_with_env(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG" in result.stderr


def test_a_bad_broker_url_fails_naming_the_variable(tmp_path: Path) -> None:
    result = run_with_env(tmp_path, CELERY_BROKER_URL="kafka://x")
    assert result.returncode != 0
    assert "CELERY_BROKER_URL" in result.stderr


def test_every_variable_the_settings_read_is_in_env_example() -> None:
    import re

    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env(?:_bool|_int|_float|_list|_choice)?\(\s*"([A-Z_]+)"', source))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', source))
    read |= set(re.findall(r'database_from_env\(name: str = "([A-Z_]+)"', source))
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - listed == set()


def test_production_settings_pass_the_deploy_checks(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(tmp_path),
        "DEBUG": "0",
        "SECRET_KEY": "x7Gq2pLz9vR4mN8kT1wY6uB3cE5hJ0aS-dF_gH2jK4lZ6xC8vB0nM",
        "ALLOWED_HOSTS": "review.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_login_is_throttled_after_repeated_failures(client, db, settings) -> None:
    from tests.conftest import make_user

    make_user("locky", "reviewer")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "locky", "password": "wrong"})
    response = client.post("/login/", {"username": "locky", "password": "pw-locky"})
    assert response.status_code in (403, 429) or b"locked" in response.content.lower()
