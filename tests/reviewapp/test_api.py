"""The store-system API: per-store keys, clear 4xx errors naming the field, nothing half-written."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reviewapp.models import Camera, Footage, Product, Store, Transaction, Visit
from reviewapp.services.audit import SYSTEM
from reviewapp.services.stores import api_key_create


@pytest.fixture
def key(store):
    return api_key_create(store=store, label="pos", actor=SYSTEM)


@pytest.fixture
def api(client, key):
    def call(method, path, data=None, *, auth=key, **extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {auth}"} if auth else {}
        if method == "get":
            return client.get(path, **headers)
        multipart = isinstance(data, dict) and any(isinstance(v, SimpleUploadedFile) for v in data.values())
        if isinstance(data, dict | list) and not multipart and "content_type" not in extra:
            return client.post(path, json.dumps(data), content_type="application/json", **headers)
        return client.post(path, data, **headers, **extra)

    return call


VISIT = {
    "external_id": "v-1",
    "token": "pm_abcdef123456",
    "entered_at": "2026-11-25T10:00:00Z",
    "exited_at": "2026-11-25T10:05:00Z",
}


def test_it_refuses_a_missing_or_wrong_key(api) -> None:
    assert api("post", "/api/v1/visits", VISIT, auth=None).status_code == 401
    assert api("post", "/api/v1/visits", VISIT, auth="nope.nope").status_code == 401


def test_it_creates_a_visit_once(api, store) -> None:
    first = api("post", "/api/v1/visits", VISIT)
    again = api("post", "/api/v1/visits", VISIT)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["visit"] == again.json()["visit"]
    visit = Visit.objects.get(store=store)
    assert visit.token_last4 == "3456" and "pm_abcdef" not in visit.token_hash


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"entered_at": "yesterday"}, "entered_at"),
        ({"entered_at": "2026-11-25T10:00:00"}, "entered_at"),
        ({"entered_at": "2026-13-45T10:00:00Z"}, "entered_at"),  # well formed, no such day
        ({"exited_at": "2026-11-25T25:00:00Z"}, "exited_at"),
        ({"exited_at": "2026-11-25T09:00:00Z"}, "exited_at"),
        ({"token": 42}, "token"),
    ],
)
def test_a_malformed_visit_is_refused_naming_the_field(api, change, field) -> None:
    response = api("post", "/api/v1/visits", {**VISIT, **change})
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Visit.objects.exists()


def test_a_body_that_is_not_json_is_refused(api) -> None:
    response = api("post", "/api/v1/visits", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "body"


@pytest.fixture
def product(store):
    return Product.objects.create(store=store, sku="SKU-1", name="Tea", price=250, currency="USD")


def test_an_external_cart_is_recorded_and_triaged(
    api, store, product, django_capture_on_commit_callbacks
) -> None:
    api("post", "/api/v1/visits", VISIT)
    cart = {"visit": "v-1", "confidence": 0.99, "lines": [{"sku": "SKU-1", "qty": 2, "confidence": 0.99}]}
    with django_capture_on_commit_callbacks(execute=False):
        response = api("post", "/api/v1/carts", cart)
    assert response.status_code == 201, response.content
    txn = Transaction.objects.get(code=response.json()["transaction"])
    assert txn.source == "external" and txn.proposed_amount == 500
    assert txn.state in ("auto_approved", "needs_review")
    assert api("post", "/api/v1/carts", cart).status_code == 409  # a second cart for the same visit


def test_an_external_cart_with_an_unknown_sku_writes_nothing(api, product) -> None:
    api("post", "/api/v1/visits", VISIT)
    cart = {
        "visit": "v-1",
        "confidence": 0.5,
        "lines": [{"sku": "SKU-1", "qty": 1}, {"sku": "NOPE", "qty": 1}],
    }
    response = api("post", "/api/v1/carts", cart)
    assert response.status_code == 400 and "lines[1].sku" in response.json()["error"]
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"sku": "SKU-1", "qty": 0}, "lines[0].qty"),
        ({"sku": "SKU-1", "qty": 1, "confidence": 2}, "lines[0].confidence"),
    ],
)
def test_a_malformed_cart_line_is_refused_naming_the_field(api, product, line, field) -> None:
    api("post", "/api/v1/visits", VISIT)
    response = api("post", "/api/v1/carts", {"visit": "v-1", "confidence": 0.5, "lines": [line]})
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_key_reaches_only_its_own_store(api, make_transaction) -> None:
    other = Store.objects.create(name="Other")
    other_key = api_key_create(store=other, label="", actor=SYSTEM)
    txn = make_transaction("settled")
    assert api("get", f"/api/v1/transactions/{txn.code}").status_code == 200
    assert api("get", f"/api/v1/transactions/{txn.code}", auth=other_key).status_code == 404


@pytest.fixture
def camera(store):
    return Camera.objects.create(store=store, name="shelf-1", width=640, height=360, fps=15)


def test_footage_that_is_not_an_mp4_is_refused(api, camera) -> None:
    upload = SimpleUploadedFile("x.mp4", b"GIF89a" + b"\x00" * 100, content_type="video/mp4")
    response = api(
        "post", "/api/v1/footage", {"file": upload, "camera": "shelf-1", "started_at": "2026-11-25T10:00:00Z"}
    )
    assert response.status_code == 415 and response.json()["field"] == "file"
    assert not Footage.objects.exists()


def test_oversized_footage_is_refused(api, camera, settings) -> None:
    settings.MAX_FOOTAGE_UPLOAD_MB = 1
    upload = SimpleUploadedFile("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (1024 * 1024 + 100))
    response = api(
        "post", "/api/v1/footage", {"file": upload, "camera": "shelf-1", "started_at": "2026-11-25T10:00:00Z"}
    )
    assert response.status_code == 413
    assert not Footage.objects.exists()


@pytest.mark.slow
def test_footage_upload_is_stored_and_queued(
    api, camera, small_scene, django_capture_on_commit_callbacks
) -> None:
    data = (small_scene / "footage.mp4").read_bytes()
    upload = SimpleUploadedFile("shelf.mp4", data, content_type="video/mp4")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api(
            "post",
            "/api/v1/footage",
            {"file": upload, "camera": "shelf-1", "started_at": "2026-11-25T10:00:00Z"},
        )
    assert response.status_code == 202, response.content
    footage = Footage.objects.get(code=response.json()["footage"])
    assert footage.status == "queued" and footage.duration_s > 10 and footage.size_bytes == len(data)
    assert len(callbacks) == 1
    status = api("get", f"/api/v1/footage/{footage.code}").json()
    assert status["status"] == "queued"


def test_an_unknown_camera_is_refused(api, camera, small_scene) -> None:
    upload = SimpleUploadedFile("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    response = api(
        "post", "/api/v1/footage", {"file": upload, "camera": "nope", "started_at": "2026-11-25T10:00:00Z"}
    )
    assert response.status_code == 400 and response.json()["field"] == "camera"


LINE = {"sku": "SKU-1", "qty": 1}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/visits", "[]", "body"),
        ("/api/v1/visits", "null", "body"),
        ("/api/v1/visits", json.dumps({**VISIT, "external_id": "x" * 5000}), "external_id"),
        ("/api/v1/visits", json.dumps({**VISIT, "token": "p" * 5000}), "token"),
        ("/api/v1/visits", json.dumps({**VISIT, "entered_at": 12345}), "entered_at"),
        # no text column can hold a NUL (PostgreSQL refuses it outright): named, not a server error
        ("/api/v1/visits", json.dumps({**VISIT, "external_id": "v\x002"}), "external_id"),
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "confidence": 0.5, "lines": [{**LINE, "sku": "S\x00"}]}),
            "lines[0].sku",
        ),  # fmt: skip
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "confidence": 0.5, "lines": [{**LINE, "n\x00": 1}]}),
            "lines[0].n\x00",
        ),  # fmt: skip
        ("/api/v1/carts", json.dumps({"visit": "v-1", "confidence": 0.5, "lines": ["x"]}), "lines[0]"),
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "confidence": 0.5, "lines": [{**LINE, "qty": 1.5}]}),
            "lines[0].qty",
        ),  # fmt: skip
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "confidence": 0.5, "lines": [{**LINE, "qty": 10**12}]}),
            "lines[0].qty",
        ),  # fmt: skip
        ("/api/v1/carts", '{"visit": "v-1", "confidence": NaN, "lines": []}', "confidence"),
        ("/api/v1/carts", '{"visit": "v-1", "confidence": Infinity, "lines": []}', "confidence"),
        ("/api/v1/carts", json.dumps({"visit": 7, "confidence": 0.5, "lines": []}), "visit"),
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "footage": "not-a-code", "confidence": 0.5, "lines": []}),
            "footage",
        ),  # fmt: skip
        (
            "/api/v1/carts",
            json.dumps({"visit": "v-1", "footage": 12, "confidence": 0.5, "lines": []}),
            "footage",
        ),  # fmt: skip
        ("/api/v1/disputes", json.dumps({"transaction": None}), "transaction"),
        (
            "/api/v1/disputes",
            json.dumps({"transaction": "not-a-uuid", "token": "x", "statement": "s", "external_id": "e"}),
            "transaction",
        ),  # fmt: skip
        (
            "/api/v1/disputes",
            json.dumps(
                {"transaction": "x", "token": "x", "statement": "I took\x00 nothing", "external_id": "e"}
            ),
            "statement",
        ),  # fmt: skip
    ],
)
def test_a_malformed_body_gets_a_4xx_naming_the_field_never_a_server_error(
    api, product, path, body, field
) -> None:
    api("post", "/api/v1/visits", VISIT)
    before = (Visit.objects.count(), Transaction.objects.count())
    response = api("post", path, body, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["field"] == field and response.json()["error"]
    assert (Visit.objects.count(), Transaction.objects.count()) == before  # nothing half-written


def test_a_visit_reported_at_the_gate_gets_its_exit_later_and_an_id_reused_for_other_facts_is_refused(
    api, store
) -> None:
    from reviewapp.models import AuditEvent

    entering = {**VISIT, "exited_at": None}
    assert api("post", "/api/v1/visits", entering).status_code == 201  # the shopper is inside
    assert Visit.objects.get().exited_at is None
    left = api("post", "/api/v1/visits", VISIT)  # the same visit again, now with its exit
    assert left.status_code == 200 and left.json()["created"] is False
    assert Visit.objects.get().exited_at.isoformat() == "2026-11-25T10:05:00+00:00"
    assert AuditEvent.objects.filter(action="visit.exited").count() == 1
    assert api("post", "/api/v1/visits", VISIT).status_code == 200  # a retry: nothing changes
    assert api("post", "/api/v1/visits", entering).status_code == 200  # an old message: nor here
    assert AuditEvent.objects.filter(action="visit.exited").count() == 1
    for change, field in (
        ({"exited_at": "2026-11-25T10:09:00Z"}, "exited_at"),
        ({"token": "pm_someone_else9"}, "token"),
        ({"entered_at": "2026-11-25T09:59:00Z"}, "entered_at"),
    ):
        response = api("post", "/api/v1/visits", {**VISIT, **change})
        assert response.status_code == 409 and response.json()["field"] == field, response.content
    visit = Visit.objects.get()
    assert visit.exited_at.isoformat() == "2026-11-25T10:05:00+00:00" and visit.token_last4 == "3456"
