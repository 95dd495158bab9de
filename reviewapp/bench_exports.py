"""Benchmark: decision exports (rows/s, peak RSS) and audit chain verification, on a filled database.

    DATABASE_URL=postgres://.../bench_audit python manage.py generate_history --transactions 1000000 --audit decisions
    DATABASE_URL=postgres://.../bench_audit python -m reviewapp.bench_exports [--seal] [--skip-verify]

Each measurement runs in its own process under `/usr/bin/time -v`, so the peak RSS is
that process's whole footprint (interpreter, Django, the export). The page's export
goes through Django's WSGI handler and middleware (the test client, logged in as a
`bench-auditor` it creates) and the streamed body is read and thrown away. Targets
(DESIGN.md, issue 7): at least 50,000 rows/s and under 150 MB RSS for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_ROWS_PER_S = 50_000
TARGET_RSS_MB = 150

PAGE_SNIPPET = """
import json, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

user, _ = get_user_model().objects.get_or_create(username="bench-auditor")
user.groups.add(Group.objects.get_or_create(name="auditor")[0])
client = Client(SERVER_NAME="localhost")
client.force_login(user)
fmt = sys.argv[1]
started = time.monotonic()
response = client.get(reverse(f"auditor:export-{fmt}"))
size = lines = 0
for chunk in response.streaming_content:
    size += len(chunk)
    lines += chunk.count(b"\\n")
elapsed = time.monotonic() - started
print(json.dumps({"status": response.status_code, "bytes": size, "lines": lines, "seconds": elapsed}))
"""


def timed(cmd: list[str]) -> tuple[str, str, float, float, float]:
    """Run under /usr/bin/time -v: (stdout, stderr, wall seconds, peak RSS in MB, CPU seconds)."""
    started = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss_mb = int(match.group(1)) / 1024 if match else float("nan")
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return proc.stdout, proc.stderr, wall, rss_mb, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seal", action="store_true", help="Seal pending audit events first (timed; writes)."
    )
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--formats", default="csv,jsonl")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    py = sys.executable
    results: list[dict[str, object]] = []

    if args.seal:
        out, err, wall, rss, cpu = timed([py, "manage.py", "verify_audit_log", "--seal"])
        print(f"seal + verify: {wall:.1f} s ({cpu:.1f} s CPU), peak RSS {rss:.0f} MB\n{out.strip()}")

    for fmt in args.formats.split(","):
        out, err, wall, rss, cpu = timed(
            [py, "manage.py", "export_decisions", "--format", fmt, "--out", os.devnull]
        )
        match = re.search(r"exported (\d+) decisions \(([\d.]+) MB \w+\) in ([\d.]+) s", err)
        if not match:
            raise SystemExit(f"export_decisions said:\n{err[-2000:]}")
        rows, mb, seconds = int(match.group(1)), float(match.group(2)), float(match.group(3))
        results.append({"via": "command", "format": fmt, "rows": rows, "MB": mb, "export_s": seconds,
                        "process_s": round(wall, 1), "rows_per_s": round(rows / seconds),
                        "cpu_s": round(cpu, 1), "peak_rss_MB": round(rss)})  # fmt: skip

        out, err, wall, rss, cpu = timed([py, "-c", PAGE_SNIPPET, fmt])
        page = json.loads(out.strip().splitlines()[-1])
        rows = page["lines"] - (1 if fmt == "csv" else 0)
        results.append({"via": "page", "format": fmt, "rows": rows, "MB": round(page["bytes"] / 1e6, 1),
                        "export_s": round(page["seconds"], 1), "process_s": round(wall, 1),
                        "rows_per_s": round(rows / page["seconds"]), "cpu_s": round(cpu, 1),
                        "peak_rss_MB": round(rss)})  # fmt: skip

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'via':8} {'format':6} {'rows':>10} {'MB':>7} {'export s':>9} {'rows/s':>9} {'CPU s':>6} {'peak RSS MB':>12}"
    )
    for r in results:
        ok = r["rows_per_s"] >= TARGET_ROWS_PER_S and r["peak_rss_MB"] < TARGET_RSS_MB  # type: ignore[operator]
        print(f"{r['via']:8} {r['format']:6} {r['rows']:>10,} {r['MB']:>7} {r['export_s']:>9} "
              f"{r['rows_per_s']:>9,} {r['cpu_s']:>6} {r['peak_rss_MB']:>12} {'ok' if ok else 'MISSED'}")  # fmt: skip

    if not args.skip_verify:
        out, err, wall, rss, cpu = timed([py, "manage.py", "verify_audit_log"])
        print(
            f"verify_audit_log: {wall:.1f} s (process, {cpu:.1f} s CPU), peak RSS {rss:.0f} MB\n{out.strip()}"
        )


if __name__ == "__main__":
    main()
