"""Figures as the dashboard shows them (templates/admin/metrics/dashboard.html)."""

from __future__ import annotations

from django import template

from metrics.dashboard import seconds_text

register = template.Library()


@register.filter
def percent(value) -> str:
    """A fraction as a whole percentage (0.333 → 33%); none → a dash."""
    return "–" if value is None else f"{value:.0%}"


@register.filter
def duration(value) -> str:
    return seconds_text(value)


@register.filter
def week_value(value, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return percent(value)
    if kind == "seconds":
        return seconds_text(value)
    return str(value)


@register.filter
def week_delta(value, kind: str) -> str:
    """A change from last week: +3, −12 pts, +2 min; none or nothing → a dash."""
    if value is None or value == 0:
        return "–" if value is None else "±0"
    sign = "+" if value > 0 else "−"
    if kind == "rate":
        return f"{sign}{abs(value) * 100:.0f} pts"
    if kind == "seconds":
        return f"{sign}{seconds_text(abs(value))}"
    return f"{sign}{abs(value)}"


@register.filter
def direction(value) -> str:
    """A CSS class for a change: up, down or same."""
    if not value:
        return "same"
    return "up" if value > 0 else "down"
