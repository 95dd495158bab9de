"""Fill a database with a realistic review history, fast: for benchmarks and demos.

    python manage.py generate_history --transactions 1000000 --days 30 --audit decisions --seal

Stores, products and users go through the ORM (a handful); visits, transactions,
proposed lines, review tasks, decisions, charges, webhook deliveries and audit
events are written in batches of --batch transactions: COPY on PostgreSQL, one
executemany per table on SQLite. Every transaction was flagged and reviewed (one
decision each, plus a supervisor's for the ~3% escalated), so N transactions give
about 1.03 N decisions. Outcomes ~90% approved / 7% adjusted / 3% escalated;
escalations end approved, adjusted or voided; decided carts are settled.

Ids are assigned here (from the current maximum) and the sequences moved past
them afterwards: run it on a database nobody else is writing to. Audit events are
inserted unsealed, like the services do; `--seal` chains them with audit_seal() and
reports how long that took.
"""

from __future__ import annotations

import bisect
import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models
from django.db import transaction as db
from django.utils import timezone

from reviewapp.models import (
    AuditEvent,
    Charge,
    Decision,
    EvidenceEvent,
    Product,
    ProposedLine,
    ReviewTask,
    Store,
    Transaction,
    Visit,
    WebhookDelivery,
)
from reviewapp.tokens import token_hash

# Column order of each generated row: model field names (attname for foreign keys).
COLUMNS: dict[type[models.Model], tuple[str, ...]] = {
    Visit: ("id", "code", "store_id", "external_id", "token_hash", "token_last4", "entered_at", "exited_at",
            "gate_image", "created_at"),
    Transaction: ("id", "code", "store_id", "visit_id", "source", "state", "confidence", "currency",
                  "proposed_amount", "final_amount", "review_reasons", "flagged", "legal_hold", "created_at",
                  "triaged_at", "decided_at", "settled_at", "voided_at"),
    ProposedLine: ("id", "transaction_id", "product_id", "qty", "unit_price", "confidence"),
    EvidenceEvent: ("id", "code", "transaction_id", "product_id", "kind", "qty", "t_start", "t_end",
                    "confidence", "attribution_margin", "ambiguous", "before_crop", "after_crop"),
    ReviewTask: ("id", "code", "transaction_id", "kind", "state", "priority", "settle_by", "assignee_id",
                 "claimed_at", "created_at", "done_at"),
    Decision: ("id", "code", "task_id", "transaction_id", "reviewer_id", "outcome", "lines", "amount",
               "currency", "diff", "note", "time_spent_ms", "by_supervisor", "created_at"),
    Charge: ("id", "code", "transaction_id", "amount", "currency", "state", "idempotency_key",
             "gateway_reference", "attempts", "last_error", "created_at", "captured_at"),
    WebhookDelivery: ("id", "code", "store_id", "transaction_id", "event", "url", "body", "signature",
                      "status", "attempts", "response_code", "last_error", "created_at", "delivered_at"),
    AuditEvent: ("id", "created_at", "actor_id", "actor_label", "action", "object_type", "object_code",
                 "store_id", "transaction_id", "before", "after", "data", "prev_hash"),
}  # fmt: skip

REVIEW_REASONS = (["low_confidence"], ["low_confidence"], ["low_confidence", "ambiguous_event"],
                  ["high_value"], ["audit_sample"], ["unattributed_event"])  # fmt: skip
ADJUST_REASONS = (
    "wrong_quantity",
    "wrong_product",
    "missed_item",
    "phantom_item",
    "returned",
    "other_shopper",
)
NOTES = (
    "",
    "",
    "",
    "",
    "shelf view blocked for a second",
    "second shopper reached in too",
    "look-alike pack",
)
ESCALATION_NOTES = ("footage too dark at the slot", "two shoppers at the shelf", "item hidden by the cart")
# Share of visits per hour of the day (a store's day: morning, lunch and evening peaks).
HOUR_WEIGHTS = [0, 0, 0, 0, 0, 0, 1, 3, 6, 6, 5, 6, 9, 9, 6, 5, 6, 8, 10, 9, 6, 4, 2, 1]

_J = json.JSONEncoder(separators=(",", ":")).encode


def _next_ids(model: type[models.Model]) -> int:
    top = model.objects.aggregate(top=models.Max("id"))["top"]
    return (top or 0) + 1


class _Writer:
    """Writes rows of one model per call: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.rows_written = 0

    def _columns(self, model: type[models.Model]) -> list[str]:
        return [model._meta.get_field(name).column for name in COLUMNS[model]]

    def write(self, model: type[models.Model], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        table = model._meta.db_table
        columns = self._columns(model)
        self.rows_written += len(rows)
        with connection.cursor() as cursor:
            if self.postgres:
                sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                adapt = self._sqlite_adapters(model)
                marks = ", ".join("?" for _ in columns)
                cursor.cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 - model names
                    [tuple(a(v) if a else v for a, v in zip(adapt, row, strict=True)) for row in rows],
                )

    def _sqlite_adapters(self, model: type[models.Model]) -> list[Any]:
        adapters: list[Any] = []
        for name in COLUMNS[model]:
            field = model._meta.get_field(name)
            if isinstance(field, models.UUIDField):
                adapters.append(lambda v: v.hex if v is not None else None)
            elif isinstance(field, models.DateTimeField):
                adapters.append(connection.ops.adapt_datetimefield_value)
            else:
                adapters.append(None)
        return adapters

    def move_sequences(self) -> None:
        if not self.postgres:
            return  # SQLite's rowid continues from the largest id by itself
        with connection.cursor() as cursor:
            for model in COLUMNS:
                table = model._meta.db_table
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - model names
                    f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
                )


class Command(BaseCommand):
    help = "Generate a realistic review history fast (bulk inserts) for benchmarks and demos."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--transactions", type=int, default=1000, help="How many transactions.")
        parser.add_argument("--days", type=int, default=30, help="Spread over the last D days.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--stores", type=int, default=3)
        parser.add_argument("--reviewers", type=int, default=20)
        parser.add_argument("--batch", type=int, default=10_000, help="Transactions per insert batch.")
        parser.add_argument(
            "--audit",
            choices=("full", "decisions", "none"),
            default="full",
            help="full: every step (about 8 records a transaction); decisions: one per decision.",
        )
        parser.add_argument("--events", action="store_true", help="Also an evidence event per proposed line.")
        parser.add_argument("--seal", action="store_true", help="Seal the audit events afterwards (timed).")

    def handle(self, *args: Any, **options: Any) -> None:
        n = options["transactions"]
        if n < 1 or options["days"] < 1 or options["stores"] < 1 or options["reviewers"] < 1:
            raise CommandError("--transactions, --days, --stores and --reviewers must be at least 1")
        self.rng = random.Random(options["seed"])
        self.options = options
        started = time.monotonic()
        self._setup_actors()
        self.writer = _Writer()
        self.ids = {model: _next_ids(model) for model in COLUMNS}
        self.now = timezone.now()
        times = self._visit_times(n)
        self.shoppers = max(1, n // 3)
        self._token_cache: dict[int, tuple[str, str]] = {}
        batch = options["batch"]
        done = 0
        for rows in self._batches(times, batch):
            with db.atomic():
                for model in COLUMNS:  # parents first
                    self.writer.write(model, rows[model])
            done = min(done + batch, n)
            if done % (batch * 10) == 0 or done == n:
                elapsed = time.monotonic() - started
                self.stderr.write(
                    f"  {done:,} transactions, {self.writer.rows_written:,} rows, {elapsed:.0f} s"
                )
        self.writer.move_sequences()
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"generated {n:,} transactions ({self.writer.rows_written:,} rows) in {elapsed:.1f} s"
            f" ({n / elapsed:,.0f} transactions/s)"
        )
        self.stdout.write(f"a shopper's payment token, to search by: {self._token(0)}")
        if options["seal"]:
            from reviewapp.services.audit import audit_seal

            started = time.monotonic()
            sealed = audit_seal()
            elapsed = time.monotonic() - started
            self.stdout.write(
                f"sealed {sealed:,} audit events in {elapsed:.1f} s ({sealed / max(elapsed, 1e-9):,.0f}/s)"
            )

    # ------------------------------------------------------------------ setup

    def _setup_actors(self) -> None:
        opts = self.options
        rng = self.rng
        User = get_user_model()
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in ("reviewer", "supervisor")}
        self.reviewers = []
        for i in range(1, opts["reviewers"] + 1):
            user, created = User.objects.get_or_create(username=f"reviewer-{i:03d}")
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
                user.groups.add(groups["reviewer"])
            self.reviewers.append(user)
        self.supervisors = []
        for i in range(1, max(1, opts["reviewers"] // 10) + 1):
            user, created = User.objects.get_or_create(username=f"supervisor-{i:02d}")
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
                user.groups.add(groups["supervisor"], groups["reviewer"])
            self.supervisors.append(user)
        # some reviewers do much more of the work than others
        self.reviewer_weights = [1 / (rank + 1) ** 0.6 for rank in range(len(self.reviewers))]
        self.reviewer_cum = list(_cumulative(self.reviewer_weights))
        self.stores = []
        self.products: dict[int, list[Product]] = {}
        streets = ("Market St", "Harbour Rd", "Station Sq", "Mill Lane", "King St", "Park Ave", "Bridge St")
        for i in range(1, opts["stores"] + 1):
            store, _ = Store.objects.get_or_create(
                name=f"Store {i:02d} {streets[(i - 1) % len(streets)]}",
                defaults={
                    "currency": "USD",
                    "webhook_url": f"https://store-{i:02d}.example.com/hooks/checkout" if i % 2 else "",
                    "webhook_secret": f"whsec-{i}" if i % 2 else "",
                },
            )
            self.stores.append(store)
            if not Product.objects.filter(store=store).exists():
                Product.objects.bulk_create(
                    Product(
                        store=store,
                        sku=f"SKU-{k:04d}",
                        name=_product_name(k),
                        price=rng.choice((99, 149, 199, 249, 299, 349, 399, 499, 649, 899, 1299, 1999)),
                        currency=store.currency,
                    )
                    for k in range(1, 61)
                )
            self.products[store.pk] = list(Product.objects.filter(store=store).order_by("sku"))
        self.store_cum = list(_cumulative([1 / (k + 1) ** 0.4 for k in range(len(self.stores))]))

    def _visit_times(self, n: int) -> list[datetime]:
        """Entry times over the last --days days, shaped by the hour of day, in order."""
        rng = self.rng
        days = self.options["days"]
        end = self.now - timedelta(hours=3)
        day0 = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=n)
        times = []
        for hour in hours:
            at = day0 + timedelta(days=rng.randrange(days + 1), hours=hour, seconds=rng.random() * 3600)
            times.append(min(at, end - timedelta(seconds=rng.random() * 3600)))
        times.sort()
        return times

    def _token(self, shopper: int) -> str:
        return f"pm_gen{self.options['seed']}_{shopper:010d}"

    def _token_pair(self, shopper: int) -> tuple[str, str]:
        pair = self._token_cache.get(shopper)
        if pair is None:
            token = self._token(shopper)
            pair = (token_hash(token), token[-4:])
            self._token_cache[shopper] = pair
        return pair

    def _id(self, model: type[models.Model]) -> int:
        value = self.ids[model]
        self.ids[model] = value + 1
        return value

    # ------------------------------------------------------------------ one batch

    def _batches(self, times: list[datetime], batch: int) -> Iterator[dict[type[models.Model], list[Any]]]:
        """The rows of each batch, made by a thread while the database takes the previous batch.

        The database's share (COPY, index upkeep, the foreign-key checks at commit) runs
        with the GIL released, so on two cores making and loading overlap. Only this
        thread touches the generator's state (random, id counters, token cache).
        """
        ready: queue.Queue[Any] = queue.Queue(maxsize=2)

        def produce() -> None:
            try:
                for offset in range(0, len(times), batch):
                    rows: dict[type[models.Model], list[Any]] = {model: [] for model in COLUMNS}
                    for entered in times[offset : offset + batch]:
                        self._one_transaction(entered, rows)
                    ready.put(rows)
            except BaseException as exc:  # handed to the loading thread, which raises it
                ready.put(exc)
                return
            ready.put(None)

        threading.Thread(target=produce, name="generate_history", daemon=True).start()
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _one_transaction(
        self, entered: datetime, rows: dict[type[models.Model], list[tuple[Any, ...]]]
    ) -> None:
        rng = self.rng
        full_audit = self.options["audit"] == "full"
        store = self.stores[bisect.bisect(self.store_cum, rng.random() * self.store_cum[-1])]
        products = self.products[store.pk]
        currency = store.currency

        # the visit
        visit_id = self._id(Visit)
        shopper = int((rng.paretovariate(1.2) - 1) * 7) % self.shoppers  # a few shoppers come often
        t_hash, last4 = self._token_pair(shopper)
        exited = entered + timedelta(seconds=rng.uniform(90, 1500))
        rows[Visit].append(
            (
                visit_id,
                uuid.uuid4(),
                store.pk,
                f"v{visit_id:09d}",
                t_hash,
                last4,
                entered,
                exited,
                "",
                entered,
            )
        )

        # the tracker's proposal
        txn_id = self._id(Transaction)
        txn_code = uuid.uuid4()
        picked = rng.sample(products, k=min(len(products), 1 + int(rng.expovariate(0.7))))
        lines = []
        for product in picked:
            qty = 1 if rng.random() < 0.8 else rng.randint(2, 4)
            confidence = min(0.999, max(0.3, rng.gauss(0.86, 0.09)))
            lines.append((product, qty, confidence))
            rows[ProposedLine].append(
                (self._id(ProposedLine), txn_id, product.pk, qty, product.price, round(confidence, 4))
            )
            if self.options["events"]:
                t_start = rng.uniform(5, (exited - entered).total_seconds() - 5)
                rows[EvidenceEvent].append(
                    (self._id(EvidenceEvent), uuid.uuid4(), txn_id, product.pk, "pick", qty, t_start,
                     t_start + rng.uniform(0.8, 3.0), round(confidence, 4), round(rng.uniform(0.05, 1), 3),
                     confidence < 0.6, "", "")
                )  # fmt: skip
        proposed_amount = sum(p.price * q for p, q, _ in lines)
        cart_confidence = 1.0
        for _, _, c in lines:
            cart_confidence *= c
        created = exited + timedelta(seconds=rng.uniform(20, 240))
        triaged = created + timedelta(seconds=rng.uniform(1, 8))
        settle_by = exited + timedelta(minutes=120)

        # the primary review and its decision
        reviewer = self.reviewers[bisect.bisect(self.reviewer_cum, rng.random() * self.reviewer_cum[-1])]
        claimed = triaged + timedelta(seconds=min(rng.expovariate(1 / 420), 5400))
        spent_ms = int(min(rng.lognormvariate(9.8, 0.6), 600_000))
        decided = claimed + timedelta(milliseconds=spent_ms)
        roll = rng.random()
        outcome = "approved" if roll < 0.90 else ("adjusted" if roll < 0.97 else "escalated")
        audit = rows[AuditEvent]
        if full_audit:
            audit.append(self._audit(created, None, "system", "transaction.created", "transaction", txn_code,
                                     store.pk, txn_id))  # fmt: skip
            audit.append(self._audit(triaged, None, "system", "transaction.triaged", "transaction", txn_code,
                                     store.pk, txn_id, {"state": "tracking"},
                                     {"state": "needs_review", "confidence": round(cart_confidence, 4)}))  # fmt: skip
        final_lines, diff = self._final_cart(lines, products, adjust=outcome == "adjusted")
        amount = sum(item["qty"] * item["unit_price"] for item in final_lines)
        task_code, decision_code = uuid.uuid4(), uuid.uuid4()
        task_id = self._id(ReviewTask)
        rows[ReviewTask].append(
            (
                task_id,
                task_code,
                txn_id,
                "primary",
                "done",
                0,
                settle_by,
                reviewer.pk,
                claimed,
                triaged,
                decided,
            )
        )
        note = rng.choice(ESCALATION_NOTES) if outcome == "escalated" else rng.choice(NOTES)
        rows[Decision].append(
            (self._id(Decision), decision_code, task_id, txn_id, reviewer.pk, outcome,
             _J(final_lines if outcome != "escalated" else []), amount if outcome != "escalated" else 0,
             currency, _J(diff), note, spent_ms, False, decided)
        )  # fmt: skip
        if full_audit:
            audit.append(self._audit(claimed, reviewer.pk, reviewer.username, "task.claimed", "reviewtask",
                                     task_code, store.pk, txn_id))  # fmt: skip
        new_state = {"approved": "approved", "adjusted": "adjusted", "escalated": "escalated"}[outcome]
        if self.options["audit"] != "none":
            audit.append(self._audit(decided, reviewer.pk, reviewer.username, f"decision.{outcome}", "decision",
                                     decision_code, store.pk, txn_id, {"state": "in_review"},
                                     {"state": new_state, "amount": amount if outcome != "escalated" else 0,
                                      "diff": diff, "note": note},
                                     {"task": str(task_code), "kind": "primary", "time_spent_ms": spent_ms}))  # fmt: skip

        # an escalation goes to a supervisor, who approves, corrects or voids
        final_state = outcome
        if outcome == "escalated":
            supervisor = rng.choice(self.supervisors)
            esc_id, esc_code, esc_decision = self._id(ReviewTask), uuid.uuid4(), uuid.uuid4()
            esc_claimed = decided + timedelta(seconds=rng.uniform(60, 1800))
            esc_spent = int(min(rng.lognormvariate(10.8, 0.5), 900_000))
            esc_decided = esc_claimed + timedelta(milliseconds=esc_spent)
            roll = rng.random()
            final_state = "approved" if roll < 0.6 else ("adjusted" if roll < 0.8 else "voided")
            final_lines, diff = self._final_cart(lines, products, adjust=final_state == "adjusted")
            amount = 0 if final_state == "voided" else sum(i["qty"] * i["unit_price"] for i in final_lines)
            rows[ReviewTask].append(
                (esc_id, esc_code, txn_id, "escalation", "done", 50, settle_by, supervisor.pk, esc_claimed,
                 decided, esc_decided)
            )  # fmt: skip
            rows[Decision].append(
                (self._id(Decision), esc_decision, esc_id, txn_id, supervisor.pk, final_state,
                 _J(final_lines if final_state != "voided" else []), amount, currency, _J(diff),
                 "resolved on the second camera" if final_state != "voided" else "cannot tell; not charging",
                 esc_spent, True, esc_decided)
            )  # fmt: skip
            if self.options["audit"] != "none":
                audit.append(self._audit(esc_decided, supervisor.pk, supervisor.username,
                                         f"decision.{final_state}", "decision", esc_decision, store.pk, txn_id,
                                         {"state": "in_review"}, {"state": final_state, "amount": amount},
                                         {"task": str(esc_code), "kind": "escalation",
                                          "time_spent_ms": esc_spent}))  # fmt: skip
            decided = esc_decided

        # the money, and the store system hears about it
        settled_at = voided_at = None
        if final_state == "voided":
            state, voided_at, event = "voided", decided, "transaction.voided"
        else:
            charge_code = uuid.uuid4()
            captured = decided + timedelta(seconds=rng.uniform(0.5, 4))
            attempts = 1 if rng.random() < 0.985 else 2
            reference = f"gw_{charge_code.hex[:20]}"
            rows[Charge].append(
                (self._id(Charge), charge_code, txn_id, amount, currency, "captured", f"txn-{txn_code}",
                 reference, attempts, "", decided, captured)
            )  # fmt: skip
            if full_audit:
                audit.append(self._audit(decided, None, "system", "charge.created", "charge", charge_code,
                                         store.pk, txn_id, None, {"amount": amount}))  # fmt: skip
                audit.append(self._audit(captured, None, "system", "charge.captured", "charge", charge_code,
                                         store.pk, txn_id, None,
                                         {"amount": amount, "currency": currency, "reference": reference}))  # fmt: skip
                audit.append(self._audit(captured, None, "system", "transaction.settled", "transaction",
                                         txn_code, store.pk, txn_id, {"state": final_state},
                                         {"state": "settled", "amount": amount, "charge": str(charge_code)}))  # fmt: skip
            state, settled_at, event = "settled", captured, "transaction.settled"
        done_at = settled_at or voided_at
        if store.webhook_url:
            body = _J({"event": event, "transaction": str(txn_code), "amount": amount, "currency": currency})
            sent = done_at + timedelta(seconds=rng.uniform(0.2, 3))
            rows[WebhookDelivery].append(
                (self._id(WebhookDelivery), uuid.uuid4(), store.pk, txn_id, event, store.webhook_url, body,
                 "sha256=" + uuid.uuid4().hex + uuid.uuid4().hex, "delivered", 1, 200, "", done_at, sent)
            )  # fmt: skip
            if full_audit:
                audit.append(self._audit(sent, None, "system", "webhook.delivered", "webhookdelivery", "",
                                         store.pk, txn_id, None, {"event": event, "status": 200}))  # fmt: skip
        rows[Transaction].append(
            (txn_id, txn_code, store.pk, visit_id, "tracker", state, round(cart_confidence, 4), currency,
             proposed_amount, amount, _J(self.rng.choice(REVIEW_REASONS)), True, False, created, triaged, decided,
             settled_at, voided_at)
        )  # fmt: skip

    def _final_cart(
        self, lines: list[tuple[Product, int, float]], products: list[Product], *, adjust: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        cart = {p.sku: {"sku": p.sku, "name": p.name, "qty": q, "unit_price": p.price} for p, q, _ in lines}
        diff: list[dict[str, Any]] = []
        if adjust:
            rng = self.rng
            reason = rng.choice(ADJUST_REASONS)
            if reason == "missed_item" or sum(item["qty"] for item in cart.values()) <= 1:
                # (a correction that would empty the cart is rarer than one that adds the missed item)
                product = rng.choice(products)
                before = cart[product.sku]["qty"] if product.sku in cart else 0
                item = cart.setdefault(
                    product.sku,
                    {"sku": product.sku, "name": product.name, "qty": 0, "unit_price": product.price},
                )
                item["qty"] += 1
                diff.append(
                    {"sku": product.sku, "proposed": before, "final": before + 1, "reason": "missed_item"}
                )
            else:
                sku = rng.choice(sorted(cart))
                before = cart[sku]["qty"]
                after = (
                    0
                    if reason in ("phantom_item", "returned", "other_shopper") or before == 1
                    else before - 1
                )
                if reason == "wrong_quantity" and rng.random() < 0.5:
                    after = before + 1
                cart[sku]["qty"] = after
                diff.append({"sku": sku, "proposed": before, "final": after, "reason": reason})
        final = [item for _, item in sorted(cart.items()) if item["qty"] > 0]
        return final, diff

    def _audit(
        self,
        at: datetime,
        actor_id: int | None,
        label: str,
        action: str,
        object_type: str,
        object_code: Any,
        store_id: int,
        txn_id: int,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> tuple[Any, ...]:
        return (
            self._id(AuditEvent), at, actor_id, label, action, object_type, str(object_code), store_id, txn_id,
            _J(before or {}), _J(after or {}), _J(data or {}), "",
        )  # fmt: skip


def _cumulative(weights: Iterable[float]) -> Iterable[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


_ADJECTIVES = ("Sparkling", "Still", "Dark", "Salted", "Organic", "Spicy", "Oat", "Greek", "Lemon", "Smoked")
_NOUNS = ("Water 500ml", "Chocolate Bar", "Crisps 150g", "Yoghurt", "Cola 330ml", "Granola", "Sandwich",
          "Coffee Beans", "Trail Mix", "Iced Tea", "Energy Drink", "Hummus")  # fmt: skip


def _product_name(k: int) -> str:
    return f"{_ADJECTIVES[k % len(_ADJECTIVES)]} {_NOUNS[(k * 7) % len(_NOUNS)]}"
