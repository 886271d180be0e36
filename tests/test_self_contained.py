"""The repository stands alone: a copy in an empty folder, with nothing beside it,
runs its demo data and the tests that read the project's own files.

`.ci/run` runs the whole suite from such a copy; this test keeps the cheap part
of that promise in every `make test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a fresh clone does not have: local environments, databases, build output.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.sqlite3", "*.sqlite3-*", "staticfiles", "test-artifacts",
    ".pytest_cache", ".ruff_cache", "exports", "media",
)  # fmt: skip


def test_a_copy_with_nothing_beside_it_loads_the_demo_and_passes_the_policy_tests(tmp_path):
    # tmp_path/alone/repo: the repository's parent holds nothing else.
    copy = tmp_path / "alone" / "repo"
    shutil.copytree(ROOT, copy, ignore=NOT_IN_A_CLONE)
    ours = ("DJANGO_", "HITL_", "DATABASE_", "REDIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(DATABASE_URL=f"sqlite:///{copy / 'db.sqlite3'}", DJANGO_DEBUG="1")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=300
        )

    for command in (("manage.py", "migrate", "--noinput"), ("manage.py", "seed_demo")):
        result = run(*command)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/policies/test_io.py")
    assert tests.returncode == 0, tests.stdout[-3000:]
