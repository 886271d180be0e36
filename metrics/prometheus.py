"""`GET /metrics`: the headline figures per queue in the Prometheus text exposition
format (version 0.0.4), written here by hand, for a Prometheus server to scrape.

Guarded by `HITL_METRICS_TOKEN`: unset, the URL does not exist (404); set, a scrape
must send `Authorization: Bearer <token>` (compared in constant time), or it is
answered 401. Configure Prometheus with `authorization: {credentials: <token>}`.

Every queue is listed (the token reads them all), with:

- gauges `hitl_queue_pending`, `hitl_queue_in_review`, `hitl_queue_oldest_pending_seconds`
  (0 when nothing is open), `hitl_queue_at_risk` (open, past half the SLA, not yet
  due) and `hitl_queue_past_sla` (open and past the deadline);
- the counter `hitl_decisions_total{action}` (all decisions ever made in the queue);
- the summary `hitl_review_seconds` (entering the queue to the final decision):
  quantiles 0.5 and 0.9 over the last 7 days (NaN when none), `_sum` and `_count`
  over all time, as a Prometheus client's summary would report them;
- the gauge `hitl_outbox_deliveries{kind, status}`: callbacks and executions pending
  or failed, by the item's queue (`queue=""`: items that never entered a queue).

Routed from `hitl_project/urls.py` by `include("metrics.prometheus")`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path

from hitl_project.replica import reading_from_replica
from metrics.selectors import (
    OUTBOX_KINDS,
    OUTBOX_STATES,
    REVIEW_QUANTILES,
    PrometheusFigures,
    prometheus_figures,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[str, dict[str, str], float | int | None]


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> Iterator[str]:
    yield f"# HELP {name} {escape_help(help_text)}"
    yield f"# TYPE {name} {kind}"
    for sample, labels, value in samples:
        text = ",".join(f'{key}="{escape_label(str(label))}"' for key, label in labels.items())
        yield f"{sample}{{{text}}} {format_value(value)}" if text else f"{sample} {format_value(value)}"


def exposition(figures: PrometheusFigures) -> str:
    """The whole scrape, one metric family after another."""
    queues = figures.queues

    def gauge(name: str, attribute: str, help_text: str) -> Iterator[str]:
        return family(
            name, "gauge", help_text, ((name, {"queue": q.slug}, getattr(q, attribute)) for q in queues)
        )

    def review_samples() -> Iterator[Sample]:
        for q in queues:
            for quantile in REVIEW_QUANTILES:
                labels = {"queue": q.slug, "quantile": str(quantile)}
                yield "hitl_review_seconds", labels, q.review_quantiles.get(quantile)
            yield "hitl_review_seconds_sum", {"queue": q.slug}, q.review_seconds_sum
            yield "hitl_review_seconds_count", {"queue": q.slug}, q.review_count

    def outbox_samples() -> Iterator[Sample]:
        rows = [(q.slug, q.outbox) for q in queues] + [("", figures.unqueued_outbox)]
        for slug, counts in rows:
            for kind in OUTBOX_KINDS:
                for state in OUTBOX_STATES:
                    labels = {"queue": slug, "kind": kind, "status": state}
                    yield "hitl_outbox_deliveries", labels, counts[(kind, state)]

    lines = [
        *gauge("hitl_queue_pending", "pending", "Items waiting in the queue, unclaimed."),
        *gauge("hitl_queue_in_review", "in_review", "Items claimed by a reviewer."),
        *gauge(
            "hitl_queue_oldest_pending_seconds",
            "oldest_pending_seconds",
            "Time in the queue of its oldest open item (0 when none).",
        ),
        *gauge("hitl_queue_at_risk", "at_risk", "Open items past half their SLA, not yet due."),
        *gauge("hitl_queue_past_sla", "past_sla", "Open items past their deadline."),
        *family(
            "hitl_decisions_total",
            "counter",
            "Decisions made in the queue, by action.",
            (
                ("hitl_decisions_total", {"queue": q.slug, "action": action}, n)
                for q in queues
                for action, n in q.decisions.items()
            ),
        ),
        *family(
            "hitl_review_seconds",
            "summary",
            "Seconds from entering the queue to the final decision: "
            "quantiles over the last 7 days, sum and count over all time.",
            review_samples(),
        ),
        *family(
            "hitl_outbox_deliveries",
            "gauge",
            'Callbacks and executions pending or failed, by the item\'s queue ("" for none).',
            outbox_samples(),
        ),
    ]
    return "\n".join(lines) + "\n"


def _token_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Digests of equal length: the comparison time tells nothing, not even the length.
    expected = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), expected)


def metrics(request: HttpRequest) -> HttpResponse:
    """The scrape: 404 while HITL_METRICS_TOKEN is unset, 401 without the token."""
    token = settings.HITL_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: HITL_METRICS_TOKEN is not set.")
    if not _token_matches(request, token):
        response = HttpResponse(
            "Send Authorization: Bearer <HITL_METRICS_TOKEN>.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    with reading_from_replica():
        figures = prometheus_figures()
    response = HttpResponse(exposition(figures), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [path("", metrics, name="prometheus-metrics")]
