"""How review items are shown: untrusted JSON turned into plain strings and rows
(the templates autoescape all of them; nothing is marked safe), and diffs of
edited versions."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from reviews.models import Decision, ReviewItem

# --- Showing untrusted JSON ---------------------------------------------------------------

# A value is shown up to this many characters; the rest is one click away (the item's raw
# view), so a 1 MiB submission lays out as fast as a small one.
PREVIEW_CHARS = 3000
KEY_CHARS = 200
MAX_ROWS = 60
MAX_ENTRIES = 50

# Characters that change how text reads without being seen: controls, zero-width and
# bidirectional marks, embeddings, overrides and isolates. They are shown as ⟨U+202E⟩,
# never passed on, so "gnp.exe" after a right-to-left override reads as written.
HIDDEN_CLASS = (
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
HIDDEN_CHARACTERS = re.compile(HIDDEN_CLASS)
# A run of one hidden character is one mark (⟨U+200B⟩×3000), and a value gets at most
# MAX_MARKS of them: past that its hidden characters are left out of the text shown and
# counted in one last mark. A page of a 1 MiB item full of them stays small.
HIDDEN_RUNS = re.compile(f"({HIDDEN_CLASS})\\1*")
MAX_MARKS = 50


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def marked(text: str) -> list[tuple[bool, str]]:
    """`text` in (is_mark, part) pieces: each run of one hidden character as one mark,
    ``⟨U+202E⟩`` or ``⟨U+200B⟩×3000``; past MAX_MARKS marks, the rest are left out of the
    text and counted in one mark where that starts. (workspace.js `fillMarked` does the
    same for "Show all".)"""
    pieces: list[tuple[bool, str]] = []
    last, marks, left_out, summary_at = 0, 0, 0, -1

    def plain(part: str) -> None:
        if pieces and not pieces[-1][0]:
            pieces[-1] = (False, pieces[-1][1] + part)  # text on both sides of a left-out run
        else:
            pieces.append((False, part))

    for match in HIDDEN_RUNS.finditer(text):
        if match.start() > last:
            plain(text[last : match.start()])
        last = match.end()
        count = match.end() - match.start()
        if marks == MAX_MARKS:
            if not left_out:
                summary_at = len(pieces)
                pieces.append((True, ""))
            left_out += count
            continue
        marks += 1
        pieces.append((True, f"⟨U+{ord(match.group(1)):04X}⟩" + (f"×{count}" if count > 1 else "")))
    if last < len(text):
        plain(text[last:])
    if left_out:
        many = "s" if left_out > 1 else ""
        pieces[summary_at] = (True, f"⟨{left_out:,} more hidden character{many} from here on, not shown⟩")
    return pieces


@dataclass(frozen=True)
class Label:
    """A short submitted string shown inline (a key, an action type, a title, a role, a tool
    name), cut to KEY_CHARS: the template isolates it from the text around it and marks its
    hidden characters. As a plain string (a page title, a message) the marks are text."""

    text: str

    @property
    def parts(self) -> list[tuple[bool, str]]:
        return marked(self.text)

    def __bool__(self) -> bool:
        return bool(self.text)

    def __str__(self) -> str:
        return "".join(part for _, part in self.parts)


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def has_hidden_characters(value: Any) -> bool:
    # ensure_ascii=False keeps the characters themselves in the text searched.
    return bool(HIDDEN_CHARACTERS.search(value if isinstance(value, str) else compact_json(value)))


@dataclass(frozen=True)
class Shown:
    """A submitted value ready for a template: prose when it is a string, else pretty JSON,
    cut to PREVIEW_CHARS. `path` (JSON keys from the submission's top) says where the
    whole value is, when it was cut; `length` is its full length in characters."""

    text: str
    is_json: bool = False
    length: int = 0
    path: tuple = ()

    @property
    def truncated(self) -> bool:
        return self.length > len(self.text)

    @property
    def parts(self) -> list[tuple[bool, str]]:
        return marked(self.text)

    @property
    def path_json(self) -> str:
        return json.dumps(list(self.path), ensure_ascii=False)


# Above this size (compact), JSON is shown as it came, unindented: indenting a large value
# costs more than showing its first PREVIEW_CHARS is worth.
PRETTY_LIMIT = 20_000


def show(value: Any, path: tuple = ()) -> Shown:
    if isinstance(value, str):
        text, is_json = value, False
    else:
        # Numbers, booleans and null read fine inline; objects and lists need the layout of a block.
        text, is_json = compact_json(value), isinstance(value, dict | list)
        if len(text) <= PRETTY_LIMIT:
            text = pretty_json(value)
    if len(text) <= PREVIEW_CHARS:
        return Shown(text, is_json, len(text))
    return Shown(text[:PREVIEW_CHARS], is_json, len(text), tuple(path))


def key_text(key: Any) -> Label:
    return Label(clip(str(key), KEY_CHARS))


def rows(value: Any, path: tuple = ()) -> list[tuple[Label, Shown]]:
    """Key/value rows of a JSON object (signals, action parameters), the first MAX_ROWS of
    them; empty for anything else."""
    if not isinstance(value, dict):
        return []
    return [(key_text(key), show(val, (*path, key))) for key, val in list(value.items())[:MAX_ROWS]]


def rows_left_out(value: Any) -> int:
    return max(0, len(value) - MAX_ROWS) if isinstance(value, dict) else 0


OPERATOR_SIGNS = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "contains_any": "contains any of",
    "matches": "matches",
}


@dataclass(frozen=True)
class FiredShown:
    """A condition that fired, ``signals.rubric_score = 1 (≤ 2)``: the field name, the value
    the submission had there (`actual`), the rule's operator `sign` and `expected` value,
    each part isolated on the page; or `words` (``is present``) for the operators without
    a value; or only `raw`, for an entry of an unexpected shape."""

    field_name: Label = Label("")
    actual: Label = Label("")
    sign: str = ""
    expected: Label = Label("")
    words: str = ""
    raw: Label = Label("")


def _json_label(value: Any) -> Label:
    return key_text(json.dumps(value, ensure_ascii=False, default=str))


def condition_fired(fired: Any) -> FiredShown:
    if not isinstance(fired, dict):
        return FiredShown(raw=_json_label(fired))
    field_name = key_text(fired.get("field", "?"))
    op = str(fired.get("op", ""))
    if op in ("exists", "not_exists"):
        return FiredShown(field_name=field_name, words="is present" if op == "exists" else "is missing")
    return FiredShown(
        field_name=field_name,
        actual=_json_label(fired.get("actual")),
        sign=OPERATOR_SIGNS.get(op, op),
        expected=_json_label(fired.get("value")),
    )


@dataclass(frozen=True)
class RuleShown:
    """One rule snapshot from `matched_rules` or `shadow_matches`; `fired` (snapshots taken
    since the gate records it) lists its conditions that fired, with the values."""

    name: str
    outcome: str = ""
    risk_level: str = ""
    version: str = ""
    queue: str = ""
    description: str = ""
    raw: Shown | None = None  # a snapshot of an unexpected shape
    fired: tuple[FiredShown, ...] = ()


def rule_snapshots(value: Any) -> list[RuleShown]:
    snapshots = value if isinstance(value, list) else ([] if value in (None, "", {}) else [value])
    shown = []
    for snap in snapshots:
        if not isinstance(snap, dict):
            shown.append(RuleShown(name="(unreadable rule snapshot)", raw=show(snap)))
            continue
        text = {
            key: "" if snap.get(key) is None else clip(str(snap.get(key)), PREVIEW_CHARS)
            for key in ("name", "outcome", "risk_level", "version", "queue", "description")
        }
        fired = snap.get("fired") if isinstance(snap.get("fired"), list) else []
        shown.append(
            RuleShown(
                name=text["name"] or f"Rule {snap.get('id', '?')}",
                outcome=text["outcome"],
                risk_level=text["risk_level"],
                version=text["version"],
                queue=text["queue"],
                description=text["description"],
                fired=tuple(condition_fired(entry) for entry in fired[:MAX_ROWS]),
            )
        )
    return shown


@dataclass
class ItemPresentation:
    """Everything the review page shows about the submission, in safe, regular shapes.
    Lists and objects show their first entries; `left_out` counts what is not shown
    (the item's raw view has everything)."""

    prompt: Shown | None = None
    messages: list[tuple[Label, Shown]] = field(default_factory=list)
    other_input: Shown | None = None
    output: Shown | None = None
    output_extra: Shown | None = None
    action_type: Label = Label("")
    action_params: list[tuple[Label, Shown]] = field(default_factory=list)
    action_raw: Shown | None = None
    documents: list[tuple[Label, Shown]] = field(default_factory=list)
    reasoning: Shown | None = None
    tool_outputs: list[tuple[Label, Shown]] = field(default_factory=list)
    other_context: Shown | None = None
    signals: list[tuple[Label, Shown]] = field(default_factory=list)
    signals_raw: Shown | None = None
    metadata: list[tuple[Label, Shown]] = field(default_factory=list)
    matched_rules: list[RuleShown] = field(default_factory=list)
    shadow_matches: list[RuleShown] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    hidden_characters: bool = False


def _split(value: Any, known: tuple[str, ...], path: tuple) -> tuple[dict, Shown | None]:
    """The known keys of a JSON object, and the rest as JSON (all of it when not an object)."""
    if not isinstance(value, dict):
        return {}, (show(value, path) if value not in (None, "", [], {}) else None)
    rest = {key: val for key, val in value.items() if key not in known}
    return value, (show(rest) if rest else None)


def present_item(item: ReviewItem) -> ItemPresentation:
    """Turn the submitted JSON into sections; odd shapes fall back to pretty JSON, never an error."""
    shown = ItemPresentation()
    _present_input(shown, item.input)
    _present_output(shown, item.output, item.action)
    _present_context(shown, item.context)
    shown.signals = rows(item.signals, ("signals",))
    shown.left_out["signals"] = rows_left_out(item.signals)
    if not isinstance(item.signals, dict) and item.signals not in (None, ""):
        shown.signals_raw = show(item.signals, ("signals",))
    shown.metadata = rows(item.metadata, ("metadata",))
    shown.left_out["metadata"] = rows_left_out(item.metadata)
    shown.matched_rules = rule_snapshots(item.matched_rules)
    shown.shadow_matches = rule_snapshots(item.shadow_matches)
    submitted = [item.input, item.output, item.action, item.context, item.signals, item.metadata]
    shown.hidden_characters = any(
        has_hidden_characters(value) for value in [item.external_id, *submitted] if value
    )
    return shown


def _present_input(shown: ItemPresentation, value: Any) -> None:
    given, shown.other_input = _split(value, ("prompt", "messages"), ("input",))
    if "prompt" in given:
        shown.prompt = show(given["prompt"], ("input", "prompt"))
    messages = _as_list(given.get("messages"))
    for index, message in enumerate(messages[:MAX_ENTRIES]):
        path = ("input", "messages", index)
        if isinstance(message, dict) and "content" in message:
            role = key_text(message.get("role", ""))
            shown.messages.append((role, show(message["content"], (*path, "content"))))
        else:
            shown.messages.append((Label(""), show(message, path)))
    shown.left_out["messages"] = max(0, len(messages) - MAX_ENTRIES)


def _present_output(shown: ItemPresentation, output: Any, action: Any) -> None:
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        shown.output = show(output["text"], ("output", "text"))
        rest = {key: val for key, val in output.items() if key != "text"}
        shown.output_extra = show(rest) if rest else None
    elif output is not None:
        shown.output = show(output, ("output",))
    if action is None:
        return
    if isinstance(action, dict) and isinstance(action.get("params", {}), dict):
        shown.action_type = key_text(action.get("type", ""))
        shown.action_params = rows(action.get("params", {}), ("action", "params"))
        shown.left_out["action_params"] = rows_left_out(action.get("params", {}))
        rest = {key: val for key, val in action.items() if key not in ("type", "params")}
        shown.action_raw = show(rest) if rest else None
    else:
        shown.action_raw = show(action, ("action",))


def _present_context(shown: ItemPresentation, value: Any) -> None:
    context, shown.other_context = _split(
        value, ("retrieved_documents", "reasoning", "tool_outputs"), ("context",)
    )
    documents = _as_list(context.get("retrieved_documents"))
    for index, doc in enumerate(documents[:MAX_ENTRIES]):
        path = ("context", "retrieved_documents", index)
        if isinstance(doc, dict) and ("title" in doc or "text" in doc):
            rest = {key: val for key, val in doc.items() if key not in ("title", "text")}
            if rest:
                body = show({"text": doc.get("text", ""), **rest}, path)
            else:
                body = show(doc.get("text", ""), (*path, "text"))
            shown.documents.append((key_text(doc.get("title") or "Untitled document"), body))
        else:
            shown.documents.append((Label("Document"), show(doc, path)))
    shown.left_out["documents"] = max(0, len(documents) - MAX_ENTRIES)
    if context.get("reasoning") not in (None, ""):
        shown.reasoning = show(context["reasoning"], ("context", "reasoning"))
    calls = _as_list(context.get("tool_outputs"))
    for index, call in enumerate(calls[:MAX_ENTRIES]):
        path = ("context", "tool_outputs", index)
        if isinstance(call, dict) and "tool" in call:
            rest = {key: val for key, val in call.items() if key != "tool"}
            if set(rest) <= {"output"}:
                body = show(call.get("output"), (*path, "output"))
            else:
                body = show(rest, path)
            shown.tool_outputs.append((key_text(call["tool"]), body))
        else:
            shown.tool_outputs.append((Label(""), show(call, path)))
    shown.left_out["tool_outputs"] = max(0, len(calls) - MAX_ENTRIES)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def submitted_part(item: ReviewItem, path: list) -> Any:
    """The value at `path` (keys and list indexes from the submission's top: input,
    output, action, context, signals, metadata), or raise LookupError. A path that starts
    ``["decisions", <id>]`` leads into that decision's edit (edited_output, edited_action)."""
    value: Any = {
        "input": item.input,
        "output": item.output,
        "action": item.action,
        "context": item.context,
        "signals": item.signals,
        "metadata": item.metadata,
    }
    if path[:1] == ["decisions"]:
        found = len(path) > 1 and type(path[1]) is int
        decision = item.decisions.filter(pk=path[1]).first() if found else None
        if decision is None:
            raise LookupError(path[:2])
        value = {"edited_output": decision.edited_output, "edited_action": decision.edited_action}
        path = path[2:]
    for step in path:
        in_object = isinstance(value, dict) and isinstance(step, str) and step in value
        in_list = isinstance(value, list) and type(step) is int and 0 <= step < len(value)
        if not (in_object or in_list):
            raise LookupError(step)
        value = value[step]
    return value


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


def edited_action_of(decision: Decision | None) -> Any:
    """The action an edit put on the table, or None."""
    return decision.edited_action if decision is not None else None


def edited_version(decision: Decision) -> list[tuple[str, Shown]]:
    """The version an edit put on the table (what a four-eyes second reviewer approves),
    cut like every value; "Show all" finds the rest under the decision (`submitted_part`)."""
    version = []
    where = ("decisions", decision.pk)
    if decision.edited_output is not None:
        text, is_text = output_text(decision.edited_output)
        path = (*where, "edited_output", "text") if is_text else (*where, "edited_output")
        version.append(("Edited output", replace(show(text, path), is_json=not is_text)))
    if decision.edited_action is not None:
        edited = decision.edited_action
        path = (*where, "edited_action", "params") if isinstance(edited, dict) else (*where, "edited_action")
        version.append(("Edited action parameters", show(action_params(edited), path)))
    return version


def duration_in_words(minutes: int) -> str:
    """``90`` → ``1 hour 30 minutes`` (SLAs on the workspace and the safety policy page)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n) or "0 minutes"


@dataclass(frozen=True)
class SummaryShown:
    """An action's "If you approve" line (`reviews.delivery.executors.summary_for`), its
    values with hidden characters marked like every submitted value."""

    type: list[tuple[bool, str]]
    key_params: list[tuple[str, list[tuple[bool, str]]]]
    other_keys: list[str]
    other_keys_left_out: int
    recorded_only: bool


def summary_shown(summary: Any) -> SummaryShown | None:
    if summary is None:
        return None
    return SummaryShown(
        type=marked(summary.type),
        key_params=[(key_text(label), marked(value)) for label, value in summary.key_params],
        other_keys=[key_text(key) for key in summary.other_keys],
        other_keys_left_out=summary.other_keys_left_out,
        recorded_only=summary.recorded_only,
    )
