"""The auditor's one filter form: the search page, the page export and `export_decisions` all use it.

Amounts are typed in major units ("12.50") and compared in minor units. A payment
token is typed in full (it is hashed with the keyed hash and never kept) or as its
last four characters; links the page builds carry only the hash (`token_hash`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .models import DecisionOutcome, Store
from .tokens import token_hash

# The filter keys, in the order they appear in links and in the export's audit record.
FILTER_KEYS = (
    "q",
    "since",
    "until",
    "store",
    "reviewer",
    "outcome",
    "min_amount",
    "max_amount",
    "token_hash",
    "token_last4",
)


def _minor_units(value: Decimal | None) -> int | None:
    return None if value is None else int((value * 100).to_integral_value())


class AuditFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=128,
        label="Transaction code or visit id",
        widget=forms.TextInput(
            attrs={"placeholder": "d445c74f, or the store's visit id", "autocomplete": "off"}
        ),
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    store = forms.ModelChoiceField(
        queryset=Store.objects.order_by("name"), to_field_name="code", required=False, empty_label="Any store"
    )
    reviewer = forms.CharField(required=False, max_length=150, label="Reviewer (username)")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any outcome"), *DecisionOutcome.choices], label="Outcome"
    )
    min_amount = forms.DecimalField(
        required=False, min_value=0, decimal_places=2, max_digits=12, label="Amount from"
    )
    max_amount = forms.DecimalField(
        required=False, min_value=0, decimal_places=2, max_digits=12, label="Amount to"
    )
    # Never rendered back into the page: the view swaps a full token for its hash.
    token = forms.CharField(
        required=False,
        max_length=200,
        label="Card token (full, or last 4)",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    token_hash = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput)

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()

    def clean_reviewer(self) -> str:
        return self.cleaned_data["reviewer"].strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise ValidationError("'From' is after 'To'.")
        low, high = data.get("min_amount"), data.get("max_amount")
        if low is not None and high is not None and low > high:
            raise ValidationError("'Amount from' is more than 'Amount to'.")
        token = (data.get("token") or "").strip()
        data["token_last4"] = ""
        if token:
            if len(token) <= 4:
                data["token_last4"] = token
            else:
                data["token_hash"] = token_hash(token)
        return data

    @property
    def has_full_token(self) -> bool:
        """A full token was typed: the page redirects to the same search by hash."""
        return bool((self.cleaned_data.get("token") or "").strip()) and not self.cleaned_data["token_last4"]

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for selectors.transactions_filtered / decisions_filtered."""
        data = self.cleaned_data
        return {
            "q": data.get("q") or "",
            "since": data.get("since"),
            "until": data.get("until"),
            "store": data.get("store"),
            "reviewer": data.get("reviewer") or "",
            "outcome": data.get("outcome") or "",
            "min_amount": _minor_units(data.get("min_amount")),
            "max_amount": _minor_units(data.get("max_amount")),
            "token_hash": data.get("token_hash") or "",
            "token_last4": data.get("token_last4") or "",
        }

    def query_params(self) -> dict[str, str]:
        """The search as GET parameters without the token itself (links, redirects, the export)."""
        data = self.cleaned_data
        params: dict[str, str] = {}
        for key in ("since", "until"):
            if data.get(key):
                params[key] = data[key].isoformat()
        if data.get("store"):
            params["store"] = str(data["store"].code)
        for key in ("q", "reviewer", "outcome", "token_hash"):
            if data.get(key):
                params[key] = data[key]
        for key in ("min_amount", "max_amount"):
            if data.get(key) is not None:
                params[key] = str(data[key])
        if data.get("token_last4"):
            params["token"] = data["token_last4"]
        return params


def describe_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe form of the filters for an audit record: the store by code, never a full token."""
    out: dict[str, Any] = {}
    for key in FILTER_KEYS:
        value = filters.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Store):
            value = str(value.code)
        out[key] = value
    return out


def form_from_options(options: dict[str, Any]) -> AuditFilterForm:
    """Bind the form to a management command's options (same names, dashes as underscores)."""
    data = {}
    for key in (
        "q",
        "since",
        "until",
        "reviewer",
        "outcome",
        "min_amount",
        "max_amount",
        "token",
        "token_hash",
    ):
        if options.get(key) not in (None, ""):
            data[key] = str(options[key])
    store = options.get("store")
    if store:
        match = Store.objects.filter(name=store).values_list("code", flat=True).first()
        data["store"] = str(match) if match else str(store)
    return AuditFilterForm(data)
