"""python manage.py backtest_rule [RULE] [--draft FILE.json] [--since ISO] [--until ISO]
[--queue SLUG] [--json]"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from django.core.management.base import CommandError
from django.utils import timezone

from policies.backtest import BacktestError, BacktestReport, backtest
from policies.models import GateRule
from reviews.management.audited import AuditedCommand
from reviews.safejson import UnsafeJSON, loads_checked

DEFAULT_DAYS = 30


def parse_moment(text: str, option: str) -> datetime:
    """An ISO 8601 date or date and time; without an offset it is read in the project's time zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2025-05-01 or 2025-05-01T09:30+02:00)."
        ) from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(AuditedCommand):
    help = (
        "Backtest a gate rule over the stored items of a past window: how many it would have "
        "matched and how their outcomes would change (pass → review, review → block, …), per queue. "
        "RULE is a saved rule's id or name (a disabled rule is a draft); --draft FILE.json gives a rule "
        "as a policy file describes it, replacing the rule of its name if there is one. Nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("rule", nargs="?", help="The id or name of a saved gate rule.")
        parser.add_argument(
            "--draft",
            metavar="FILE.json",
            help="A draft rule in the policy-file format (- for standard input). With RULE, it replaces "
            "that rule and may leave out any key, which keeps the rule's value.",
        )
        parser.add_argument(
            "--since", help=f"Start of the window, ISO 8601 (default: {DEFAULT_DAYS} days ago)."
        )
        parser.add_argument("--until", help="End of the window, not included, ISO 8601 (default: now).")
        parser.add_argument("--queue", metavar="SLUG", help="Report only items placed in this queue.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")
        parser.add_argument("--batch-size", type=int, default=2000, help="Items read per query.")

    def handle(self, *args, rule, draft, since, until, queue, as_json: bool, batch_size: int, **options):
        until_at = parse_moment(until, "--until") if until else timezone.now()
        since_at = parse_moment(since, "--since") if since else until_at - timedelta(days=DEFAULT_DAYS)
        saved = self._rule(rule) if rule is not None else None
        if saved is None and draft is None:
            raise CommandError("Name a rule (its id or name) or give --draft FILE.json.")
        draft_rule = None
        if draft is not None:
            draft_rule = self._load(draft)
            if saved is not None:
                if not isinstance(draft_rule, dict):
                    raise CommandError(f"{draft}: expected an object describing one rule.")
                name = draft_rule.setdefault("name", saved.name)
                if name != saved.name:
                    raise CommandError(
                        f"{draft} describes the rule {name!r}, not {saved.name!r}: "
                        "leave out RULE or the draft's name."
                    )
                saved = None
        try:
            report = backtest(
                rule=saved,
                draft=draft_rule,
                since=since_at,
                until=until_at,
                queue=queue,
                batch_size=batch_size,
                progress=self._progress(batch_size),
            )
        except BacktestError as exc:
            if len(exc.errors) == 1:
                raise CommandError(exc.errors[0]) from exc
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(exc.errors)} errors (above): nothing was backtested.") from exc
        if as_json:
            self.stdout.write(_json_dump(report))
        else:
            for line in report_lines(report):
                self.stdout.write(line)

    def _rule(self, ident: str) -> GateRule:
        rules = GateRule.objects.all()
        found = None
        if ident.isascii() and ident.isdigit() and len(ident) < 19:
            found = rules.filter(pk=int(ident)).first()
        found = found or rules.filter(name=ident).first()
        if found is None:
            raise CommandError(f"No gate rule with the id or name {ident!r}.")
        return found

    def _load(self, file: str):
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"Cannot read {file}: not UTF-8 text ({exc.reason})") from exc
        try:
            return loads_checked(text)
        except UnsafeJSON as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from exc

    def _progress(self, batch_size: int):
        def show(read: int, total: int) -> None:
            if total > batch_size:  # a window of one batch needs no progress line
                self.stderr.write(f"{read}/{total} items…")

        return show


def _json_dump(report: BacktestReport) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def _moment(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


def _table(header: tuple[str, ...], rows: list[tuple], numeric: set[int]) -> list[str]:
    cells = [tuple(str(cell) for cell in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        parts = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(row) for row in cells[1:])]


def report_lines(report: BacktestReport) -> list[str]:
    """The report as a person reads it in a terminal."""
    kind = "draft" if report.is_draft else f"rule {report.candidate_id}"
    lines = [
        f"Backtest of “{report.candidate}” ({kind}), items submitted from {_moment(report.since)} "
        f"until {_moment(report.until)}" + (f", placed in queue {report.queue}" if report.queue else ""),
        f"Compared with {report.baseline}.",
        "",
        f"Items examined: {report.examined}",
        f"Matched by the candidate: {report.matched}"
        + (
            f" (by the rule as it is now: {report.replaced_matched})"
            if report.replaced_matched is not None
            else ""
        ),
        f"Outcome changed: {report.changed}",
    ]
    if report.transitions:
        rows = [(t.label, t.before.label, t.after.label, t.count) for t in report.transitions]
        lines += ["", *_table(("Transition", "Before", "After", "Items"), rows, numeric={3})]
        lines += ["", "Sample items (open them in the admin's review page):"]
        for t in report.transitions:
            lines.append(f"  {t.before.label} → {t.after.label}: {', '.join(t.samples)}")
    else:
        lines += ["", "No item would change outcome."]
    if report.placements:
        rows = [
            (p.placement.outcome, p.placement.queue or "-", p.before, p.after, f"{p.change:+d}")
            for p in report.placements
        ]
        lines += ["", *_table(("Outcome", "Queue", "Before", "After", "Change"), rows, numeric={2, 3, 4})]
    return lines
