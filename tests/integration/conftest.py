"""Real processes for the integration tests: a private redis-server, and Celery
worker and beat processes running this project against the test database.

Each test gets its own redis-server on a spare port, so stopping or restarting
the broker never touches a shared one, and the test process publishes to it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from hitl_project.celery import app as celery_app
from tests.conftest import missing_service
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


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
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(redis_server):
    """Point this process's Celery app at the private broker (as the web processes would be)."""
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager
    conf.broker_url, conf.task_always_eager = redis_server.url, False
    _reset_connections()
    yield redis_server
    conf.broker_url, conf.task_always_eager = saved
    _reset_connections()


def _reset_connections() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def receiver(settings):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver()
    yield server
    server.stop()


def database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_env(broker, tmp_path) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker.url,
        "DJANGO_SECRET_KEY": "integration-tests",
        "DJANGO_DEBUG": "0",
        "HITL_WEBHOOK_ALLOW_PRIVATE": "1",
        "HITL_DELIVERY_LEASE_SECONDS": "4",
        "HITL_DELIVERY_BACKOFF_SECONDS": "1",
        "HITL_DELIVERY_BACKOFF_MAX_SECONDS": "4",
        "HITL_OUTBOX_REDISPATCH_SECONDS": "2",
        "HITL_OUTBOX_SWEEP_SECONDS": "1",
        "HITL_SLA_SWEEP_SECONDS": "1",
        "DJANGO_CONN_MAX_AGE": "0",
    }
    return env


@pytest.fixture
def worker(celery_env, tmp_path):
    process = CeleryProcess(
        "worker",
        celery_env,
        tmp_path / "worker.log",
        [
            "--concurrency",
            "4",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-n",
            "itest@%h",
        ],
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def beat(celery_env, tmp_path):
    process = CeleryProcess(
        "beat", celery_env, tmp_path / "beat.log", ["--schedule", str(tmp_path / "beat-schedule")]
    )
    process.start(wait=False)
    yield process
    process.stop()
