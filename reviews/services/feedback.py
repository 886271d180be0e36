"""Feedback from decisions and from the field: backlog items (root causes to fix) and
incidents (harm that got past the gate or a reviewer)."""

from __future__ import annotations

from django.db import transaction

from reviews.exceptions import InvalidInput
from reviews.models import (
    BacklogItem,
    Decision,
    DecisionAction,
    Incident,
    Integration,
    ReasonCode,
    ReviewItem,
)


def raise_backlog_items(decision: Decision, codes: list[ReasonCode]) -> None:
    if decision.action not in (DecisionAction.REJECT, DecisionAction.EDIT):
        return
    for code in codes:
        if not code.creates_backlog_item:
            continue
        backlog = (
            BacklogItem.objects.select_for_update()
            .filter(
                reason_code=code,
                queue=decision.queue,
                status__in=[BacklogItem.Status.OPEN, BacklogItem.Status.IN_PROGRESS],
            )
            .first()
        )
        if backlog is None:
            backlog = BacklogItem.objects.create(
                title=f"{code.label} ({decision.queue.name})", reason_code=code, queue=decision.queue
            )
        else:
            backlog._change_reason = f"new {decision.action} with {code.code}"
            backlog.save(update_fields=["updated_at"])
        backlog.decisions.add(decision)


def incident_from_spot_check(item: ReviewItem, decision: Decision) -> None:
    Incident.objects.create(
        item=item.spot_check_of,
        severity=Incident.Severity.MEDIUM,
        description=f"Slipped past the gate (spot check rejected): {decision.justification}",
        source=Incident.Source.SPOT_CHECK,
        reported_by=decision.reviewer,
    )


def report_incident(
    *,
    item: ReviewItem,
    severity: str,
    description: str,
    user=None,
    integration: Integration | None = None,
) -> Incident:
    """Record harm that got past the gate or a reviewer, linked to the decision that let it through."""
    description = (description or "").strip()
    if severity not in Incident.Severity.values:
        raise InvalidInput(
            f"Unknown severity {severity!r}.",
            errors={"severity": [f"Choose one of {', '.join(Incident.Severity.values)}."]},
        )
    if not description:
        raise InvalidInput("Describe the incident.", errors={"description": ["This field is required."]})
    final = item.decisions.filter(is_final=True).first()
    let_through = final if final and final.action != DecisionAction.REJECT else None
    return Incident.objects.create(
        item=item,
        severity=severity,
        description=description,
        source=Incident.Source.INTEGRATION if integration else Incident.Source.REVIEWER,
        decision=let_through,
        reported_by=user,
        reported_by_integration=integration,
    )


def update_backlog_item(*, backlog: BacklogItem, title: str, status: str, notes: str) -> BacklogItem:
    """Work on a root cause: its title, status and notes (admin), recorded in its history."""
    title = (title or "").strip()
    if status not in BacklogItem.Status.values:
        raise InvalidInput(f"Unknown status {status!r}.", errors={"status": ["Not a backlog status."]})
    if not title:
        raise InvalidInput("Give the backlog item a title.", errors={"title": ["This field is required."]})
    with transaction.atomic():
        backlog = BacklogItem.objects.select_for_update().get(pk=backlog.pk)
        reason = f"status {backlog.status} -> {status}" if status != backlog.status else "edited"
        backlog.title, backlog.status, backlog.notes = title, status, notes
        backlog._change_reason = reason
        backlog.save(update_fields=["title", "status", "notes", "updated_at"])
    return backlog


def update_incident(*, incident: Incident, severity: str, status: str, description: str) -> Incident:
    """Triage an incident: its severity, status and description (admin), with history."""
    description = (description or "").strip()
    if severity not in Incident.Severity.values or status not in Incident.Status.values:
        raise InvalidInput("Unknown severity or status.", errors={"status": ["Not an incident status."]})
    if not description:
        raise InvalidInput("Describe the incident.", errors={"description": ["This field is required."]})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        changed = [
            name
            for name, value in (("severity", severity), ("status", status), ("description", description))
            if getattr(incident, name) != value
        ]
        incident.severity, incident.status, incident.description = severity, status, description
        incident._change_reason = f"changed {', '.join(changed)}" if changed else "saved unchanged"
        incident.save(update_fields=["severity", "status", "description"])
    return incident
