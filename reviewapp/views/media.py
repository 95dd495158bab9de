"""Clip, poster, crop and product-image bytes, behind the same access rules as the pages.

Clips are served with HTTP Range support (206 Partial Content): without it a browser
cannot seek in a video. In production the proxy sends the bytes instead (see README,
"Serving clip bytes in production"): with MEDIA_SERVE_MODE=nginx this view answers
with X-Accel-Redirect, with "sendfile" with X-Sendfile, after the same access check.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from typing import IO, Any

from django.conf import settings
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import http_date, quote_etag
from django.views.decorators.http import require_GET

from ..access import AUDITOR, REVIEWER, SUPERVISOR, is_auditor, is_reviewer, is_supervisor, role_required
from ..models import Clip, EvidenceEvent, Product, ReviewTask, Transaction
from ..services.audit import audit_record
from ..states import TaskState

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# a clip's bytes never change under its name; the browser may reuse them (the next task's prefetch)
CACHE_CONTROL = "private, max-age=600"


# --------------------------------------------------------------------------- access


def may_see_media(user: Any, txn: Transaction, *, now: Any = None) -> bool:
    """Supervisors and auditors see any transaction's media; a reviewer only while holding its task."""
    if is_supervisor(user) or is_auditor(user):
        return True
    if not is_reviewer(user):
        return False
    now = now or timezone.now()
    return ReviewTask.objects.filter(
        Q(transaction=txn) & Q(state=TaskState.ASSIGNED, assignee=user, lease_expires_at__gt=now)
    ).exists()


def clip_file_for(user: Any, clip: Clip, *, original: bool = False) -> Any:
    """Which file of a clip `user` receives. The one place that decides it.

    With the store's privacy mode off: the original. With it on (the default): the
    redacted clip, to everyone; the original only to a supervisor who asked for it
    (`original`, with a reason the view has audited). None when the redacted clip is
    not made yet: then nothing is served, never the original instead.
    """
    if not clip.transaction.store.privacy_mode:
        return clip.file
    if original and is_supervisor(user):
        return clip.file
    return clip.redacted_file or None


def _clip_or_404(user: Any, code: Any) -> Clip:
    clip = Clip.objects.select_related("transaction", "transaction__store").filter(code=code).first()
    if clip is None or not may_see_media(user, clip.transaction):
        raise Http404("no such clip")
    return clip


def _gone(clip: Clip) -> HttpResponse:
    return HttpResponse(
        f"This clip was deleted on {clip.purged_at:%Y-%m-%d} ({clip.purge_reason}).",
        status=410,
        content_type="text/plain",
    )


def audit_clip_view(request: HttpRequest, clip: Clip, *, action: str = "clip.viewed") -> None:
    """One `clip.viewed` per user, clip and ten minutes, not one per Range request.

    `clip.prefetched`: the review page fetching the next task's clip into the browser's cache
    before its reviewer has opened that task. It is logged (every delivery of a clip is), but it
    is not a view: the view is recorded when the task's page is opened, from that cache."""
    seen = request.session.get("clips_seen", {})
    now = timezone.now().timestamp()
    key = f"{action}:{clip.code}"
    if now - seen.get(key, 0) < 600:
        return
    seen = {k: v for k, v in seen.items() if now - v < 600}
    seen[key] = now
    request.session["clips_seen"] = seen
    audit_record(actor=request.user, action=action, obj=clip, txn=clip.transaction)


# --------------------------------------------------------------------------- serving


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) byte of a single `bytes=` range; None when absent or not one range (serve
    it all, which RFC 9110 allows); False when it cannot be satisfied."""
    match = _RANGE.match(header.strip()) if header else None
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def _stream(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def serve_file(request: HttpRequest, field_file: Any, *, content_type: str | None = None) -> HttpResponse:
    """Send a stored file with Range, ETag and Last-Modified; or hand it to the proxy."""
    if not field_file or not field_file.name:
        raise Http404("no file")
    storage, name = field_file.storage, field_file.name
    content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    mode = settings.MEDIA_SERVE_MODE
    if mode in ("nginx", "sendfile"):
        response = HttpResponse(content_type=content_type)
        if mode == "nginx":
            response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_PREFIX.rstrip("/") + "/" + name.lstrip("/")
        else:
            response["X-Sendfile"] = storage.path(name)
        response["Cache-Control"] = CACHE_CONTROL
        return response
    try:
        size = storage.size(name)
        modified = storage.get_modified_time(name)
    except (OSError, NotImplementedError):
        raise Http404("file missing")
    etag = quote_etag(f"{size:x}-{int(modified.timestamp()):x}")
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified()
    byte_range = parse_range(request.headers.get("Range", ""), size)
    if_range = request.headers.get("If-Range")
    if if_range and if_range != etag and if_range != http_date(modified.timestamp()):
        byte_range = None  # the client's copy is stale: send it all
    if byte_range is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    else:
        start, end = byte_range if byte_range else (0, size - 1)
        length = max(0, end - start + 1)
        handle = storage.open(name, "rb")
        response = StreamingHttpResponse(_stream(handle, start, length), content_type=content_type)
        response["Content-Length"] = str(length)
        if byte_range:
            response.status_code = 206
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Last-Modified"] = http_date(modified.timestamp())
    response["Cache-Control"] = CACHE_CONTROL
    return response


# --------------------------------------------------------------------------- views

ANY_ROLE = (REVIEWER, SUPERVISOR, AUDITOR)


@require_GET
@role_required(*ANY_ROLE)
def clip(request: HttpRequest, code: Any) -> HttpResponse:
    item = _clip_or_404(request.user, code)
    if item.purged_at:
        return _gone(item)
    original = request.GET.get("original") == "1"
    if original:
        reason = request.GET.get("reason", "").strip()
        if not is_supervisor(request.user):
            raise Http404("no such clip")
        if len(reason) < 5:
            return HttpResponse(
                "Say why you need the original (reason=...).", status=400, content_type="text/plain"
            )
        if request.headers.get("Range", "bytes=0-").startswith("bytes=0-"):
            audit_record(
                actor=request.user,
                action="clip.original_viewed",
                obj=item,
                txn=item.transaction,
                data={"reason": reason[:500]},
            )
    field = clip_file_for(request.user, item, original=original)
    if not field:
        return HttpResponse(
            "The redacted clip is not ready yet; try again in a moment.",
            status=409,
            content_type="text/plain",
        )
    response = serve_file(request, field, content_type="video/mp4")
    if response.status_code in (200, 206) and request.headers.get("Range", "bytes=0-").startswith("bytes=0-"):
        prefetch = request.headers.get("X-Prefetch") == "1"
        audit_clip_view(request, item, action="clip.prefetched" if prefetch else "clip.viewed")
    return response


@require_GET
@role_required(*ANY_ROLE)
def poster(request: HttpRequest, code: Any) -> HttpResponse:
    item = _clip_or_404(request.user, code)
    if item.purged_at:
        return _gone(item)
    return serve_file(request, item.poster)


@require_GET
@role_required(*ANY_ROLE)
def crop(request: HttpRequest, code: Any, which: str) -> HttpResponse:
    if which not in ("before", "after"):
        raise Http404("no such crop")
    event = EvidenceEvent.objects.select_related("transaction").filter(code=code).first()
    if event is None or event.transaction is None or not may_see_media(request.user, event.transaction):
        raise Http404("no such event")
    return serve_file(request, event.after_crop if which == "after" else event.before_crop)


@require_GET
@role_required(*ANY_ROLE)
def product_image(request: HttpRequest, code: Any) -> HttpResponse:
    product = Product.objects.filter(code=code).first()
    if product is None:
        raise Http404("no such product")
    return serve_file(request, product.image)
