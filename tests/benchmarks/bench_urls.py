"""The project's URLs plus a bare insert view: the baseline the submit path is compared with.

The bare view stores the same row the API does (same fields, same model, so the
same history row from django-simple-history and the same middleware in front of
it), with nothing else: no authentication, serializer, gate, idempotency or
transaction.
"""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from hitl_project.urls import urlpatterns as project_urls
from reviews.models import Integration, ItemStatus, Queue, ReviewItem

BENCH_INTEGRATION = "bench"
BENCH_QUEUE = "general"

_ids: dict[str, int] = {}  # looked up once per process, as an application would have them at hand


def _target_ids() -> dict[str, int]:
    if not _ids:
        _ids["integration"] = Integration.objects.values_list("pk", flat=True).get(slug=BENCH_INTEGRATION)
        _ids["queue"] = Queue.objects.values_list("pk", flat=True).get(slug=BENCH_QUEUE)
    return _ids


@csrf_exempt
@require_POST
def bare_insert(request):
    body = json.loads(request.body)
    ids = _target_ids()
    item = ReviewItem.objects.create(
        integration_id=ids["integration"],
        external_id=body.get("external_id") or "",
        kind=body["kind"],
        input=body.get("input") or {},
        output=body.get("output"),
        action=body.get("action"),
        context=body.get("context") or {},
        signals=body.get("signals") or {},
        metadata=body.get("metadata") or {},
        status=ItemStatus.PENDING,
        queue_id=ids["queue"],
    )
    return JsonResponse({"id": str(item.pk), "status": item.status}, status=201)


urlpatterns = [
    *project_urls,
    path("bench/bare-insert/", bare_insert, name="bench-bare-insert"),
]
