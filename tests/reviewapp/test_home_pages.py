"""Each role lands on its own page; anonymous users are sent to log in."""

from __future__ import annotations

import pytest
from django.urls import reverse


def test_anonymous_users_are_sent_to_log_in(client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_login_page_renders(client, db) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in" in response.content


@pytest.mark.parametrize(
    ("persona", "landing"),
    [
        ("reviewer", "reviewer:start"),
        ("supervisor", "supervisor:dashboard"),
        ("auditor", "auditor:search"),
    ],
)
def test_each_role_lands_on_its_page(client, request, persona, landing) -> None:
    client.force_login(request.getfixturevalue(persona))
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == reverse(landing)
    assert response.status_code == 200


def test_a_user_without_a_role_is_told_so(client, outsider) -> None:
    client.force_login(outsider)
    response = client.get("/")
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_a_reviewer_cannot_open_the_supervisor_dashboard(client, reviewer) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("supervisor:dashboard")).status_code == 403


def test_an_auditor_cannot_post(client, auditor) -> None:
    client.force_login(auditor)
    assert client.post(reverse("auditor:search")).status_code == 403


def test_log_in_with_a_password_reaches_the_role_page(client, reviewer) -> None:
    response = client.post(reverse("login"), {"username": "rita", "password": "pw-rita"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("reviewer:start")


def test_the_roles_exist_after_migrating(db) -> None:
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewer", "supervisor", "auditor"}
