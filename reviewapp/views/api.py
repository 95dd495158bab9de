"""JSON API for store systems, authenticated by a per-store API key.

    Authorization: Bearer <key>

A key reaches only its own store: anything of another store answers 404. Malformed
input answers 400 with `{"error": ..., "field": ...}` naming the field; nothing
half-written is left (each write is one database transaction).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction as db
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import selectors
from ..access import is_code
from ..models import Camera, Footage, Store, StoreApiKey, Transaction, Visit
from ..services.audit import Actor
from ..services.disputes import dispute_open
from ..services.ingest import footage_create, visit_create
from ..services.pipeline import ExternalLine, external_cart_submit
from ..states import DomainError
from ..tokens import token_hash


class BadRequest(Exception):
    def __init__(self, message: str, field: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def store_for_key(request: HttpRequest) -> Store | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    key = header[len("Bearer ") :].strip()
    prefix = key.split(".", 1)[0]
    api_key = (
        StoreApiKey.objects.select_related("store").filter(prefix=prefix, revoked_at__isnull=True).first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash(key)):
        return None
    return api_key.store


def api_view(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # token-authenticated, no cookies
        @require_http_methods(list(methods))
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            store = store_for_key(request)
            if store is None:
                return JsonResponse({"error": "missing or invalid API key"}, status=401)
            try:
                return view(request, store, *args, **kwargs)
            except BadRequest as exc:
                return JsonResponse({"error": str(exc), "field": exc.field}, status=exc.status)
            except DomainError as exc:
                field = getattr(exc, "field", "")
                return JsonResponse({"error": str(exc), **({"field": field} if field else {})}, status=409)

        return wrapped

    return decorator


def json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("send JSON with Content-Type: application/json", "body", 415)
    try:
        data = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", "body")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", "body")
    where = _nul_at(data, "")
    if where is not None:
        raise BadRequest(f"{where or 'body'} holds a NUL character (\\u0000)", where or "body")
    return data


def _nul_at(value: Any, path: str) -> str | None:
    """Where in a parsed JSON body a string holds a NUL character (which no text column can store,
    PostgreSQL's least of all), as the field's path; None if nowhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return sub
            found = _nul_at(item, sub)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def field_str(data: dict[str, Any], name: str, *, max_length: int = 128, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a non-empty string", name)
    if len(value) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters", name)
    if "\x00" in value:  # a multipart field (a JSON body is checked whole, in json_body)
        raise BadRequest(f"{name} holds a NUL character", name)
    return value.strip()


def field_time(data: dict[str, Any], name: str, *, required: bool = True) -> datetime | None:
    value = data.get(name)
    if value is None and not required:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed, but no such date or time (month 13, 25 o'clock)
        parsed = None
    if parsed is None:
        raise BadRequest(f"{name} must be an ISO 8601 date-time with a time zone", name)
    if timezone.is_naive(parsed):
        raise BadRequest(f"{name} needs a time zone offset (e.g. 2026-01-01T10:00:00Z)", name)
    return parsed


@api_view("POST")
def visits(request: HttpRequest, store: Store) -> HttpResponse:
    data = json_body(request)
    external_id = field_str(data, "external_id")
    token = field_str(data, "token", max_length=200)
    entered_at = field_time(data, "entered_at")
    exited_at = field_time(data, "exited_at", required=False)
    assert entered_at is not None
    if exited_at is not None and exited_at < entered_at:
        raise BadRequest("exited_at is before entered_at", "exited_at")
    visit, created = visit_create(
        store=store,
        external_id=external_id,
        token=token,
        entered_at=entered_at,
        exited_at=exited_at,
        actor=Actor(label=f"api:{store.name}"),
    )
    return JsonResponse({"visit": str(visit.code), "created": created}, status=201 if created else 200)


MP4_BRANDS = (b"ftyp",)


@api_view("POST")
def footage_upload(request: HttpRequest, store: Store) -> HttpResponse:
    limit = settings.MAX_FOOTAGE_UPLOAD_MB * 1024 * 1024
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        raise BadRequest(f"footage is limited to {settings.MAX_FOOTAGE_UPLOAD_MB} MB", "file", 413)
    upload = request.FILES.get("file")
    if upload is None:
        raise BadRequest("attach the video as multipart field 'file'", "file")
    if upload.size > limit:
        raise BadRequest(f"footage is limited to {settings.MAX_FOOTAGE_UPLOAD_MB} MB", "file", 413)
    if upload.size == 0:
        raise BadRequest("the file is empty", "file")
    head = upload.read(12)
    upload.seek(0)
    if head[4:8] not in MP4_BRANDS:
        raise BadRequest("the file is not an MP4 video", "file", 415)
    camera_name = field_str(request.POST, "camera")  # type: ignore[arg-type]
    started_at = field_time(request.POST, "started_at")  # type: ignore[arg-type]
    assert started_at is not None
    camera = Camera.objects.filter(store=store, name=camera_name).first()
    if camera is None:
        raise BadRequest(f"this store has no camera named {camera_name!r}", "camera")
    with tempfile.TemporaryDirectory(prefix="cr-upload-") as tmp:
        path = Path(tmp) / "upload.mp4"
        with open(path, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        footage = footage_create(
            store=store,
            camera=camera,
            path=path,
            name=f"{camera.name}.mp4",
            started_at=started_at,
            actor=Actor(label=f"api:{store.name}"),
        )
    return JsonResponse({"footage": str(footage.code), "status": footage.status}, status=202)


@api_view("GET")
def footage_detail(request: HttpRequest, store: Store, code: str) -> HttpResponse:
    footage = Footage.objects.filter(store=store, code=code).first()
    if footage is None:
        return JsonResponse({"error": "no such footage"}, status=404)
    return JsonResponse(
        {
            "footage": str(footage.code),
            "status": footage.status,
            "progress": footage.progress,
            "error": footage.error,
        }
    )


@api_view("POST")
def carts(request: HttpRequest, store: Store) -> HttpResponse:
    data = json_body(request)
    external_id = field_str(data, "visit")
    visit = Visit.objects.filter(store=store, external_id=external_id).first()
    if visit is None:
        raise BadRequest(f"no visit {external_id!r} in this store", "visit")
    footage = None
    if data.get("footage") is not None:
        code = field_str(data, "footage")
        footage = Footage.objects.filter(store=store, code=code).first() if is_code(code) else None
        if footage is None:
            raise BadRequest("no such footage in this store", "footage")
    confidence = data.get("confidence")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not 0 <= confidence <= 1:
        raise BadRequest("confidence must be a number from 0 to 1", "confidence")
    raw_lines = data.get("lines")
    if not isinstance(raw_lines, list):
        raise BadRequest("lines must be a list", "lines")
    lines = []
    for i, raw in enumerate(raw_lines):
        where = f"lines[{i}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where} must be an object", where)
        sku = raw.get("sku")
        qty = raw.get("qty")
        line_conf = raw.get("confidence", confidence)
        if not isinstance(sku, str) or not sku:
            raise BadRequest(f"{where}.sku must be a string", f"{where}.sku")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= 1000:
            raise BadRequest(f"{where}.qty must be a whole number from 1 to 1000", f"{where}.qty")
        if not isinstance(line_conf, int | float) or isinstance(line_conf, bool) or not 0 <= line_conf <= 1:
            raise BadRequest(f"{where}.confidence must be a number from 0 to 1", f"{where}.confidence")
        lines.append(ExternalLine(sku=sku, qty=qty, confidence=float(line_conf)))
    try:
        with db.atomic():
            txn = external_cart_submit(
                store=store,
                visit=visit,
                footage=footage,
                lines=lines,
                confidence=float(confidence),
                actor=Actor(label=f"api:{store.name}"),
            )
    except LookupError as exc:
        raise BadRequest(str(exc), "lines")
    return JsonResponse({"transaction": str(txn.code), "state": txn.state}, status=201)


@api_view("POST")
def disputes(request: HttpRequest, store: Store) -> HttpResponse:
    """A shopper disputes a settled charge: {"transaction", "token", "statement", "external_id"}."""
    data = json_body(request)
    code = field_str(data, "transaction")
    token = field_str(data, "token", max_length=200)
    statement = field_str(data, "statement", max_length=5000)
    external_id = field_str(data, "external_id")
    txn = (
        Transaction.objects.filter(store=store, code=code).select_related("visit").first()
        if is_code(code)
        else None
    )
    if txn is None:
        raise BadRequest("no such transaction in this store", "transaction")
    if not hmac.compare_digest(txn.visit.token_hash, token_hash(token)):
        raise BadRequest("the token is not the card of this transaction", "token")
    dispute, created = dispute_open(
        txn=txn, external_id=external_id, statement=statement, actor=Actor(label=f"api:{store.name}")
    )
    return JsonResponse(
        {"dispute": str(dispute.code), "status": dispute.status, "created": created},
        status=201 if created else 200,
    )


@api_view("GET")
def transaction_detail(request: HttpRequest, store: Store, code: str) -> HttpResponse:
    txn = Transaction.objects.filter(store=store, code=code).select_related("visit").first()
    if txn is None:
        return JsonResponse({"error": "no such transaction"}, status=404)
    disputes = list(txn.disputes.select_related("refund").order_by("created_at"))

    def refund_of(dispute: Any) -> dict[str, Any] | None:
        refund = getattr(dispute, "refund", None)
        return {"amount": refund.amount, "state": refund.state} if refund else None

    return JsonResponse(
        {
            "transaction": str(txn.code),
            "visit": txn.visit.external_id,
            "state": txn.state,
            "currency": txn.currency,
            "proposed": [
                {
                    "sku": line.product.sku,
                    "qty": line.qty,
                    "unit_price": line.unit_price,
                    "confidence": line.confidence,
                }
                for line in txn.proposed_lines.select_related("product")
            ],
            "final": selectors.final_cart(txn),
            "amount": txn.final_amount,
            "settled_at": txn.settled_at.isoformat() if txn.settled_at else None,
            "disputes": [
                {
                    "dispute": str(d.code),
                    "external_id": d.external_id,
                    "status": d.status,
                    "refund": refund_of(d),
                }
                for d in disputes
            ],
        }
    )
