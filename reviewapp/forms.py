"""Input validation for the reviewer page. Views validate here; services assume valid input."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from .services.review import REASON_CODES, FinalLine

MAX_QTY = 99
SKIP_REASONS = {
    "video_broken": "The video does not load or play",
    "conflict": "I know the shopper / conflict of interest",
    "break": "Taking a break",
    "other": "Other",
}


class DecisionForm(forms.Form):
    """The reviewer's decision on the cart as edited on the page.

    `lines` is the final cart as JSON, `[{"sku", "qty", "reason", "event"}]`; `removed`
    maps each proposed sku left out to its reason code. Every change against the
    proposal needs a reason code; an escalation needs a note.
    """

    outcome = forms.ChoiceField(choices=[("approved", "Approve"), ("escalated", "Escalate")])
    lines = forms.CharField(required=False)
    removed = forms.CharField(required=False)
    note = forms.CharField(required=False, max_length=2000)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)

    def __init__(
        self, *args: Any, proposal: dict[str, int], skus: set[str], events: set[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.proposal = proposal
        self.skus = skus
        self.events = events

    def _json(self, name: str, kind: type) -> Any:
        raw = self.cleaned_data.get(name) or ""
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError(f"{name} is not valid JSON")
        if not isinstance(value, kind):
            raise forms.ValidationError(f"{name} must be a JSON {kind.__name__}")
        return value

    def clean_lines(self) -> list[FinalLine] | None:
        raw = self._json("lines", list)
        if raw is None:
            return None
        merged: dict[str, FinalLine] = {}
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise forms.ValidationError(f"line {i + 1} is not an object")
            sku, qty = item.get("sku"), item.get("qty")
            reason, event = item.get("reason") or "", item.get("event") or ""
            if sku not in self.skus:
                raise forms.ValidationError(f"line {i + 1}: no product {sku!r} in this store")
            if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= MAX_QTY:
                raise forms.ValidationError(f"line {i + 1}: quantity must be a whole number 0-{MAX_QTY}")
            if reason and reason not in REASON_CODES:
                raise forms.ValidationError(f"line {i + 1}: unknown reason {reason!r}")
            if event and event not in self.events:
                raise forms.ValidationError(f"line {i + 1}: that event is not part of this transaction")
            if sku in merged:  # the same product twice (e.g. after a swap) is one line
                prev = merged[sku]
                qty, reason, event = prev.qty + qty, prev.reason or reason, prev.event or event
            merged[sku] = FinalLine(sku=sku, qty=min(qty, MAX_QTY), reason=reason, event=event)
        return list(merged.values())

    def clean_removed(self) -> dict[str, str]:
        raw = self._json("removed", dict) or {}
        for sku, reason in raw.items():
            if reason not in REASON_CODES:
                raise forms.ValidationError(f"{sku}: unknown reason {reason!r}")
        return {str(sku): str(reason) for sku, reason in raw.items()}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        if data.get("outcome") == "escalated" and not (data.get("note") or "").strip():
            self.add_error("note", "Say what the footage cannot tell (a short note).")
        lines: list[FinalLine] | None = data.get("lines")
        if data.get("outcome") == "approved" and lines is not None:
            final = {line.sku: line for line in lines if line.qty > 0}
            removed = data.get("removed") or {}
            missing = []
            for sku in sorted(set(self.proposal) | set(final)):
                before = self.proposal.get(sku, 0)
                after = final[sku].qty if sku in final else 0
                reason = final[sku].reason if sku in final else removed.get(sku, "")
                if before != after and not reason:
                    missing.append(sku)
            if missing:
                self.add_error("lines", f"Pick a reason code for each change: {', '.join(missing)}.")
        return data


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=list(SKIP_REASONS.items()))
    note = forms.CharField(required=False, max_length=500)

    def reason_text(self) -> str:
        reason = self.cleaned_data["reason"]
        note = (self.cleaned_data.get("note") or "").strip()
        return f"{reason}: {note}" if note else reason
