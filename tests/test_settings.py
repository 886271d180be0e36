"""Settings from the environment: the secret key is required wherever it matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
