"""The helpers that point a test's processes (Celery, gunicorn) at its own databases."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import worker_redis_url
from tests.processes import database_url


def settings(name: str, test_name: str | None = None) -> dict:
    return {
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "TEST": {"NAME": test_name},
    }


def test_a_serial_run_uses_the_database_django_created():
    # Without pytest-xdist no TEST NAME is set: Django renamed NAME to test_<name>.
    assert database_url(settings("test_hitl")) == "postgres://postgres@127.0.0.1:5432/test_hitl"


def test_an_xdist_worker_uses_its_own_test_database():
    url = database_url(settings("test_hitl_gw1", test_name="test_hitl_gw1"))
    assert url == "postgres://postgres@127.0.0.1:5432/test_hitl_gw1"


@pytest.mark.parametrize(
    "name, test_name", [("hitl", None), ("hitl", "test_hitl_gw0"), ("test_hitl_gw1", "test_hitl_gw0")]
)
def test_a_database_that_is_not_the_tests_own_is_refused(name, test_name):
    with pytest.raises(AssertionError, match="not yet on the test database"):
        database_url(settings(name, test_name))


@pytest.mark.postgres
def test_database_url_names_the_current_connection(db):
    assert database_url().endswith("/" + connection.settings_dict["NAME"])


@pytest.mark.parametrize(
    "url, worker, expected",
    [
        ("redis://127.0.0.1:6379/15", 0, "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/15", 1, "redis://127.0.0.1:6379/14"),
        ("redis://127.0.0.1:6379/0", 1, "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379", 2, "redis://127.0.0.1:6379/14"),
        ("unix:///run/redis.sock?db=3", 1, "unix:///run/redis.sock?db=2"),
    ],
)
def test_each_xdist_worker_gets_a_redis_database_of_its_own(url, worker, expected):
    assert worker_redis_url(url, worker) == expected
