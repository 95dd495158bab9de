from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.models import Store
from reviewapp.services.audit import Actor
from reviewapp.services.quality import calibration_apply, calibration_report


class Command(BaseCommand):
    help = "The tracker's reliability curve from human decisions, its calibration error, and the lowest threshold that meets a target error."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--store", required=True)
        parser.add_argument("--target-error", type=float, default=0.005)
        parser.add_argument(
            "--min-carts", type=int, default=20, help="decided carts a recommended threshold must rest on"
        )
        parser.add_argument("--apply", action="store_true", help="set the recommended threshold (audited)")

    def handle(self, *args: Any, **options: Any) -> None:
        store = Store.objects.filter(name=options["store"]).first()
        if store is None:
            raise CommandError(f"no store named {options['store']!r}")
        report = calibration_report(
            store=store, target_error=options["target_error"], min_auto=options["min_carts"]
        )
        out = self.stdout
        out.write(f"{store.name}: {report.decided} human-decided transactions")
        out.write(f"{'confidence':>12} {'carts':>6} {'mean conf':>10} {'right':>7}")
        for b in report.bins:
            out.write(f"{b.low:5.1f}-{b.high:<5.1f} {b.count:6d} {b.mean_confidence:10.3f} {b.accuracy:7.3f}")
        out.write(
            f"expected calibration error: {report.ece:.3f}" if report.ece is not None else "no decisions yet"
        )
        out.write(f"review shares over {report.triaged} triaged transactions; errors over decided carts")
        share = report.current_review_share
        out.write(
            f"current threshold {report.current_threshold:.3f}: review share "
            + (f"{share:.1%}" if share is not None else "n/a")
            + ", error among carts let through "
            + (
                f"{report.current_error:.2%} (on {report.current_error_carts} decided carts)"
                if report.current_error is not None
                else "n/a (no decided cart at or above it)"
            )
        )
        if report.recommended_threshold is None:
            out.write(f"no threshold meets a {report.target_error:.2%} error on these decisions")
            return
        out.write(
            f"recommended threshold {report.recommended_threshold:.4f} for a {report.target_error:.2%} target: "
            f"review share {report.predicted_review_share:.1%}, error {report.predicted_error:.2%} "
            f"(on {report.predicted_error_carts} decided carts; 95% upper bound {report.predicted_error_upper:.1%})"
        )
        if options["apply"]:
            calibration_apply(report=report, actor=Actor(label="command:calibration_report"))
            out.write("applied")
