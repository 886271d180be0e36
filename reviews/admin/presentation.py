"""How review items are shown: untrusted JSON turned into plain strings and rows
(the templates autoescape all of them; nothing is marked safe), and diffs of
edited versions."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from reviews.models import Decision, ReviewItem

# --- Showing untrusted JSON ---------------------------------------------------------------


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Shown:
    """A submitted value ready for a template: prose when it is a string, else pretty JSON."""

    text: str
    is_json: bool = False


def show(value: Any) -> Shown:
    if isinstance(value, str):
        return Shown(value)
    # Numbers, booleans and null read fine inline; objects and lists need the layout of a block.
    return Shown(pretty_json(value), is_json=isinstance(value, dict | list))


def rows(value: Any) -> list[tuple[str, Shown]]:
    """Key/value rows of a JSON object (signals, action parameters); empty for anything else."""
    if not isinstance(value, dict):
        return []
    return [(str(key), show(val)) for key, val in value.items()]


@dataclass(frozen=True)
class RuleShown:
    """One rule snapshot from `matched_rules` or `shadow_matches`."""

    name: str
    outcome: str = ""
    risk_level: str = ""
    version: str = ""
    queue: str = ""
    description: str = ""
    raw: Shown | None = None  # a snapshot of an unexpected shape


def rule_snapshots(value: Any) -> list[RuleShown]:
    snapshots = value if isinstance(value, list) else ([] if value in (None, "", {}) else [value])
    shown = []
    for snap in snapshots:
        if not isinstance(snap, dict):
            shown.append(RuleShown(name="(unreadable rule snapshot)", raw=show(snap)))
            continue
        text = {
            key: "" if snap.get(key) is None else str(snap.get(key)) for key in RuleShown.__dataclass_fields__
        }
        shown.append(
            RuleShown(
                name=text["name"] or f"Rule {snap.get('id', '?')}",
                outcome=text["outcome"],
                risk_level=text["risk_level"],
                version=text["version"],
                queue=text["queue"],
                description=text["description"],
            )
        )
    return shown


@dataclass
class ItemPresentation:
    """Everything the review page shows about the submission, in safe, regular shapes."""

    prompt: Shown | None = None
    messages: list[tuple[str, Shown]] = field(default_factory=list)
    other_input: Shown | None = None
    output: Shown | None = None
    output_extra: Shown | None = None
    action_type: str = ""
    action_params: list[tuple[str, Shown]] = field(default_factory=list)
    action_raw: Shown | None = None
    documents: list[tuple[str, Shown]] = field(default_factory=list)
    reasoning: Shown | None = None
    tool_outputs: list[tuple[str, Shown]] = field(default_factory=list)
    other_context: Shown | None = None
    signals: list[tuple[str, Shown]] = field(default_factory=list)
    signals_raw: Shown | None = None
    metadata: list[tuple[str, Shown]] = field(default_factory=list)
    matched_rules: list[RuleShown] = field(default_factory=list)
    shadow_matches: list[RuleShown] = field(default_factory=list)


def _split(value: Any, known: tuple[str, ...]) -> tuple[dict, Shown | None]:
    """The known keys of a JSON object, and the rest as JSON (all of it when not an object)."""
    if not isinstance(value, dict):
        return {}, (show(value) if value not in (None, "", [], {}) else None)
    rest = {key: val for key, val in value.items() if key not in known}
    return value, (show(rest) if rest else None)


def present_item(item: ReviewItem) -> ItemPresentation:
    """Turn the submitted JSON into sections; odd shapes fall back to pretty JSON, never an error."""
    shown = ItemPresentation()
    _present_input(shown, item.input)
    _present_output(shown, item.output, item.action)
    _present_context(shown, item.context)
    shown.signals = rows(item.signals)
    if not isinstance(item.signals, dict) and item.signals not in (None, ""):
        shown.signals_raw = show(item.signals)
    shown.metadata = rows(item.metadata)
    shown.matched_rules = rule_snapshots(item.matched_rules)
    shown.shadow_matches = rule_snapshots(item.shadow_matches)
    return shown


def _present_input(shown: ItemPresentation, value: Any) -> None:
    given, shown.other_input = _split(value, ("prompt", "messages"))
    if "prompt" in given:
        shown.prompt = show(given["prompt"])
    for message in _as_list(given.get("messages")):
        if isinstance(message, dict) and "content" in message:
            shown.messages.append((str(message.get("role", "")), show(message["content"])))
        else:
            shown.messages.append(("", show(message)))


def _present_output(shown: ItemPresentation, output: Any, action: Any) -> None:
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        shown.output = Shown(output["text"])
        rest = {key: val for key, val in output.items() if key != "text"}
        shown.output_extra = show(rest) if rest else None
    elif output is not None:
        shown.output = show(output)
    if action is None:
        return
    if isinstance(action, dict) and isinstance(action.get("params", {}), dict):
        shown.action_type = str(action.get("type", ""))
        shown.action_params = rows(action.get("params", {}))
        rest = {key: val for key, val in action.items() if key not in ("type", "params")}
        shown.action_raw = show(rest) if rest else None
    else:
        shown.action_raw = show(action)


def _present_context(shown: ItemPresentation, value: Any) -> None:
    context, shown.other_context = _split(value, ("retrieved_documents", "reasoning", "tool_outputs"))
    for doc in _as_list(context.get("retrieved_documents")):
        if isinstance(doc, dict) and ("title" in doc or "text" in doc):
            rest = {key: val for key, val in doc.items() if key not in ("title", "text")}
            body = {"text": doc.get("text", ""), **rest} if rest else doc.get("text", "")
            shown.documents.append((str(doc.get("title") or "Untitled document"), show(body)))
        else:
            shown.documents.append(("Document", show(doc)))
    if context.get("reasoning") not in (None, ""):
        shown.reasoning = show(context["reasoning"])
    for call in _as_list(context.get("tool_outputs")):
        if isinstance(call, dict) and "tool" in call:
            rest = {key: val for key, val in call.items() if key != "tool"}
            body = call.get("output") if set(rest) <= {"output"} else rest
            shown.tool_outputs.append((str(call["tool"]), show(body)))
        else:
            shown.tool_outputs.append(("", show(call)))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- Diffs ---------------------------------------------------------------------------------

_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff(original: str, edited: str) -> list[tuple[str, str]]:
    """(`equal` | `delete` | `insert`, text) segments, word by word; the template escapes the text."""
    before, after = _TOKENS.findall(original), _TOKENS.findall(edited)
    segments = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(("equal", "".join(before[i1:i2])))
            continue
        if i2 > i1:
            segments.append(("delete", "".join(before[i1:i2])))
        if j2 > j1:
            segments.append(("insert", "".join(after[j1:j2])))
    return segments


def output_text(output: Any) -> tuple[str, bool]:
    """The output as the reviewer edits it: its `text` when it has one, else pretty JSON.
    The flag says which, so the edit can be put back in the same shape."""
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        return output["text"], True
    return pretty_json(output), False


def action_params(action: Any) -> Any:
    return action.get("params", {}) if isinstance(action, dict) else action


@dataclass(frozen=True)
class EditShown:
    label: str
    diff: list[tuple[str, str]]


def edit_diffs(item: ReviewItem, decision: Decision) -> list[EditShown]:
    """What an edit changed, original against edited, for the output and the action parameters."""
    diffs = []
    if decision.edited_output is not None:
        before, _ = output_text(item.output)
        after, _ = output_text(decision.edited_output)
        diffs.append(EditShown("Output", word_diff(before, after)))
    if decision.edited_action is not None:
        before = pretty_json(action_params(item.action))
        after = pretty_json(action_params(decision.edited_action))
        diffs.append(EditShown("Action parameters", word_diff(before, after)))
    return diffs


def edited_version(decision: Decision) -> list[tuple[str, Shown]]:
    """The version an edit put on the table (what a four-eyes second reviewer approves)."""
    version = []
    if decision.edited_output is not None:
        text, is_text = output_text(decision.edited_output)
        version.append(("Edited output", Shown(text, is_json=not is_text)))
    if decision.edited_action is not None:
        version.append(("Edited action parameters", show(action_params(decision.edited_action))))
    return version


def duration_in_words(minutes: int) -> str:
    """``90`` → ``1 hour 30 minutes`` (SLAs on the workspace and the safety policy page)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n) or "0 minutes"
