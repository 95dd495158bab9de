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
    response = client.get(reverse("supervisor:dashboard"))
    assert response.status_code == 403
    # a page in the app's frame saying why and where to go, not a bare "403 Forbidden"
    page = response.content.decode()
    assert "Your role does not include this page." in page
    assert f'href="{reverse("home")}"' in page and "Log out" in page


def test_an_unknown_address_gets_a_page_with_the_way_back(client, reviewer) -> None:
    client.force_login(reviewer)
    response = client.get("/review/no-such-page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode() and "Go to your start page" in response.content.decode()


def test_a_stale_form_says_nothing_was_saved(reviewer) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    response = client.post(reverse("logout"))
    assert response.status_code == 403
    assert "Nothing was saved" in response.content.decode()


def test_the_icon_is_served(client, db) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_an_auditor_cannot_post(client, auditor) -> None:
    client.force_login(auditor)
    assert client.post(reverse("auditor:search")).status_code == 403


def test_log_in_with_a_password_reaches_the_role_page(client, reviewer) -> None:
    response = client.post(reverse("login"), {"username": "rita", "password": "pw-rita"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("reviewer:start")


def test_the_roles_exist_after_migrating(db) -> None:
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewer", "supervisor", "auditor"}
