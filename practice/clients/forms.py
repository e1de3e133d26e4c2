"""Parsing of the account form. Rules live in the services; the form only shapes input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from practice.clients.models import AccountKind, ClientAccount
from practice.clients.services import EDITABLE_FIELDS
from practice.common.text import QBO_COMPANY_NAME_MAX, qbo_company_name, qbo_would_cut_company_name


class AccountForm(forms.ModelForm):
    """Labels, lengths and choices come from the model, so the page and the rules agree.

    It is never saved: views pass `cleaned_data` to `account_create`/`account_update`.
    """

    # Asked only when a company's name is longer than QuickBooks' CompanyName: the person sees
    # what QuickBooks will keep and agrees to it, rather than finding it cut there (issue 12).
    accept_company_name_cut = forms.BooleanField(
        required=False, label=_("Use the shortened company name in QuickBooks")
    )

    class Meta:
        model = ClientAccount
        fields = list(EDITABLE_FIELDS)
        widgets = {
            "name": forms.TextInput(attrs={"autofocus": True}),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        name = cleaned.get("name") or ""
        self.company_name_cut = ""
        # An edit that keeps an already-accepted long company name does not ask again.
        accepted_before = self.initial.get("kind") == AccountKind.COMPANY and self.initial.get("name") == name
        if cleaned.get("kind") == AccountKind.COMPANY and qbo_would_cut_company_name(name):
            self.company_name_cut = qbo_company_name(name)
            if not cleaned.get("accept_company_name_cut") and not accepted_before:
                self.add_error(
                    "name",
                    _(
                        "QuickBooks keeps only the first %(max)d characters of a company name; it "
                        "will hold “%(kept)s”. Shorten the name, or tick the box below to go on. "
                        "The full name stays the customer's display name."
                    )
                    % {"max": QBO_COMPANY_NAME_MAX, "kept": self.company_name_cut},
                )
        cleaned.pop("accept_company_name_cut", None)
        return cleaned
