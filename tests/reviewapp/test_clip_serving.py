"""Clip bytes: Range requests (206/416), who may fetch them, the proxy modes, and one audit per view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import AuditEvent, Clip, EvidenceEvent, Product, ReviewTask
from reviewapp.services.review import claim_next_task
from reviewapp.views.media import clip_file_for, parse_range

BODY = bytes(range(256)) * 40  # 10240 bytes, every offset recognisable


@pytest.fixture
def clip(make_transaction):
    txn = make_transaction("needs_review")
    item = Clip(transaction=txn, t_start=1.0, t_end=9.0)
    item.file.save(f"{txn.code}.mp4", ContentFile(b"ORIGINAL" + BODY[8:]), save=False)
    item.redacted_file.save(f"{txn.code}-r.mp4", ContentFile(BODY), save=False)
    item.poster.save(f"{txn.code}.jpg", ContentFile(b"jpeg"), save=False)
    item.save()
    ReviewTask.objects.create(transaction=txn, settle_by=timezone.now() + timedelta(hours=1))
    return item


@pytest.fixture
def holder(reviewer, clip):
    claim_next_task(reviewer=reviewer)
    return reviewer


def get(user, clip, **headers):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(reverse("media:clip", args=[clip.code]), **headers)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_range_answers_206_with_content_range(holder, clip) -> None:
    response = get(holder, clip, HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-199/{len(BODY)}"
    assert response["Content-Length"] == "100" and response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == BODY[100:200]


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=10000-", 10000, len(BODY) - 1),
        ("bytes=-240", len(BODY) - 240, len(BODY) - 1),
        ("bytes=0-99999", 0, len(BODY) - 1),
    ],
)
def test_open_and_suffix_ranges(holder, clip, header, first, last) -> None:
    response = get(holder, clip, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert body(response) == BODY[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=20000-", "bytes=500-100", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416(holder, clip, header) -> None:
    response = get(holder, clip, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(BODY)}"


def test_no_range_answers_200_with_everything(holder, clip) -> None:
    response = get(holder, clip)
    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes" and response["Content-Length"] == str(len(BODY))
    assert response["ETag"] and response["Last-Modified"] and "private" in response["Cache-Control"]
    assert body(response) == BODY


def test_several_ranges_or_junk_are_answered_with_everything(holder, clip) -> None:
    for header in ("bytes=0-1,5-6", "lines=1-2", "bytes=x-y"):
        response = get(holder, clip, HTTP_RANGE=header)
        assert response.status_code == 200, header


def test_a_stale_if_range_gets_the_whole_file_and_a_fresh_etag_a_304(holder, clip) -> None:
    etag = get(holder, clip)["ETag"]
    assert get(holder, clip, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"').status_code == 200
    assert get(holder, clip, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag).status_code == 206
    assert get(holder, clip, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_supervisors_and_auditors_may_fetch_any_clip(supervisor, auditor, clip) -> None:
    assert get(supervisor, clip, HTTP_RANGE="bytes=0-9").status_code == 206
    assert get(auditor, clip, HTTP_RANGE="bytes=0-9").status_code == 206


def test_other_reviewers_get_404_and_so_does_the_holder_once_the_task_is_gone(
    holder, other_reviewer, clip
) -> None:
    assert get(other_reviewer, clip).status_code == 404
    ReviewTask.objects.filter(transaction=clip.transaction).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert get(holder, clip).status_code == 404


def test_a_reviewer_without_the_task_gets_404_and_anonymous_users_log_in(reviewer, outsider, clip) -> None:
    assert get(reviewer, clip).status_code == 404  # queued, not claimed
    assert get(outsider, clip).status_code == 403  # no role at all
    response = get(None, clip)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_posters_and_crops_follow_the_clip_rules(holder, other_reviewer, clip) -> None:
    event = EvidenceEvent.objects.create(
        transaction=clip.transaction, kind="pick", t_start=2, t_end=3, confidence=0.5
    )
    event.before_crop.save("b.png", ContentFile(b"png-before"), save=True)
    urls = [
        reverse("media:clip-poster", args=[clip.code]),
        reverse("media:crop", args=[event.code, "before"]),
    ]
    for url in urls:
        mine, theirs = Client(), Client()
        mine.force_login(holder)
        theirs.force_login(other_reviewer)
        assert mine.get(url).status_code == 200, url
        assert theirs.get(url).status_code == 404, url
    mine = Client()
    mine.force_login(holder)
    assert mine.get(reverse("media:crop", args=[event.code, "sideways"])).status_code == 404


def test_product_images_are_for_any_role(reviewer, outsider, store) -> None:
    product = Product(store=store, sku="A", name="A", price=1, currency="USD")
    product.image.save("a.png", ContentFile(b"png"), save=True)
    client = Client()
    client.force_login(reviewer)
    assert client.get(reverse("media:product-image", args=[product.code])).status_code == 200
    client.force_login(outsider)
    assert client.get(reverse("media:product-image", args=[product.code])).status_code == 403


def test_a_view_is_audited_once_not_per_range_request(holder, clip) -> None:
    client = Client()
    client.force_login(holder)
    url = reverse("media:clip", args=[clip.code])
    for header in ("bytes=0-", "bytes=4096-", "bytes=8192-", "bytes=0-"):
        client.get(url, HTTP_RANGE=header)
    events = AuditEvent.objects.filter(action="clip.viewed", object_code=str(clip.code))
    assert events.count() == 1 and events.get().actor == holder


def test_a_prefetch_is_logged_as_one_not_as_a_view_and_opening_the_task_is_the_view(holder, clip) -> None:
    """The review page fetches the next task's clip into the browser cache while its reviewer is
    still on another task; an auditor's 'viewed by' must not count that."""
    client = Client()
    client.force_login(holder)
    client.get(reverse("media:clip", args=[clip.code]), HTTP_RANGE="bytes=0-", HTTP_X_PREFETCH="1")
    logged = AuditEvent.objects.filter(object_code=str(clip.code))
    assert list(logged.values_list("action", flat=True)) == ["clip.prefetched"]
    task = ReviewTask.objects.get(transaction=clip.transaction)
    assert client.get(reverse("reviewer:task", args=[task.code])).status_code == 200
    assert logged.filter(action="clip.viewed", actor=holder).count() == 1
    client.get(reverse("media:clip", args=[clip.code]), HTTP_RANGE="bytes=0-")  # not served from the cache
    assert logged.filter(action="clip.viewed").count() == 1


def test_the_proxy_modes_hand_the_bytes_to_the_proxy(settings, holder, clip) -> None:
    settings.MEDIA_SERVE_MODE = "nginx"
    settings.MEDIA_ACCEL_PREFIX = "/protected-media/"
    response = get(holder, clip, HTTP_RANGE="bytes=0-9")
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{clip.redacted_file.name}"
    assert response["Content-Type"] == "video/mp4"
    settings.MEDIA_SERVE_MODE = "sendfile"
    response = get(holder, clip)
    assert response["X-Sendfile"] == clip.redacted_file.path
    # the access check still comes first
    settings.MEDIA_SERVE_MODE = "nginx"
    ReviewTask.objects.filter(transaction=clip.transaction).update(
        assignee=None, state="queued", lease_expires_at=None
    )
    assert get(holder, clip).status_code == 404


def test_in_privacy_mode_everyone_gets_the_redacted_clip(reviewer, supervisor, auditor, clip) -> None:
    for user in (reviewer, supervisor, auditor):
        assert clip_file_for(user, clip) == clip.redacted_file
    assert clip_file_for(supervisor, clip, original=True) == clip.file
    assert clip_file_for(reviewer, clip, original=True) == clip.redacted_file
    clip.transaction.store.privacy_mode = False
    clip.transaction.store.save()
    clip.refresh_from_db()
    assert clip_file_for(reviewer, clip) == clip.file


def test_a_reviewer_never_receives_the_original_whatever_the_url(holder, clip) -> None:
    for query in ("", "?original=1", "?original=1&reason=curious+about+it", "?original=true"):
        client = Client()
        client.force_login(holder)
        response = client.get(reverse("media:clip", args=[clip.code]) + query)
        if response.status_code == 200:
            assert body(response) == BODY  # the redacted bytes
        else:
            assert response.status_code in (400, 404)
    clip.redacted_file = ""
    clip.save()
    response = get(holder, clip)
    assert response.status_code == 409  # not made yet: nothing, never the original


def test_a_supervisor_sees_the_original_only_with_a_reason_which_is_audited(supervisor, clip) -> None:
    client = Client()
    client.force_login(supervisor)
    url = reverse("media:clip", args=[clip.code])
    assert client.get(url + "?original=1").status_code == 400
    response = client.get(url + "?original=1&reason=dispute+D-17+needs+the+face")
    assert response.status_code == 200 and body(response).startswith(b"ORIGINAL")
    event = AuditEvent.objects.get(action="clip.original_viewed")
    assert event.actor_id == supervisor.id and "D-17" in event.data["reason"]


def test_a_purged_clip_answers_410_gone(holder, clip) -> None:
    clip.purged_at = timezone.now()
    clip.purge_reason = "clip retention"
    clip.save()
    response = get(holder, clip)
    assert response.status_code == 410 and b"retention" in response.content


def test_parse_range() -> None:
    assert parse_range("", 100) is None
    assert parse_range("bytes=0-0", 100) == (0, 0)
    assert parse_range("bytes=-1", 100) == (99, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    assert parse_range("bytes=100-", 100) is False
    assert parse_range("bytes=-", 100) is None
    assert parse_range("bytes=1-2, 4-5", 100) is None
