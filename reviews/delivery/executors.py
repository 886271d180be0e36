"""Executors carry out approved actions, one registered per `action.type`.

The built-in `webhook` executor, the default for every type, posts the final
action to the integration's `action_url`, signed like every webhook and with
`Idempotency-Key: <item id>`, so a receiver that honours the key applies it
exactly once however often it is delivered. Projects add their own with
`register("payment.refund", MyExecutor())`.

An executor also says in one line what approving an action will execute
(`summarize`, shown on the review page as "If you approve: ..."): the base class
picks out the parameters a person checks first; a project's executor may do
better for its own type.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from reviews.models import Integration, OutboxMessage, ReviewItem
from reviews.webhooks.http import post_signed

logger = logging.getLogger(__name__)


class InvalidAction(ValueError):
    """The final action cannot be executed as it stands."""


@dataclass(frozen=True)
class ExecutionResult:
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str = ""


# --- What approving will execute ---------------------------------------------------------

MAX_SUMMARY_CHARS = 200  # of the type, of each label and of each formatted value
MAX_PER_ROLE = 3  # parameters shown per role (amount, recipient, target, scope); the rest are other keys
MAX_OTHER_KEYS = 50
ELLIPSIS = "\u2026"


@dataclass(frozen=True)
class ActionSummary:
    """One line saying what an approved action will execute, in plain strings (templates escape them).

    `key_params` are (label, formatted value) pairs in the order a person checks
    them: the amount in its currency, the recipient, the target, the scope; the
    label is the parameter's own name. `other_keys` names the remaining parameters
    in their original order (at most MAX_OTHER_KEYS; `other_keys_left_out` counts
    the rest). `recorded_only` means the integration records approved actions
    without anything being called.
    """

    type: str
    key_params: list[tuple[str, str]] = field(default_factory=list)
    other_keys: list[str] = field(default_factory=list)
    other_keys_left_out: int = 0
    recorded_only: bool = False


def clip(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """At most `limit` characters (and a "…" when cut), always encodable as UTF-8."""
    text = text if len(text) <= limit else text[:limit] + ELLIPSIS
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates would break the page's encoding: replace them
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ISO 4217 currencies that do not use two decimal places.
ZERO_DECIMAL_CURRENCIES = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX"}
ZERO_DECIMAL_CURRENCIES |= {"UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
THREE_DECIMAL_CURRENCIES = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
AMOUNT_KEYS = {"amount", "total", "refund_amount", "transfer_amount", "payment_amount", "amount_total"}
MINOR_UNIT_SUFFIXES = ("_cents", "_minor")  # `amount_cents: 1299` is 12.99
CURRENCY_KEYS = {"currency", "currency_code", "ccy"}
ROLE_WORDS = {
    # checked in this order: `user_id` is a recipient, `role_id` a scope, `order_id` a target
    "recipient": {
        "to", "recipient", "recipients", "email", "account", "iban", "payee", "user", "username",
        "beneficiary", "customer", "destination", "phone", "member", "assignee", "principal", "grantee",
    },
    "scope": {
        "scope", "scopes", "permission", "permissions", "role", "roles", "environment", "env",
        "access", "group", "groups", "privilege", "privileges",
    },
    "target": {
        "target", "resource", "record", "order", "charge", "invoice", "ticket", "subscription", "file",
        "path", "url", "repo", "repository", "document", "transaction", "id",
    },
}  # fmt: skip
NOT_RECIPIENT_WORDS = {"from", "source", "sender", "origin", "subject", "body", "template"}
ISO_CURRENCY = re.compile(r"[A-Z]{3}")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?")
GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def _words(key: str) -> list[str]:
    """`chargeId`, `charge-id` and `Charge ID` all give ["charge", "id"]."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key[:100])
    return [word for word in re.split(r"[^a-z0-9]+", snake.lower()) if word]


def _role(key: str) -> str:
    words = set(_words(key))
    for role, role_words in ROLE_WORDS.items():
        if role == "recipient" and words & NOT_RECIPIENT_WORDS:
            continue
        if words & role_words:
            return role
    return ""


def _decimal(value: Any) -> Decimal | None:
    """An amount as a Decimal: numbers and numeric strings ("12.99", "1,250.00"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if value.bit_length() <= 128 else None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None  # repr: 12.99, not its binary expansion
    if isinstance(value, str) and len(value) <= 60:
        text = value.strip().replace("_", "")
        if GROUPED_NUMBER.fullmatch(text):
            text = text.replace(",", "")
        if NUMBER.fullmatch(text):
            return Decimal(text)
    return None


def format_amount(amount: Any, currency: Any = None, *, minor_units: bool = False) -> str:
    """`12.99 USD`, `1,250.00 EUR`, `1,500 JPY`, `1.250 KWD`: the amount in its currency's
    decimal places (more when the amount has more, so nothing that executes is rounded
    away), then the code. Odd input is shown as it came."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    known = bool(ISO_CURRENCY.fullmatch(code))
    places = 0 if code in ZERO_DECIMAL_CURRENCIES else 3 if code in THREE_DECIMAL_CURRENCIES else 2
    number = _decimal(amount)
    if number is not None and minor_units:
        # Minor units are only worth converting when the currency says how many there are.
        number = number.scaleb(-places) if known else None
    text = _plain(amount)
    if number is not None and (known or not code):
        try:
            exponent = number.normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent >= -20 and number.adjusted() <= 30:
                text = f"{number:,.{max(places if known else 0, -exponent)}f}"
        except (InvalidOperation, ValueError, OverflowError):
            pass
    if known:
        text = f"{text} {code}"
    elif currency not in (None, ""):
        text = f"{text} {_plain(currency)}"
    return clip(text)


class _Full(Exception):
    pass


class _Writer:
    """Plain text of any JSON value, stopping as soon as it is longer than `limit`
    (so a 1 MiB value costs no more than a short one)."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def write(self, value: Any, depth: int = 0, *, bare: bool | None = None) -> None:
        """`bare`: a string without quotes (at the top and in a top-level list)."""
        top = depth == 0
        if isinstance(value, str):
            text = value[: self.limit + 1]
            self.put(text if (top if bare is None else bare) else json.dumps(text, ensure_ascii=False))
        elif isinstance(value, bool) or value is None:
            self.put(json.dumps(value))
        elif isinstance(value, int | float):
            self.put(_number_text(value))
        elif depth > 16:
            self.put(ELLIPSIS)
        elif isinstance(value, list | tuple):
            # A list at the top reads as `read, write`; nested ones keep their brackets.
            self.put("" if top else "[")
            for index, entry in enumerate(value):
                self.put(", " if index else "")
                self.write(entry, depth + 1, bare=top)
            self.put("" if top else "]")
        elif isinstance(value, dict):
            self.put("{")
            for index, (key, entry) in enumerate(value.items()):
                self.put(", " if index else "")
                self.put(json.dumps(str(key)[: self.limit + 1], ensure_ascii=False) + ": ")
                self.write(entry, depth + 1)
            self.put("}")
        else:
            self.put(type(value).__name__)


def _number_text(value: int | float) -> str:
    if isinstance(value, float):
        return repr(value)
    try:
        return str(value)
    except ValueError:  # more digits than Python converts
        return "(a number too long to show)"


def _plain(value: Any) -> str:
    writer = _Writer(MAX_SUMMARY_CHARS)
    try:
        writer.write(value)
    except _Full:
        pass
    except RecursionError:
        writer.parts.append(ELLIPSIS)
    return clip("".join(writer.parts))


def generic_summary(action: Any) -> ActionSummary:
    """The summary any action gets: amount and currency, recipient, target and scope
    parameters picked by their names, everything else as other keys."""
    if not isinstance(action, dict):
        return ActionSummary(type="")
    action_type = clip(_plain(action.get("type", "")))
    params = action.get("params")
    if not isinstance(params, dict):
        return ActionSummary(type=action_type)
    keys = [key for key in params if isinstance(key, str)]
    currency_key = next((key for key in keys if key.lower() in CURRENCY_KEYS), None)
    # The currency is shown with the amount, so it is no other key (unless there is no amount).
    shown_with_amount = currency_key if any(_is_amount(key) for key in keys) else None
    chosen: dict[str, list[tuple[str, str]]] = {"amount": [], "recipient": [], "target": [], "scope": []}
    others = []
    for key in keys:
        if key == shown_with_amount:
            continue
        role = "amount" if _is_amount(key) else (_role(key) if len(key) <= 100 else "")
        if role and len(chosen[role]) < MAX_PER_ROLE:
            chosen[role].append((clip(key), _formatted(key, params[key], params, currency_key)))
        else:
            others.append(key)
    return ActionSummary(
        type=action_type,
        key_params=[pair for role in chosen.values() for pair in role],
        other_keys=[clip(key) for key in others[:MAX_OTHER_KEYS]],
        other_keys_left_out=max(0, len(others) - MAX_OTHER_KEYS),
    )


def _is_amount(key: str) -> bool:
    lowered = key.lower()
    return lowered in AMOUNT_KEYS or (lowered.endswith(MINOR_UNIT_SUFFIXES) and lowered.startswith("amount"))


def _formatted(key: str, value: Any, params: dict, currency_key: str | None) -> str:
    lowered = key.lower()
    if _is_amount(key):
        currency = params.get(currency_key) if currency_key is not None else None
        if isinstance(value, dict):  # {"amount": {"value": "12.99", "currency": "USD"}}
            inner = next((value[k] for k in ("value", "amount") if k in value), None)
            inner_currency = next((value[k] for k in value if str(k).lower() in CURRENCY_KEYS), currency)
            if inner is not None:
                return format_amount(inner, inner_currency)
        return format_amount(value, currency, minor_units=lowered.endswith(MINOR_UNIT_SUFFIXES))
    return _plain(value)


class Executor:
    """Validate a final action, then carry it out; `execute` runs once per attempt."""

    def validate(self, action: Any) -> None:
        if not isinstance(action, dict) or not isinstance(action.get("type"), str) or not action["type"]:
            raise InvalidAction("The action must be an object with a type.")
        if not isinstance(action.get("params", {}), dict):
            raise InvalidAction("The action's params must be an object.")

    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        raise NotImplementedError

    def summarize(self, action: Any) -> ActionSummary:
        """What approving `action` will execute, in one line; override it for a type you know better."""
        return generic_summary(action)


def post_message(message: OutboxMessage, url: str, extra_headers: dict | None = None) -> ExecutionResult:
    """POST an outbox message to `url`, signed with the integration's secrets (both of
    them during a rotation), with the message's id as `webhook-id`."""
    integration = message.item.integration
    result = post_signed(
        url,
        payload=message.payload,
        secrets=[integration.webhook_secret, integration.previous_webhook_secret],
        msg_id=message.msg_id,
        timeout=settings.HITL_DELIVERY_TIMEOUT_SECONDS,
        extra_headers=extra_headers,
    )
    return ExecutionResult(result.ok, result.status_code, result.duration_ms, result.error)


class WebhookExecutor(Executor):
    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        if not item.integration.action_url:
            return ExecutionResult(False, None, 0, "The integration has no action_url to send the action to.")
        return post_message(message, item.integration.action_url, {"Idempotency-Key": str(item.pk)})


class RecordingExecutor(Executor):
    """Carries out nothing: the approved action is recorded as executed. For
    integrations set to record actions only (the demo, trials of a new agent)."""

    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        return ExecutionResult(True, None, 0)


DEFAULT_EXECUTOR = WebhookExecutor()
RECORDING_EXECUTOR = RecordingExecutor()
_registry: dict[str, Executor] = {}


def register(action_type: str, executor: Executor) -> None:
    _registry[action_type] = executor


def executor_for(action: Any, integration: Integration | None = None) -> Executor:
    """The executor for an action: nothing is ever called for a record-only
    integration; otherwise the one registered for the action's type, or the webhook."""
    if integration is not None and integration.action_delivery == Integration.ActionDelivery.RECORD:
        return RECORDING_EXECUTOR
    action_type = action.get("type") if isinstance(action, dict) else None
    return _registry.get(action_type, DEFAULT_EXECUTOR)


def summary_for(action: Any, integration: Integration | None = None) -> ActionSummary | None:
    """The summary of what approving `action` will execute; None when it is not an object with a type.

    The executor registered for the type summarises (its own summary wins, even for an
    integration that only records actions, which the summary then says); one that raises
    or answers something else falls back to the generic summary, and every string is
    capped, so a project's executor cannot break the review page.
    """
    if not isinstance(action, dict) or not isinstance(action.get("type"), str) or not action["type"]:
        return None
    executor = _registry.get(action["type"], DEFAULT_EXECUTOR)
    try:
        summary = executor.summarize(action)
        if not isinstance(summary, ActionSummary):
            raise TypeError(f"summarize() returned {type(summary).__name__}, not an ActionSummary")
        summary = _capped(summary)
    except Exception:
        logger.exception("Executor for %.80r could not summarise an action", action["type"])
        summary = generic_summary(action)
    recorded = integration is not None and integration.action_delivery == Integration.ActionDelivery.RECORD
    return replace(summary, recorded_only=recorded) if recorded else summary


def _capped(summary: ActionSummary) -> ActionSummary:
    """A project's summary in the shape and sizes the page expects."""
    pairs = [
        (clip(str(label)), clip(str(value))) for label, value in list(summary.key_params)[:MAX_OTHER_KEYS]
    ]
    keys = [clip(str(key)) for key in list(summary.other_keys)]
    return ActionSummary(
        type=clip(str(summary.type)),
        key_params=pairs,
        other_keys=keys[:MAX_OTHER_KEYS],
        other_keys_left_out=max(0, len(keys) - MAX_OTHER_KEYS) + int(summary.other_keys_left_out or 0),
    )
