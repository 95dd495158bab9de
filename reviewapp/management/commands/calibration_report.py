from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.models import Store
from reviewapp.services.audit import Actor
from reviewapp.services.quality import calibration_report
from reviewapp.services.stores import store_policy_update


class Command(BaseCommand):
    help = "The tracker's reliability curve from human decisions, its calibration error, and the lowest threshold that meets a target error."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--store", required=True)
        parser.add_argument("--target-error", type=float, default=0.005)
        parser.add_argument("--apply", action="store_true", help="set the recommended threshold (audited)")

    def handle(self, *args: Any, **options: Any) -> None:
        store = Store.objects.filter(name=options["store"]).first()
        if store is None:
            raise CommandError(f"no store named {options['store']!r}")
        report = calibration_report(store=store, target_error=options["target_error"])
        out = self.stdout
        out.write(f"{store.name}: {report.decided} human-decided transactions")
        out.write(f"{'confidence':>12} {'carts':>6} {'mean conf':>10} {'right':>7}")
        for b in report.bins:
            out.write(f"{b.low:5.1f}-{b.high:<5.1f} {b.count:6d} {b.mean_confidence:10.3f} {b.accuracy:7.3f}")
        out.write(
            f"expected calibration error: {report.ece:.3f}" if report.ece is not None else "no decisions yet"
        )
        share = report.current_review_share
        out.write(
            f"current threshold {report.current_threshold:.3f}: review share "
            + (
                f"{share:.1%}, error among auto-approved {report.current_error or 0:.2%}"
                if share is not None
                else "n/a"
            )
        )
        if report.recommended_threshold is None:
            out.write(f"no threshold meets a {report.target_error:.2%} error on these decisions")
            return
        out.write(
            f"recommended threshold {report.recommended_threshold:.3f} for a {report.target_error:.2%} target: "
            f"review share {report.predicted_review_share:.1%}, error {report.predicted_error:.2%}"
        )
        if options["apply"]:
            store_policy_update(
                store=store,
                changes={"review_threshold": report.recommended_threshold},
                actor=Actor(label="command:calibration_report"),
                reason=f"calibration report, target error {report.target_error}",
            )
            out.write("applied")
