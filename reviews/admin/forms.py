"""The review page's decision form: it turns the posted fields into the decision
service's arguments; the service stays the judge of the rules."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from reviews.admin.presentation import (
    action_params,
    output_text,
    pretty_json,
)
from reviews.exceptions import DomainError
from reviews.models import DecisionAction, ItemKind, Queue, ReasonCode, ReviewItem
from reviews.safejson import UnsafeJSON, check_json_shape, loads_checked

_INVALID = object()  # a field that did not parse (None is a valid JSON value)

# Longer originals are loaded into the edit field when it is opened, not sent with the page.
EDIT_INLINE_CHARS = 50_000


def _normalise_newlines(text: str) -> str:
    # Browsers send textarea content with CRLF; the stored original has LF.
    return text.replace("\r\n", "\n").replace("\r", "\n")


class DecisionForm(forms.Form):
    """Parses a decision from the review page. The service remains the judge of the rules
    (justification, reason codes per action, checklist, a real edit); this form only turns
    the posted fields into the service's arguments and reports what it cannot parse."""

    action = forms.ChoiceField(choices=DecisionAction.choices)
    justification = forms.CharField(required=False, widget=forms.Textarea)
    reason_codes = forms.MultipleChoiceField(required=False)
    checklist = forms.TypedMultipleChoiceField(coerce=int, required=False)
    edited_output = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    edited_action = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    escalate_to = forms.ChoiceField(required=False)

    def __init__(
        self, *args, item: ReviewItem, reason_codes: list[ReasonCode], queues: list[Queue], **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.item = item
        self.reason_code_objects = reason_codes
        self.fields["reason_codes"].choices = [(code.code, code.label) for code in reason_codes]
        self.checklist_entries = [str(entry) for entry in (item.queue.checklist or [])]
        self.fields["checklist"].choices = list(enumerate(self.checklist_entries))
        # The queue's escalation queue is preselected; without one the reviewer must pick.
        escalation = item.queue.escalation_queue
        blank = [] if escalation else [("", "Choose a queue")]
        self.fields["escalate_to"].choices = blank + [(q.slug, q.name) for q in queues]
        self.can_edit_output = item.output is not None
        self.can_edit_action = item.kind == ItemKind.ACTION and isinstance(item.action, dict)
        original_text, self.output_is_text = output_text(item.output)
        original_params = pretty_json(action_params(item.action)) if self.can_edit_action else ""
        # A long original is not put into the page: the edit field loads it when opened.
        self.output_inline = len(original_text) <= EDIT_INLINE_CHARS
        self.action_inline = len(original_params) <= EDIT_INLINE_CHARS
        self.initial.update(
            edited_output=original_text if self.can_edit_output and self.output_inline else "",
            edited_action=original_params if self.action_inline else "",
            escalate_to=escalation.slug if escalation else "",
        )

    @property
    def output_path(self) -> str:
        """Where the raw view finds the output as the edit field holds it (JSON keys)."""
        return json.dumps(["output", "text"] if self.output_is_text else ["output"])

    def clean(self):
        data = super().clean()
        data["edited_output_value"], data["edited_action_value"] = None, None
        if data.get("action") == DecisionAction.EDIT:
            self._parse_edit(data)
        # Nowhere to escalate to: the service would say so in the API's words; say it in the page's.
        escalating = data.get("action") == DecisionAction.ESCALATE
        if escalating and not data.get("escalate_to") and self.item.queue.escalation_queue is None:
            self.add_error("escalate_to", "Choose the queue to escalate to: this queue has none set.")
        return data

    def _parse_edit(self, data: dict) -> None:
        # A field the page did not send (an edit field never loaded, so disabled) is no edit.
        output, action = None, None
        if self.can_edit_output and "edited_output" in self.data and "edited_output" in data:
            output = self._edited_output(data["edited_output"])
        if self.can_edit_action and "edited_action" in self.data and "edited_action" in data:
            params = self._parse_json("edited_action", data["edited_action"])
            if params is not _INVALID:
                action = {**self.item.action, "params": params}
        changed_output = output is not None and output != self.item.output
        changed_action = action is not None and action != self.item.action
        if changed_output or changed_action:
            # Only the part that changed is an edit; the other stays as proposed.
            output, action = (output if changed_output else None), (action if changed_action else None)
        # Unchanged: both go to the service, which explains that this is not an edit.
        data["edited_output_value"], data["edited_action_value"] = output, action

    def _edited_output(self, text: str) -> Any:
        original, is_text = output_text(self.item.output)
        if not is_text:
            parsed = self._parse_json("edited_output", text)
            return None if parsed is _INVALID else parsed
        if _normalise_newlines(text) == _normalise_newlines(original):
            return self.item.output
        edited = _normalise_newlines(text)
        try:
            check_json_shape(edited)
        except UnsafeJSON as exc:
            self.add_error("edited_output", str(exc))
            return None
        return {**self.item.output, "text": edited}

    def _parse_json(self, name: str, text: str) -> Any:
        try:
            return loads_checked(text)
        except UnsafeJSON as exc:
            self.add_error(name, f"Not valid JSON: {exc}")
            return _INVALID

    def checklist_rows(self) -> list[tuple[int, str, bool]]:
        ticked = {str(value) for value in (self["checklist"].value() or [])}
        return [(index, text, str(index) in ticked) for index, text in enumerate(self.checklist_entries)]

    def checklist_answers(self) -> list[bool]:
        ticked = set(self.cleaned_data.get("checklist") or [])
        return [index in ticked for index in range(len(self.checklist_entries))]

    def reason_code_rows(self) -> list[dict]:
        """Each active code with the actions it applies to (the page may hide the others)."""
        chosen = set(self["reason_codes"].value() or [])
        return [
            {
                "code": rc.code,
                "label": rc.label,
                "applies_to": list(rc.applies_to or []),
                "checked": rc.code in chosen,
            }
            for rc in self.reason_code_objects
        ]

    def add_domain_error(self, exc: DomainError) -> None:
        """Put a service's errors where they belong: next to their field, or on top when
        no field says it; each once."""
        placed = False
        for name, errors in (exc.errors or {}).items():
            if name in self.fields:
                self.add_error(name, errors)
                placed = True
        if not placed:
            self.add_error(None, exc.detail)

    # The order of the fields on the page, for putting the focus on the first one in error.
    FIELD_ORDER = (
        "checklist",
        "justification",
        "reason_codes",
        "edited_output",
        "edited_action",
        "escalate_to",
    )

    @property
    def first_error(self) -> str:
        """The first field in error, in page order ("" when none, or only a summary)."""
        if not self.is_bound or not self.errors:
            return ""
        return next((name for name in self.FIELD_ORDER if name in self.errors), "")
