"""Formatting for the auditor's pages: money in minor units, compact JSON, durations."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def money(minor: Any) -> str:
    """1250 -> "12.50"; empty for None. Two decimals: the stores' currencies all have cents."""
    if minor is None or minor == "":
        return ""
    value = int(minor)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 100:,}.{value % 100:02d}"


@register.filter
def compact_json(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return json.dumps(value, separators=(", ", ": "), sort_keys=True, default=str)


@register.filter
def ms_seconds(ms: Any) -> str:
    if not ms:
        return "—"
    return f"{int(ms) / 1000:.1f} s"


@register.filter
def short_code(code: Any) -> str:
    return str(code)[:8]


@register.filter
def percent(share: Any, places: int = 1) -> str:
    """0.0123 -> "1.2%"; a dash for None (a share of nothing)."""
    if share is None or share == "":
        return "—"
    return f"{float(share) * 100:.{int(places)}f}%"
