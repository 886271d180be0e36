"""Real processes for tests and benchmarks: a private redis-server, and Celery
worker and beat processes and a gunicorn running this project against the test
database."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection
from django.db.backends.base.creation import TEST_DATABASE_PREFIX

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_group(process: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM a process group (a server and its workers); SIGKILL what is left after `grace`."""
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class RedisServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", *options, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, what="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class CeleryProcess:
    """A `celery worker` or `celery beat` process, killable with SIGKILL and restartable."""

    def __init__(self, kind: str, env: dict, log: Path, extra: list[str]):
        self.kind, self.env, self.log, self.extra = kind, env, log, extra
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        marker = f"--- start {self.starts}\n"
        with self.log.open("a") as log:
            log.write(marker)
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hitl_project",
            self.kind,
            "--loglevel",
            "INFO",
            *self.extra,
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait and self.kind == "worker":
            wait_until(
                lambda: self._ready(marker), 60, interval=0.2, what=f"celery worker start {self.starts}"
            )

    def _ready(self, marker: str) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"celery {self.kind} exited:\n{self.log.read_text()[-3000:]}")
        return " ready." in self.log.read_text().split(marker, 1)[-1]

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_group(self.process)


class GunicornProcess:
    """`gunicorn hitl_project.wsgi` on a spare port of 127.0.0.1 with sync workers, as
    production runs it; `env` says which database and Redis it uses."""

    def __init__(self, env: dict, log: Path, workers: int = 2):
        self.env, self.log, self.workers = env, log, workers
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "hitl_project.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", "sync",
            "--timeout", "60",
            "--graceful-timeout", "5",
            "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._serving, 30, interval=0.2, what="gunicorn")

    def _serving(self) -> bool:
        """Any HTTP answer from /healthz: a worker has booted (the master listens before they do)."""
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return True

    def stop(self) -> None:
        stop_group(self.process)


def database_url(settings_dict: dict | None = None) -> str:
    """The test database this process uses, for the processes a test starts. Under
    pytest-xdist each worker has its own (test_<name>_gw0, _gw1, ...), so a worker's
    Celery and gunicorn processes see that worker's rows and no other's.

    It refuses a connection not yet moved to the test database: the test's processes
    would write to the real one. Django renames NAME to the test database when it
    creates it; TEST NAME, when set (pytest-xdist sets it per worker), is that name."""
    db = connection.settings_dict if settings_dict is None else settings_dict
    named = (db.get("TEST") or {}).get("NAME")
    on_test = db["NAME"] == named if named else db["NAME"].startswith(TEST_DATABASE_PREFIX)
    assert on_test, f"on {db['NAME']}, not yet on the test database {named or TEST_DATABASE_PREFIX + '...'}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
