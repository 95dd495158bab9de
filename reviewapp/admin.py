"""Admin pages for every model. Decisions, audit events and captures are read-only here:
they change only through services, which log what they do."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from . import models as m


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CameraInline(admin.TabularInline):
    model = m.Camera
    extra = 0


@admin.register(m.Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "currency", "timezone", "review_threshold", "privacy_mode"]
    search_fields = ["name"]
    inlines = [CameraInline]
    exclude = ["webhook_secret"]


@admin.register(m.StoreApiKey)
class StoreApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["store", "prefix", "label", "created_at", "revoked_at"]
    exclude = ["key_hash"]


class SlotInline(admin.TabularInline):
    model = m.PlanogramSlot
    extra = 0


@admin.register(m.Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["name", "store", "width", "height", "fps"]
    list_filter = ["store"]
    inlines = [SlotInline]


@admin.register(m.Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "currency", "store"]
    list_filter = ["store"]
    search_fields = ["sku", "name"]


@admin.register(m.PlanogramSlot)
class PlanogramSlotAdmin(admin.ModelAdmin):
    list_display = ["slot_id", "camera", "product", "x", "y", "w", "h", "facings"]
    list_filter = ["camera__store"]


@admin.register(m.Visit)
class VisitAdmin(ReadOnlyAdmin):
    list_display = ["code", "store", "token_last4", "entered_at", "exited_at"]
    list_filter = ["store"]
    exclude = ["token_hash"]


@admin.register(m.Footage)
class FootageAdmin(ReadOnlyAdmin):
    list_display = ["code", "store", "camera", "started_at", "status", "progress", "error"]
    list_filter = ["status", "store"]


class ProposedLineInline(admin.TabularInline):
    model = m.ProposedLine
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(m.Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["code", "store", "state", "confidence", "proposed_amount", "final_amount", "created_at"]
    list_filter = ["state", "store"]
    search_fields = ["code"]
    inlines = [ProposedLineInline]


@admin.register(m.EvidenceEvent)
class EvidenceEventAdmin(ReadOnlyAdmin):
    list_display = ["code", "transaction", "kind", "qty", "slot", "confidence", "t_start", "t_end"]


@admin.register(m.Clip)
class ClipAdmin(ReadOnlyAdmin):
    list_display = ["code", "transaction", "t_start", "t_end", "purged_at"]


@admin.register(m.ReviewTask)
class ReviewTaskAdmin(ReadOnlyAdmin):
    list_display = ["code", "kind", "state", "priority", "settle_by", "assignee", "lease_expires_at"]
    list_filter = ["kind", "state"]


@admin.register(m.Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["code", "transaction", "reviewer", "outcome", "amount", "created_at"]
    list_filter = ["outcome"]


@admin.register(m.Charge)
class ChargeAdmin(ReadOnlyAdmin):
    list_display = ["code", "transaction", "amount", "currency", "state", "attempts", "captured_at"]
    list_filter = ["state"]


@admin.register(m.GatewayCapture)
class GatewayCaptureAdmin(ReadOnlyAdmin):
    list_display = ["reference", "idempotency_key", "amount", "currency", "created_at"]


@admin.register(m.AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "actor_label", "action", "object_type", "object_code"]
    list_filter = ["action", "object_type"]
