"""The domain of DESIGN.md.

Money is in integer minor units with a currency beside it. States are the choices of
reviewapp.states and change only through `states.transition`. Database constraints
guard what must happen once: one charge per transaction, one decision per task, one
open primary review task per transaction, unique idempotency keys.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from tracking.confidence import DEFAULT_THRESHOLD

from .states import ChargeState, DomainError, FootageStatus, TaskState, TransactionState


def new_code() -> uuid.UUID:
    return uuid.uuid4()


class CodeField(models.UUIDField):
    """The random id that URLs carry; never the sequential primary key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", new_code)
        kwargs.setdefault("unique", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)


# --------------------------------------------------------------------------- stores


class DeadlineRule(models.TextChoices):
    ESCALATE = "escalate", "Escalate to a supervisor"
    CHARGE_CONFIDENT = "charge_confident", "Charge only the lines above the high confidence"
    VOID = "void", "Void the transaction"


def default_review_threshold() -> float:
    """The tracker's own default (tracking.confidence.DEFAULT_THRESHOLD), until the store's supervisors
    apply one from the calibration report on their own decisions."""
    return DEFAULT_THRESHOLD


class Store(models.Model):
    code = CodeField()
    name = models.CharField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(max_length=3, default="USD")
    created_at = models.DateTimeField(auto_now_add=True)

    # triage policy
    review_threshold = models.FloatField(
        default=default_review_threshold, help_text="Carts with a confidence under this go to a human."
    )
    review_limit_amount = models.PositiveIntegerField(
        default=10_000, help_text="Carts worth more than this (minor units) always go to a human."
    )
    audit_sample_percent = models.FloatField(
        default=2.0, help_text="Share of otherwise confident carts sent to review at random."
    )
    settle_within_minutes = models.PositiveIntegerField(
        default=120, help_text="Settle-by deadline of a review task, after the visit ended."
    )
    deadline_rule = models.CharField(
        max_length=20, choices=DeadlineRule.choices, default=DeadlineRule.ESCALATE
    )
    deadline_confidence = models.FloatField(
        default=0.98, help_text="With the 'charge confident lines' rule: lines at or above this are charged."
    )
    second_opinion_percent = models.FloatField(default=5.0)
    gold_percent = models.FloatField(default=2.0, help_text="Share of reviewers' tasks that are gold checks.")
    receipt_target_minutes = models.PositiveIntegerField(default=60)
    receipt_target_share = models.FloatField(default=0.95)

    # privacy and retention
    privacy_mode = models.BooleanField(default=True, help_text="Reviewers only ever receive redacted clips.")
    footage_retention_days = models.PositiveIntegerField(default=30)
    clip_retention_days = models.PositiveIntegerField(default=90)
    dispute_window_days = models.PositiveIntegerField(default=60)

    # store system integration
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(review_threshold__gte=0) & Q(review_threshold__lte=1), name="store_threshold_0_1"
            ),
            models.CheckConstraint(
                condition=Q(audit_sample_percent__gte=0) & Q(audit_sample_percent__lte=100),
                name="store_audit_sample_0_100",
            ),
            models.CheckConstraint(
                condition=Q(second_opinion_percent__gte=0) & Q(second_opinion_percent__lte=100),
                name="store_second_opinion_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class StoreApiKey(models.Model):
    """A store system's credential. Only a hash is kept; the key is shown once."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.store} key {self.prefix}…"


class Camera(models.Model):
    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="cameras")
    name = models.CharField(max_length=100)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "name"], name="camera_unique_name_per_store"),
            models.CheckConstraint(
                condition=Q(width__gt=0) & Q(height__gt=0) & Q(fps__gt=0), name="camera_size_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.store} / {self.name}"


class Product(models.Model):
    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    price = models.PositiveIntegerField(help_text="Minor units (cents).")
    currency = models.CharField(max_length=3)
    image = models.FileField(upload_to="products/", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "sku"], name="product_unique_sku_per_store")]
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class PlanogramSlot(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="slots")
    slot_id = models.CharField(max_length=32)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="slots")
    x = models.PositiveIntegerField()
    y = models.PositiveIntegerField()
    w = models.PositiveIntegerField()
    h = models.PositiveIntegerField()
    facings = models.PositiveIntegerField(default=1)
    # set when a later planogram of the camera no longer has the slot: the tracker stops looking
    # at it, and the events recorded on it keep pointing at it
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["camera", "slot_id"], name="slot_unique_id_per_camera"),
            models.CheckConstraint(condition=Q(w__gt=0) & Q(h__gt=0), name="slot_size_positive"),
        ]
        ordering = ["camera", "slot_id"]

    def __str__(self) -> str:
        return f"{self.camera} {self.slot_id}"

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


# --------------------------------------------------------------------------- visits and footage


class Visit(models.Model):
    """One shopper's trip. The payment token is kept only as a keyed hash and its last four."""

    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="visits")
    external_id = models.CharField(max_length=128, help_text="The store system's id for this visit.")
    token_hash = models.CharField(max_length=64, db_index=True)
    token_last4 = models.CharField(max_length=4)
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    gate_image = models.FileField(upload_to="gate/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"], name="visit_unique_external_id_per_store"
            ),
            models.CheckConstraint(
                condition=Q(exited_at__isnull=True) | Q(exited_at__gte=models.F("entered_at")),
                name="visit_exit_after_entry",
            ),
        ]
        indexes = [models.Index(fields=["token_last4"], name="visit_by_token_last4")]

    def __str__(self) -> str:
        return f"visit …{self.token_last4} at {self.entered_at:%Y-%m-%d %H:%M}"


class Footage(models.Model):
    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="footage")
    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="footage")
    file = models.FileField(upload_to="footage/%Y/%m/%d/", blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(help_text="Wall-clock time of the first frame.")
    duration_s = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=FootageStatus.choices, default=FootageStatus.RECEIVED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    readable_until_s = models.FloatField(
        null=True, blank=True, help_text="Where reading stopped, for a truncated file."
    )
    tracker_stats = models.JSONField(default=dict, blank=True)
    tracks = models.JSONField(
        default=dict,
        blank=True,
        help_text="Shopper boxes over time from the tracker: {visit code: [[frame, x, y, w, h], ...]}.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name_plural = "footage"
        indexes = [models.Index(fields=["status", "created_at"], name="footage_by_status")]

    def __str__(self) -> str:
        return f"footage {self.camera.name} {self.started_at:%Y-%m-%d %H:%M:%S}"


# --------------------------------------------------------------------------- transactions


class TransactionSource(models.TextChoices):
    TRACKER = "tracker", "Our tracker"
    EXTERNAL = "external", "External tracker"


class Transaction(models.Model):
    """The cart for one visit, from the tracker's proposal to the settled charge."""

    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="transactions")
    visit = models.OneToOneField(Visit, on_delete=models.PROTECT, related_name="transaction")
    footage = models.ForeignKey(
        Footage, on_delete=models.SET_NULL, null=True, blank=True, related_name="transactions"
    )
    source = models.CharField(
        max_length=20, choices=TransactionSource.choices, default=TransactionSource.TRACKER
    )
    state = models.CharField(
        max_length=20, choices=TransactionState.choices, default=TransactionState.TRACKING
    )
    confidence = models.FloatField(
        null=True, blank=True, help_text="Estimated probability the cart is exactly right."
    )
    currency = models.CharField(max_length=3)
    proposed_amount = models.PositiveIntegerField(default=0)
    final_amount = models.PositiveIntegerField(null=True, blank=True)
    review_reasons = models.JSONField(default=list, blank=True, help_text="Why triage sent it to a human.")
    flagged = models.BooleanField(default=False, help_text="Triage sent it to a human.")
    legal_hold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    triaged_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    media_claim = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",  # rows written in bulk (generate_history's COPY) get the empty claim too
        help_text="The media task now preparing its clips (a token), if any.",
    )
    media_claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["store", "state"], name="txn_by_store_state"),
            models.Index(fields=["created_at"], name="txn_by_created"),
            models.Index(fields=["triaged_at"], name="txn_rollup_by_triaged"),
            models.Index(fields=["settled_at"], name="txn_rollup_by_settled"),
        ]

    def __str__(self) -> str:
        return f"txn {str(self.code)[:8]} ({self.state})"


class ProposedLine(models.Model):
    """A line of the tracker's (or external tracker's) proposed cart. Never edited after creation."""

    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="proposed_lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    qty = models.IntegerField()
    unit_price = models.PositiveIntegerField()
    confidence = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transaction", "product"], name="proposed_line_one_per_product"),
            models.CheckConstraint(condition=Q(qty__gt=0), name="proposed_line_qty_positive"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="proposed_line_confidence_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.qty} x product {self.product_id}"

    @property
    def amount(self) -> int:
        return self.qty * self.unit_price


class EventKind(models.TextChoices):
    PICK = "pick", "Pick"
    RETURN = "return", "Return"


class EvidenceEvent(models.Model):
    """One interaction the tracker saw. Tied to a transaction, or unattributed (transaction null)."""

    code = CodeField()
    footage = models.ForeignKey(
        Footage, on_delete=models.CASCADE, related_name="events", null=True, blank=True
    )
    transaction = models.ForeignKey(
        Transaction, on_delete=models.CASCADE, related_name="events", null=True, blank=True
    )
    slot = models.ForeignKey(
        PlanogramSlot, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    product = models.ForeignKey(Product, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    qty = models.PositiveIntegerField(default=1)
    t_start = models.FloatField(help_text="Seconds from the start of the footage.")
    t_end = models.FloatField()
    confidence = models.FloatField()
    attribution_margin = models.FloatField(default=1.0)
    ambiguous = models.BooleanField(default=False)
    before_frame = models.IntegerField(null=True, blank=True)
    after_frame = models.IntegerField(null=True, blank=True)
    before_box = models.JSONField(null=True, blank=True)
    after_box = models.JSONField(null=True, blank=True)
    before_crop = models.FileField(upload_to="crops/%Y/%m/%d/", blank=True)
    after_crop = models.FileField(upload_to="crops/%Y/%m/%d/", blank=True)

    class Meta:
        ordering = ["t_start"]
        constraints = [
            models.CheckConstraint(condition=Q(t_end__gte=models.F("t_start")), name="event_ends_after_start")
        ]

    def __str__(self) -> str:
        return f"{self.kind} x{self.qty} at {self.t_start:.1f}s"


class Clip(models.Model):
    """A short browser-playable video around one or more events of a transaction."""

    code = CodeField()
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="clips")
    footage = models.ForeignKey(
        Footage, on_delete=models.SET_NULL, null=True, blank=True, related_name="clips"
    )
    t_start = models.FloatField()
    t_end = models.FloatField()
    media_start = models.FloatField(
        null=True,
        blank=True,
        help_text="Footage time of the clip file's first frame (a cut starts on a keyframe).",
    )
    file = models.FileField(upload_to="clips/%Y/%m/%d/", blank=True)
    redacted_file = models.FileField(upload_to="clips/%Y/%m/%d/", blank=True)
    poster = models.FileField(upload_to="clips/%Y/%m/%d/", blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    redacted_sha256 = models.CharField(max_length=64, blank=True)
    events = models.ManyToManyField(EvidenceEvent, related_name="clips", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["t_start"]

    def __str__(self) -> str:
        return f"clip {self.t_start:.1f}-{self.t_end:.1f}s"


# --------------------------------------------------------------------------- review


class TaskKind(models.TextChoices):
    PRIMARY = "primary", "Primary review"
    SECOND_OPINION = "second_opinion", "Second opinion"
    GOLD = "gold", "Gold check"
    ESCALATION = "escalation", "Escalation"
    DISPUTE = "dispute", "Dispute"


class ReviewTask(models.Model):
    """One unit of human work. `kind` is the stage of review; `state` where the work is."""

    code = CodeField()
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.PRIMARY)
    state = models.CharField(max_length=20, choices=TaskState.choices, default=TaskState.QUEUED)
    priority = models.IntegerField(default=0, help_text="Higher first.")
    settle_by = models.DateTimeField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="review_tasks"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["transaction"],
                condition=Q(kind="primary") & Q(state__in=["queued", "assigned"]),
                name="one_open_primary_task_per_transaction",
            ),
            models.CheckConstraint(
                condition=~Q(state="assigned")
                | (Q(assignee__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="assigned_task_has_assignee_and_lease",
            ),
        ]
        indexes = [
            # claim_next_task: queued tasks, highest priority, earliest deadline, then oldest; the
            # whole ORDER BY, so LIMIT 1 stops at the first row that passes (migration 0012)
            models.Index(
                fields=["-priority", "settle_by", "id"], condition=Q(state="queued"), name="task_claim_order"
            ),
            models.Index(fields=["state", "lease_expires_at"], name="task_lease_expiry"),
            # the dashboard's gold accuracy and second-opinion agreement
            models.Index(
                fields=["kind"], condition=Q(kind__in=["gold", "second_opinion"]), name="task_quality_kinds"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} task {str(self.code)[:8]} ({self.state})"


class DecisionOutcome(models.TextChoices):
    APPROVED = "approved", "Approved as proposed"
    ADJUSTED = "adjusted", "Approved with corrections"
    ESCALATED = "escalated", "Escalated: footage cannot tell"
    VOIDED = "voided", "Voided"


class ImmutableModel(models.Model):
    """Rows that are written once: saving an existing row or deleting one raises."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise DomainError(f"{type(self).__name__} rows are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise DomainError(f"{type(self).__name__} rows are never deleted")


class Decision(ImmutableModel):
    """A human's (or a supervisor's) decision on a task. Immutable; one per task."""

    code = CodeField()
    task = models.OneToOneField(ReviewTask, on_delete=models.PROTECT, related_name="decision")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    outcome = models.CharField(max_length=20, choices=DecisionOutcome.choices)
    lines = models.JSONField(default=list, help_text="The final cart: [{sku, name, qty, unit_price}].")
    amount = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    diff = models.JSONField(
        default=list, help_text="What changed against the tracker's proposal, with reason codes."
    )
    note = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    by_supervisor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="decision_by_created"),
            models.Index(fields=["reviewer", "created_at"], name="decision_by_reviewer"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} by {self.reviewer_id}"


class DecisionUndo(ImmutableModel):
    """A reviewer took back their own decision in the moments after it (a key pressed by mistake),
    before anything acted on it. The decision stays, as every decision does; this says it was undone
    and which task reopened the transaction."""

    decision = models.OneToOneField(Decision, on_delete=models.PROTECT, related_name="undo")
    created_at = models.DateTimeField()
    reopened = models.OneToOneField(ReviewTask, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"undo of {self.decision_id}"


class Charge(models.Model):
    """The money. Captured exactly once, only after approval or auto-approval."""

    code = CodeField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="charge")
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=20, choices=ChargeState.choices, default=ChargeState.PENDING)
    idempotency_key = models.CharField(max_length=100, unique=True)
    gateway_reference = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    captured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="captured") | ~Q(gateway_reference=""),
                name="captured_charge_has_reference",
            )
        ]
        indexes = [
            # the dashboard's settlement problems: a handful of rows among millions
            models.Index(
                fields=["created_at"], condition=Q(state="failed"), name="charge_settlement_problems"
            ),
        ]

    def __str__(self) -> str:
        return f"charge {self.amount} {self.currency} ({self.state})"


class GatewayCapture(models.Model):
    """What the built-in payment gateway has captured: its own ledger, keyed by idempotency key."""

    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=100, unique=True)
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.reference


class Dispute(models.Model):
    """A shopper disputes a settled charge (reported by the store system). Reopens review."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REFUNDED = "refunded", "Corrected and refunded"
        UPHELD = "upheld", "Charge upheld"

    code = CodeField()
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="disputes")
    external_id = models.CharField(
        max_length=128, help_text="The store system's id: the same one twice is one dispute."
    )
    statement = models.TextField(help_text="What the shopper says.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transaction", "external_id"], name="dispute_unique_external_id"),
            models.UniqueConstraint(
                fields=["transaction"], condition=Q(status="open"), name="one_open_dispute_per_transaction"
            ),
        ]

    def __str__(self) -> str:
        return f"dispute {str(self.code)[:8]} ({self.status})"


class Refund(models.Model):
    """Money given back after a dispute: the difference between the charged and the corrected cart."""

    code = CodeField()
    dispute = models.OneToOneField(Dispute, on_delete=models.PROTECT, related_name="refund")
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="refunds")
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=100, unique=True)
    state = models.CharField(
        max_length=20,
        choices=[("pending", "Pending"), ("refunded", "Refunded"), ("failed", "Failed")],
        default="pending",
    )
    gateway_reference = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} ({self.state})"


class GoldAnswer(models.Model):
    """The known right cart of a transaction, for gold checks of reviewers."""

    class Source(models.TextChoices):
        SUPERVISOR = "supervisor", "A supervisor's decided cart"
        SIMULATOR = "simulator", "Simulator ground truth"

    transaction = models.OneToOneField(Transaction, on_delete=models.CASCADE, related_name="gold")
    lines = models.JSONField(help_text="[{sku, qty}]")
    source = models.CharField(max_length=20, choices=Source.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"gold for {self.transaction_id}"


class StoreHourStats(models.Model):
    """Hourly rollup per store, kept by the periodic job, so the dashboard never scans history."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    triaged = models.PositiveIntegerField(default=0)
    auto_approved = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    decisions = models.PositiveIntegerField(default=0)
    approved = models.PositiveIntegerField(default=0)
    adjusted = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    voided = models.PositiveIntegerField(default=0)
    settled = models.PositiveIntegerField(default=0)
    receipt_within_target = models.PositiveIntegerField(default=0)
    receipt_minutes_hist = models.JSONField(
        default=dict, help_text="{minutes bucket: count} of receipt times."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "hour"], name="store_hour_stats_unique")]
        indexes = [models.Index(fields=["hour"], name="store_stats_by_hour")]

    def __str__(self) -> str:
        return f"{self.store_id} {self.hour:%Y-%m-%d %H}:00"


class ReviewerHourStats(models.Model):
    """Hourly rollup per reviewer: decisions and a histogram of handle times (for medians)."""

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    decisions = models.PositiveIntegerField(default=0)
    handle_ms_sum = models.BigIntegerField(default=0)
    handle_seconds_hist = models.JSONField(default=dict, help_text="{seconds bucket: count} of handle times.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reviewer", "hour"], name="reviewer_hour_stats_unique")
        ]
        indexes = [models.Index(fields=["hour"], name="reviewer_stats_by_hour")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} {self.hour:%Y-%m-%d %H}:00"


class WebhookDelivery(models.Model):
    """A signed notification to the store system; retried with backoff, every attempt logged."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    code = CodeField()
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="webhooks")
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="webhooks")
    event = models.CharField(max_length=64)
    url = models.URLField()
    body = models.TextField()
    signature = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transaction", "event"], name="one_webhook_per_transaction_event")
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.url} ({self.status})"


# --------------------------------------------------------------------------- audit


class AuditEvent(ImmutableModel):
    """Append-only, hash-chained record of every state change and who caused it.

    Services insert records freely (no global lock on the hot path); the sealer
    (`services.audit.audit_seal`, every few seconds) chains them in the order it
    finds them: `seq` is the chain position, `hash` is SHA-256 over `prev_hash` and
    the record's canonical JSON. Editing or deleting any sealed row breaks the chain
    from there on (verify_audit_log finds it); on PostgreSQL a trigger also refuses
    UPDATE of a sealed row and any DELETE.
    """

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="Username, 'system' or 'api:<store>'.")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_code = models.CharField(max_length=64)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True)
    seq = models.BigIntegerField(
        null=True, blank=True, unique=True, help_text="Position in the chain, once sealed."
    )
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["object_type", "object_code"], name="audit_by_object"),
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type} {self.object_code}"


class ChainCheck(models.Model):
    """One verification of the audit chain, asked for on the auditor's page and run by a worker
    (a chain of millions of records takes longer than a web request may)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    code = CodeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    ok = models.BooleanField(null=True, blank=True, help_text="The chain was intact (when done).")
    checked = models.BigIntegerField(default=0, help_text="Sealed records checked so far.")
    unsealed = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0, help_text="Records in the log when the check started.")
    broken_at = models.ForeignKey(
        AuditEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    problem = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"chain check {self.code} ({self.state})"

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
