"""Free text in log messages cannot forge log lines."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from logging.config import DictConfigurator
from pathlib import Path

import pytest
from django.conf import settings

from reviews import services
from tests.factories import GateRuleFactory, ReasonCodeFactory, submission

FORGED = "ok\n2026-12-01 08:00:00,000 CRITICAL django.security forged"


def configured_formatters() -> list[logging.Formatter]:
    """The formatter of every handler settings.LOGGING gives the root logger."""
    configurator = DictConfigurator(copy.deepcopy(settings.LOGGING))
    handlers = [configurator.config["handlers"][name] for name in settings.LOGGING["root"]["handlers"]]
    names = {handler.get("formatter") for handler in handlers}
    assert names and None not in names, "every root handler names a formatter"
    return [configurator.configure_formatter(configurator.config["formatters"][name]) for name in names]


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("tests", logging.INFO, __file__, 1, message, args, exc_info)


@pytest.mark.django_db
def test_a_justification_with_a_newline_stays_on_its_rejection_line(caplog, integration, queue, reviewer):
    GateRuleFactory(name="Review everything", queue=queue)
    ReasonCodeFactory(code="factual_error", applies_to=["reject"])
    item = services.submit_item(integration=integration, payload=submission()).item
    with caplog.at_level(logging.INFO, logger="reviews.services"):
        services.decide(
            item=item, user=reviewer, action="reject", justification=FORGED, reason_codes=["factual_error"]
        )
    (rejected,) = [r for r in caplog.records if "rejected" in r.getMessage()]

    for formatter in configured_formatters():
        line = formatter.format(rejected)
        assert line.splitlines() == [line]
        assert line.endswith(r"ok\n2026-12-01 08:00:00,000 CRITICAL django.security forged")
        assert f"Item {item.pk} rejected by reviewer" in line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\r\nb", r"a\r\nb"),
        ("a\x85b", r"a\x85b"),  # NEL
        ("a\u2028b\u2029c", r"a\u2028b\u2029c"),
        ("a\x0bb\x0cc", r"a\x0bb\x0cc"),
        ("admin\u202e\u2066txt.exe", r"admin\u202e\u2066txt.exe"),  # bidi override and isolate
        ("\x1b[2K\x1b[1Agone", r"\x1b[2K\x1b[1Agone"),  # a terminal's erase-line sequence
        ("tab\there", r"tab\there"),
    ],
)
def test_control_separator_and_bidi_characters_are_shown_escaped(raw, shown):
    ordinary = " and ordinary text: émoji 🙂, C:\\path, «quotes»"  # kept as it is
    for formatter in configured_formatters():
        assert formatter.format(record("said: %s", raw + ordinary)).endswith(f"said: {shown}{ordinary}")


def test_a_traceback_keeps_its_lines_after_the_one_line_message():
    try:
        raise ValueError("bad\rvalue")
    except ValueError:
        exc_info = sys.exc_info()
    for formatter in configured_formatters():
        lines = formatter.format(record("failed on %s", "x\ny", exc_info=exc_info)).split("\n")
        assert lines[0].endswith(r"failed on x\ny")
        assert lines[1] == "Traceback (most recent call last):"
        assert lines[-1] == r"ValueError: bad\rvalue"
        assert len(lines) > 3


def log_in_a_fresh_process(code: str) -> list[str]:
    """Set Django up (debug on, as under `make run`), run `code`, return every line written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HITL_"))}
    result = subprocess.run(
        [sys.executable, "-c", f"import logging\nimport django\n\ndjango.setup()\n{code}"],
        cwd=Path(__file__).resolve().parents[1],
        env={**env, "DJANGO_SETTINGS_MODULE": "hitl_project.settings", "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return (result.stdout + result.stderr).splitlines()


def test_celery_workers_write_the_same_single_lines():
    lines = log_in_a_fresh_process(
        # What a worker does at start, after Django's setup: Celery sets its logging up.
        "from hitl_project.celery import app\n"
        "app.log.setup_logging_subsystem(loglevel='INFO', colorize=False)\n"
        "logging.getLogger('reviews.delivery').warning('Giving up: %s', 'timeout\\nCRITICAL forged')\n"
    )
    (line,) = [line for line in lines if "forged" in line]
    assert line.endswith(r"WARNING reviews.delivery Giving up: timeout\nCRITICAL forged")


def test_djangos_own_loggers_write_one_escaped_line_under_debug():
    lines = log_in_a_fresh_process(
        # A 404 logs the decoded path: /x%0ACRITICAL%20forged
        "logging.getLogger('django.request').warning('Not Found: %s', '/x\\nCRITICAL forged')\n"
    )
    (line,) = [line for line in lines if "forged" in line]
    assert line.endswith(r"WARNING django.request Not Found: /x\nCRITICAL forged")
