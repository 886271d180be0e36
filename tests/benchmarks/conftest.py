"""`make bench` prints one table: the figures every benchmark recorded (report.py)."""

from __future__ import annotations

from tests.benchmarks import report


def pytest_sessionstart(session):
    report.start()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = report.recorded()
    terminalreporter.section(f"benchmark figures (BENCH_SCALE={report.scale()})")
    terminalreporter.write_line(f"machine: {report.machine()}")
    terminalreporter.write_line(report.table(figures))
    table_file = report.report_path().with_suffix(".md")
    table_file.write_text(f"machine: {report.machine()}\n\n{report.table(figures)}\n", encoding="utf-8")
    terminalreporter.write_line(f"(also written to {table_file})")
