"""Sign-in form: e-mail addresses are stored lower-case, so compare them that way."""

from __future__ import annotations

from django.contrib.auth.forms import AuthenticationForm


class EmailAuthenticationForm(AuthenticationForm):
    def clean_username(self) -> str:
        # UserManager.create_user lower-cases addresses; "Ana@Firm.com" must still sign in.
        return (self.cleaned_data.get("username") or "").strip().lower()
