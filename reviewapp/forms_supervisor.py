"""Forms of the supervisor console."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from .models import Store
from .services.stores import POLICY_FIELDS


class StorePolicyForm(forms.ModelForm):
    # typed in the store's currency, as every other amount on these pages; kept in minor units
    review_limit_amount = forms.DecimalField(
        min_value=0,
        max_digits=12,
        decimal_places=2,
        help_text="Carts worth more than this (in the store's currency, e.g. 100.00) always go to a human.",
    )
    reason = forms.CharField(
        max_length=500, required=False, help_text="Why the change (kept in the audit log)."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance is not None:
            self.initial["review_limit_amount"] = Decimal(self.instance.review_limit_amount) / 100

    def clean_review_limit_amount(self) -> int:
        return int((self.cleaned_data["review_limit_amount"] * 100).to_integral_value())

    class Meta:
        model = Store
        fields = list(POLICY_FIELDS)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        for field in ("review_threshold", "deadline_confidence", "receipt_target_share"):
            value = data.get(field)
            if value is not None and not 0 <= value <= 1:
                self.add_error(field, "must be between 0 and 1")
        for field in ("audit_sample_percent", "second_opinion_percent"):
            value = data.get(field)
            if value is not None and not 0 <= value <= 100:
                self.add_error(field, "must be between 0 and 100")
        return data


class ReassignForm(forms.Form):
    to = forms.CharField(required=False, help_text="Username; empty returns the task to the queue.")

    def clean_to(self) -> object:
        from django.contrib.auth import get_user_model

        from .access import REVIEWER, SUPERVISOR, roles_of

        name = self.cleaned_data["to"].strip()
        if not name:
            return None
        user = get_user_model().objects.filter(username=name, is_active=True).first()
        if user is None or not roles_of(user) & {REVIEWER, SUPERVISOR}:
            raise forms.ValidationError(f"{name!r} is not an active reviewer")
        return user
