"""GET /metrics: the Prometheus text format, its figures worked out by hand, and the token."""

from __future__ import annotations

import math
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from metrics.prometheus import escape_help, escape_label, format_value
from tests.factories import QueueFactory
from tests.metrics import expected
from tests.metrics.conftest import clock

TOKEN = "s3cret-scrape-token"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{{{LABEL}(?:,{LABEL})*\}})? (\S+)$")


@pytest.fixture
def token(settings):
    settings.HITL_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(authorization: str | None = f"Bearer {TOKEN}", method: str = "get"):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return getattr(Client(), method)("/metrics", **headers)


def parse(text: str) -> dict[str, float]:
    """Samples by `name{labels}`, checking the format on the way: every line a comment
    or a sample, every sample's family announced by HELP and TYPE lines first."""
    assert text.endswith("\n")
    samples, typed = {}, {}
    helped = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and kind in {"gauge", "counter", "summary"}
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample: {line!r}"
            name, labels, value = match.groups()
            family = re.sub(r"_(sum|count)$", "", name) if name not in typed else name
            assert family in typed, f"{name} has no TYPE line before it"
            samples[f"{name}{labels or ''}"] = float(value)
    return samples


def test_the_scrape_has_the_figures_worked_out_by_hand(story, token):
    with clock(story.now):
        response = scrape()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.content.decode())
    assert {key: samples[key] for key in expected.PROMETHEUS} == expected.PROMETHEUS
    # Every queue has every series, and items that never entered a queue their outbox row.
    for slug in ("expert", "four-eyes", "general"):
        for name in ("pending", "in_review", "oldest_pending_seconds", "at_risk", "past_sla"):
            assert f'hitl_queue_{name}{{queue="{slug}"}}' in samples
        assert sum(1 for key in samples if key.startswith(f'hitl_decisions_total{{queue="{slug}"')) == 4
        assert sum(1 for key in samples if key.startswith(f'hitl_outbox_deliveries{{queue="{slug}"')) == 4


def test_types_and_help(story, token):
    text = scrape().content.decode()
    assert "# TYPE hitl_decisions_total counter" in text
    assert "# TYPE hitl_review_seconds summary" in text
    assert "# TYPE hitl_queue_pending gauge" in text
    assert "# TYPE hitl_outbox_deliveries gauge" in text
    assert text.count("# HELP ") == text.count("# TYPE ") == 8


def test_a_quantile_without_recent_decisions_is_nan(token, queue):
    samples = parse(scrape().content.decode())
    assert math.isnan(samples['hitl_review_seconds{queue="general",quantile="0.5"}'])
    assert samples['hitl_review_seconds_count{queue="general"}'] == 0


def test_label_values_are_escaped(token, db):
    QueueFactory(slug='we"ird\\slug\nnext', name="Weird")
    text = scrape().content.decode()
    assert 'hitl_queue_pending{queue="we\\"ird\\\\slug\\nnext"} 0\n' in text
    parse(text)


def test_escaping_and_numbers():
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help("a\\b\nc") == "a\\\\b\\nc"
    assert [format_value(v) for v in (3, 2.0, 0.25, None, float("nan"), float("inf"))] == [
        "3",
        "2",
        "0.25",
        "NaN",
        "NaN",
        "+Inf",
    ]


def test_without_a_token_configured_the_url_does_not_exist(settings, db):
    settings.HITL_METRICS_TOKEN = ""
    assert scrape().status_code == 404
    assert scrape(None).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Token {TOKEN}", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
def test_a_missing_or_wrong_token_is_401(token, db, authorization):
    response = scrape(authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"hitl_" not in response.content


def test_the_scheme_is_case_insensitive_and_only_get_is_answered(token, db):
    assert scrape(f"bearer {TOKEN}").status_code == 200
    assert scrape(method="head").status_code == 200


def test_the_number_of_queries_does_not_grow_with_queues(story, token):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert scrape().status_code == 200
        return len(captured)

    before = queries()
    for n in range(5):
        QueueFactory(slug=f"more-{n}")
    # Queues, open items, decisions by action, review times, outbox (and the exact
    # quantiles where the database has no percentile_cont).
    assert before == queries() == (5 if connection.vendor == "postgresql" else 6)
