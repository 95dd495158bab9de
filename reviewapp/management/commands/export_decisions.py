"""Export decisions as CSV or JSON Lines, with the auditor page's filters, in constant memory.

    python manage.py export_decisions --since 2025-01-01 --until 2025-01-31 \
        --store "Corner Shop" --outcome adjusted --format jsonl --out january.jsonl

Same filters, same rows and same bytes as the search page's export links; recorded
in the audit log as `export.decisions` by "command:export_decisions".
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.forms_audit import form_from_options
from reviewapp.services.exports import FORMATS, export_chunks, export_record

ACTOR = "command:export_decisions"


class Command(BaseCommand):
    # No system checks: they import the URLconf and with it the tracker (OpenCV, numpy),
    # tens of MB this process never uses.
    requires_system_checks: list[str] = []
    help = "Export decisions (CSV or JSON Lines) with the auditor's filters; streamed, constant memory."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--transaction",
            dest="q",
            help="A transaction's code (or its first 8 characters) or its visit's id.",
        )
        parser.add_argument("--since", help="First day (YYYY-MM-DD, UTC), by decision date.")
        parser.add_argument("--until", help="Last day, inclusive (YYYY-MM-DD, UTC).")
        parser.add_argument("--store", help="Store name or code.")
        parser.add_argument("--reviewer", help="Reviewer username.")
        parser.add_argument("--outcome", help="approved, adjusted, escalated or voided.")
        parser.add_argument("--min-amount", help="Decided amount at least this (major units, e.g. 12.50).")
        parser.add_argument("--max-amount", help="Decided amount at most this (major units).")
        parser.add_argument("--token", help="Payment token (hashed, never stored) or its last four.")
        parser.add_argument("--token-hash", help="The token's keyed hash, as the page's links carry it.")
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument("--out", default="-", help="File to write, or - for standard output.")
        parser.add_argument("--page-size", type=int, default=5000, help="Rows per keyset page.")

    def handle(self, *args: Any, **options: Any) -> None:
        form = form_from_options(options)
        if not form.is_valid():
            problems = "; ".join(
                f"--{field.replace('_', '-')}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
                for field, errors in form.errors.items()
            )
            raise CommandError(problems)
        filters = form.filters()
        fmt = options["format"]
        export_record(actor=ACTOR, filters=filters, fmt=fmt, via="command")
        started = time.monotonic()
        written = 0
        rows = [0]

        def count(n: int) -> None:
            rows[0] += n

        out = sys.stdout.buffer if options["out"] == "-" else open(options["out"], "wb")  # noqa: SIM115
        try:
            for chunk in export_chunks(
                filters=filters, fmt=fmt, page_size=options["page_size"], on_page=count
            ):
                out.write(chunk)
                written += len(chunk)
        finally:
            if out is not sys.stdout.buffer:
                out.close()
            else:
                out.flush()
        elapsed = time.monotonic() - started
        self.stderr.write(
            f"exported {rows[0]} decisions ({written / 1e6:.1f} MB {fmt}) in {elapsed:.1f} s"
            f" ({rows[0] / elapsed if elapsed else 0:,.0f} rows/s)"
        )
