"""Parsing of the account form. Rules live in the services; the form only shapes input."""

from __future__ import annotations

from django import forms

from practice.clients.models import ClientAccount
from practice.clients.services import EDITABLE_FIELDS


class AccountForm(forms.ModelForm):
    """Labels, lengths and choices come from the model, so the page and the rules agree.

    It is never saved: views pass `cleaned_data` to `account_create`/`account_update`.
    """

    class Meta:
        model = ClientAccount
        fields = list(EDITABLE_FIELDS)
        widgets = {
            "name": forms.TextInput(attrs={"autofocus": True}),
        }
