"""The one table `make bench` prints: every benchmark adds its figures here.

    from tests.benchmarks.report import record
    record("Submissions", "full path / bare insert", f"{ratio:.2f}", target=">= 0.75")

Rows keep the order they were recorded in. Each is also appended, as one JSON line,
to HITL_BENCH_REPORT (default test-artifacts/bench.jsonl, emptied when a run starts),
so figures measured in a subprocess reach the table and the run leaves a record. The
table itself is printed at the end of the session by tests/benchmarks/conftest.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Figure:
    area: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: nothing to compare with


def report_path() -> Path:
    return Path(os.environ.get("HITL_BENCH_REPORT") or REPO / "test-artifacts" / "bench.jsonl")


def record(area: str, measure: str, value: str, *, target: str = "", met: bool | None = None) -> None:
    """Add a row: what was measured, its value as printed, and the target it is held to."""
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(Figure(area, measure, value, target, met))) + "\n")


def recorded() -> list[Figure]:
    path = report_path()
    if not path.exists():
        return []
    return [Figure(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def start() -> None:
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")


def table(figures: list[Figure]) -> str:
    if not figures:
        return "(no figures recorded)"
    heads = ("area", "measure", "value", "target", "")
    marks = {True: "met", False: "MISSED", None: ""}
    rows = [(f.area, f.measure, f.value, f.target, marks[f.met]) for f in figures]
    widths = [max(len(str(row[i])) for row in (heads, *rows)) for i in range(len(heads))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    return "\n".join(lines)


def scale() -> str:
    """`full` (the default: 10k and 1M rows) or `small` (10k and 100k), from BENCH_SCALE."""
    value = os.environ.get("BENCH_SCALE", "full").strip().lower() or "full"
    if value not in {"full", "small"}:
        raise ValueError(f"BENCH_SCALE is {value!r}: use full or small")
    return value


def big() -> int:
    """The large size every benchmark measures at: 1M rows, or 100k under BENCH_SCALE=small."""
    return 1_000_000 if scale() == "full" else 100_000


def machine() -> str:
    """One line on where the figures were taken: CPU, cores, memory, PostgreSQL if known."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores{memory}, Python {platform.python_version()}, {platform.system()}"
