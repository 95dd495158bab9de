"""Verify the audit log's hash chain; exit 1 at the first broken link.

    python manage.py verify_audit_log          # reads only
    python manage.py verify_audit_log --seal   # seals pending records first (writes)

Without --seal nothing is written: records not sealed yet are counted, not checked.
The auditor page's "Run the verification" does the same check.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.selectors import audit_chain_check
from reviewapp.services.audit import audit_seal


class Command(BaseCommand):
    # No system checks: they import the URLconf and with it the tracker (OpenCV, numpy),
    # tens of MB this process never uses.
    requires_system_checks: list[str] = []
    help = "Verify the audit log's hash chain (read-only); report the first broken link, exit 1 if any."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--seal", action="store_true", help="Seal pending records first (this writes to the log)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["seal"]:
            started = time.monotonic()
            sealed = audit_seal()
            self.stdout.write(f"sealed {sealed} pending records in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        result = audit_chain_check()
        elapsed = time.monotonic() - started
        report = result["report"]
        self.stdout.write(
            f"checked {report.checked} sealed records in {elapsed:.1f} s; {report.unsealed} not sealed yet"
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("the chain is intact"))
            return
        broken = result["broken"] or {}
        raise CommandError(
            f"the chain is broken at record id {report.broken_at_id} (seq {broken.get('seq')}): {report.problem}",
            returncode=1,
        )
