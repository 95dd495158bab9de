"""Every URL × every role, with the answer each must get. One table; the test walks it all.

Roles: anonymous, the reviewer holding the task, another reviewer, a supervisor, an
auditor. The store API is walked with no key, its own store's key and another store's.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import (
    Camera,
    Charge,
    Clip,
    EvidenceEvent,
    Footage,
    Product,
    ProposedLine,
    ReviewTask,
    Store,
)
from reviewapp.services.audit import SYSTEM
from reviewapp.services.review import claim_next_task
from reviewapp.services.stores import api_key_create

ROLES = ("anonymous", "holder", "other_reviewer", "supervisor", "auditor")
LOGIN = "login"  # a redirect to the log-in page


@pytest.fixture
def world(store, make_transaction, reviewer, other_reviewer, supervisor, auditor):
    product = Product.objects.create(store=store, sku="A", name="A", price=100, currency="USD")
    product.image.save("a.png", ContentFile(b"png"))
    txn = make_transaction("needs_review", confidence=0.5, proposed_amount=100)
    ProposedLine.objects.create(transaction=txn, product=product, qty=1, unit_price=100, confidence=0.5)
    clip = Clip(transaction=txn, t_start=0, t_end=4)
    clip.file.save("c.mp4", ContentFile(b"original"), save=False)
    clip.redacted_file.save("r.mp4", ContentFile(b"redacted"), save=False)
    clip.poster.save("p.jpg", ContentFile(b"jpg"), save=False)
    clip.save()
    event = EvidenceEvent.objects.create(
        transaction=txn, kind="pick", qty=1, t_start=1, t_end=2, confidence=0.5, product=product
    )
    event.before_crop.save("b.png", ContentFile(b"png"))
    event.after_crop.save("a.png", ContentFile(b"png"))
    task = ReviewTask.objects.create(transaction=txn, settle_by=timezone.now() + timedelta(hours=1))
    assert claim_next_task(reviewer=reviewer).pk == task.pk
    settled = make_transaction("approved", final_amount=100)
    charge = Charge.objects.create(
        transaction=settled, amount=100, currency="USD", idempotency_key="k", state="failed"
    )
    camera = Camera.objects.create(store=store, name="cam", width=64, height=36, fps=15)
    footage = Footage.objects.create(store=store, camera=camera, started_at=timezone.now())
    users = {
        "holder": reviewer,
        "other_reviewer": other_reviewer,
        "supervisor": supervisor,
        "auditor": auditor,
    }
    return {"txn": txn, "task": task, "clip": clip, "event": event, "product": product, "charge": charge,
            "store": store, "footage": footage, "users": users}  # fmt: skip


def url_of(world, name):
    w = world
    args = {
        "reviewer:task": [w["task"].code], "reviewer:decide": [w["task"].code], "reviewer:skip": [w["task"].code],
        "reviewer:renew": [w["task"].code], "reviewer:leave": [w["task"].code],
        "reviewer:undo": [w["txn"].code],  # no decision of theirs has this code
        "supervisor:take-task": [w["task"].code], "supervisor:reassign-task": [w["task"].code],
        "supervisor:retry-charge": [w["charge"].code], "supervisor:store-policy": [w["store"].code],
        "supervisor:calibration": [w["store"].code], "supervisor:mark-gold": [w["txn"].code],
        "supervisor:legal-hold": [w["txn"].code], "auditor:history": [w["txn"].code],
        "media:clip": [w["clip"].code], "media:clip-poster": [w["clip"].code],
        "media:crop": [w["event"].code, "before"], "media:product-image": [w["product"].code],
    }.get(name, [])  # fmt: skip
    return reverse(name, args=args)


# (url name, method): answers for anonymous, holder, other reviewer, supervisor, auditor.
# A POST that would change state for an allowed role is listed with the role's answer
# from a harmless body (no body); the point is who gets past the door.
TABLE = {
    ("home", "GET"): (LOGIN, 302, 302, 302, 302),
    ("reviewer:start", "GET"): (LOGIN, 200, 200, 200, 403),
    ("reviewer:next", "GET"): (405, 405, 405, 405, 405),
    ("reviewer:next", "POST"): (LOGIN, 302, 302, 302, 403),
    ("reviewer:task", "GET"): (LOGIN, 200, 404, 200, 403),
    ("reviewer:decide", "GET"): (405, 405, 405, 405, 405),
    # a supervisor may open any task, but only its holder can act on it: the service refuses
    ("reviewer:decide", "POST"): (LOGIN, 400, 404, 400, 403),
    ("reviewer:skip", "POST"): (LOGIN, 400, 404, 400, 403),
    ("reviewer:renew", "POST"): (LOGIN, 200, 404, 409, 403),
    ("reviewer:leave", "POST"): (LOGIN, 204, 404, 204, 403),
    ("reviewer:undo", "GET"): (405, 405, 405, 405, 405),
    ("reviewer:undo", "POST"): (LOGIN, 404, 404, 404, 403),
    ("supervisor:dashboard", "GET"): (LOGIN, 403, 403, 200, 403),
    ("supervisor:take-task", "GET"): (405, 405, 405, 405, 405),
    ("supervisor:take-task", "POST"): (LOGIN, 403, 403, 302, 403),
    ("supervisor:reassign-task", "POST"): (LOGIN, 403, 403, 302, 403),
    ("supervisor:retry-charge", "POST"): (LOGIN, 403, 403, 302, 403),
    ("supervisor:store-policy", "GET"): (LOGIN, 403, 403, 200, 403),
    ("supervisor:store-policy", "POST"): (LOGIN, 403, 403, 200, 403),
    ("supervisor:calibration", "GET"): (LOGIN, 403, 403, 200, 403),
    ("supervisor:mark-gold", "POST"): (LOGIN, 403, 403, 302, 403),
    ("supervisor:legal-hold", "POST"): (LOGIN, 403, 403, 302, 403),
    ("auditor:search", "GET"): (LOGIN, 403, 403, 200, 200),
    ("auditor:search", "POST"): (LOGIN, 403, 403, 403, 403),
    ("auditor:history", "GET"): (LOGIN, 403, 403, 200, 200),
    ("auditor:history", "POST"): (LOGIN, 403, 403, 403, 403),
    ("auditor:export-csv", "GET"): (LOGIN, 403, 403, 200, 200),
    ("auditor:export-jsonl", "GET"): (LOGIN, 403, 403, 200, 200),
    ("auditor:export-csv", "POST"): (LOGIN, 403, 403, 403, 403),
    ("auditor:verify", "GET"): (LOGIN, 403, 403, 200, 200),
    ("media:clip", "GET"): (LOGIN, 200, 404, 200, 200),
    ("media:clip", "POST"): (405, 405, 405, 405, 405),
    ("media:clip-poster", "GET"): (LOGIN, 200, 404, 200, 200),
    ("media:crop", "GET"): (LOGIN, 200, 404, 200, 200),
    ("media:product-image", "GET"): (LOGIN, 200, 200, 200, 200),
}


@pytest.mark.parametrize(("name", "method"), list(TABLE))
def test_every_url_answers_each_role_as_the_table_says(world, name, method) -> None:
    url = url_of(world, name)
    got = []
    for role in ROLES:
        client = Client(enforce_csrf_checks=False)
        if role != "anonymous":
            client.force_login(world["users"][role])
        response = client.post(url) if method == "POST" else client.get(url)
        if response.status_code == 302 and reverse("login") in response.get("Location", ""):
            got.append(LOGIN)
        else:
            got.append(response.status_code)
    assert tuple(got) == TABLE[(name, method)], dict(zip(ROLES, got, strict=True))


def test_posts_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["users"]["holder"])
    assert client.post(url_of(world, "reviewer:renew")).status_code == 403


API = [
    ("POST", "api:visits", None),
    ("POST", "api:footage", None),
    ("GET", "api:footage-detail", "footage"),
    ("POST", "api:carts", None),
    ("POST", "api:disputes", None),
    ("GET", "api:transaction-detail", "txn"),
]


@pytest.mark.parametrize(("method", "name", "obj"), API)
def test_the_api_answers_no_key_its_own_key_and_another_stores_key(world, method, name, obj) -> None:
    own = api_key_create(store=world["store"], label="", actor=SYSTEM)
    other = api_key_create(store=Store.objects.create(name="Elsewhere"), label="", actor=SYSTEM)
    url = reverse(name, args=[world[obj].code] if obj else [])
    answers = []
    for key in (None, own, other):
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        response = (
            client.get(url, **headers)
            if method == "GET"
            else client.post(url, "{}", content_type="application/json", **headers)
        )
        answers.append(response.status_code)
    if method == "GET":
        assert answers == [401, 200, 404]  # another store's key: as if it did not exist
    else:
        assert answers[0] == 401 and answers[1] in (400, 415) and answers[2] in (400, 415)
