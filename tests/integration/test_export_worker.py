"""A feedback export written by a real Celery worker process on PostgreSQL and a private
Redis: started over HTTP, followed to `succeeded`, downloaded and read back."""

from __future__ import annotations

import json

import pytest
from django.core.files.storage import FileSystemStorage

from metrics.models import FeedbackExport
from reviews import services
from tests.factories import ReasonCodeFactory, submission
from tests.processes import wait_until
from tests.reviews.test_api import token_client

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def exports_dir(tmp_path, monkeypatch):
    """One folder for the worker (HITL_EXPORTS_DIR) and this process, which serves the download."""
    folder = tmp_path / "exports"
    monkeypatch.setattr(FeedbackExport._meta.get_field("file"), "storage", FileSystemStorage(location=folder))
    return folder


@pytest.fixture
def celery_env(celery_env, exports_dir) -> dict:
    return {**celery_env, "HITL_EXPORTS_DIR": str(exports_dir)}


def test_a_worker_writes_the_export_and_compliance_downloads_it(
    wired, queue, reviewer, compliance, worker, exports_dir
):
    ReasonCodeFactory(code="tone", applies_to=["edit"])
    decided = []
    for n, (action, extra) in enumerate(
        [
            ("approve", {}),
            ("edit", {"reason_codes": ["tone"], "edited_output": {"text": "Edited."}}),
            ("reject", {"reason_codes": ["policy_violation"]}),
        ]
    ):
        item = services.submit_item(integration=wired, payload=submission(external_id=f"w-{n}")).item
        services.decide(item=item, user=reviewer, action=action, justification="Checked.", **extra)
        decided.append((item, action))

    client = token_client(compliance)
    response = client.post("/api/v1/exports/", {"format": "jsonl", "queue": queue.slug})
    assert response.status_code == 202
    export_id = response.json()["id"]

    def finished():
        body = client.get(f"/api/v1/exports/{export_id}/").json()
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_until(finished, 60, interval=0.3, what="the export written by the worker")
    assert body["status"] == "succeeded", body["error"]
    assert body["rows"] == 3
    assert "Task metrics.run_export" in worker.log.read_text()

    download = client.get(body["download_url"].removeprefix("http://testserver"))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    lines = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert [(line["item_id"], line["decision"]) for line in lines] == [
        (str(item.pk), action) for item, action in decided
    ]
    assert lines[1]["final_output"] == {"text": "Edited."} and lines[1]["reason_codes"] == ["tone"]
    export = FeedbackExport.objects.get(pk=export_id)
    assert export.history.filter(status="succeeded").get().history_actor == "feedback-export"
    assert [p.name for p in exports_dir.rglob("*") if p.is_file()] == [export.file.name.split("/")[-1]]
