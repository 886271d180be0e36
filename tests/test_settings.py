"""Settings from the environment: the secret key is required wherever it matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from hitl_project.settings import parse_database

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HITL_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_servers_refuse_to_start_without_a_secret_key_when_debug_is_off():
    wsgi = run("-c", "import hitl_project.wsgi")
    assert wsgi.returncode != 0 and "DJANGO_SECRET_KEY is required" in wsgi.stderr
    runserver = run("manage.py", "runserver", "--noreload", "127.0.0.1:0")
    assert runserver.returncode != 0 and "DJANGO_SECRET_KEY is required" in runserver.stderr


def test_management_commands_run_without_the_servers_secret():
    result = run("manage.py", "check")
    assert result.returncode == 0, result.stderr


def test_debug_mode_needs_no_secret_key():
    result = run("-c", "import hitl_project.wsgi", DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr


def test_postgresql_connections_are_tuned_and_keep_the_urls_own_options():
    ours = "-c jit=off -c cursor_tuple_fraction=1"
    plain = parse_database("postgres://app@db.internal:5432/hitl")
    assert plain["OPTIONS"]["options"] == ours
    tuned = parse_database("postgres://app@db.internal:5432/hitl?options=-c%20statement_timeout%3D5000")
    assert tuned["OPTIONS"]["options"] == f"-c statement_timeout=5000 {ours}"
    assert "options" not in parse_database("sqlite:///x.sqlite3")["OPTIONS"]


@pytest.mark.postgres
def test_the_services_connections_are_tuned(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), current_setting('cursor_tuple_fraction')")
        assert cursor.fetchone() == ("off", "1")
