"""The admin login resists brute force (django-axes)."""

from __future__ import annotations

from django.test import Client

from tests.factories import UserFactory


def login(client: Client, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": "reviewer", "password": password})


def test_five_wrong_passwords_lock_the_account_for_that_address(db, settings):
    settings.AXES_FAILURE_LIMIT = 5
    UserFactory(username="reviewer", is_staff=True, password="right-password-123")
    client = Client()
    for _ in range(4):
        assert login(client, "wrong").status_code == 200  # the form again, with an error
    locked = login(client, "wrong")
    assert locked.status_code == 429
    assert login(client, "right-password-123").status_code == 429  # even the right password, while locked


def test_a_successful_login_resets_the_count(db, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="reviewer", is_staff=True, password="right-password-123")
    client = Client()
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, "right-password-123").status_code == 302
    client.logout()
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, "right-password-123").status_code == 302
