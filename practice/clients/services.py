"""Writes for client accounts. Every write tells the rest of the app through `record_changed`.

Services validate their own input (views, the API and management commands all come through
here), and raise `ValidationError` with a dict keyed by field so callers can point at the field.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from practice.clients.models import AccountKind, ClientAccount
from practice.common import events
from practice.common.text import BIDI_CONTROL_MESSAGE, has_bidi_control
from practice.firms.models import Firm

# The fields a caller may set; everything else (firm, archived, timestamps) has its own service.
EDITABLE_FIELDS = (
    "name",
    "kind",
    "email",
    "phone",
    "address_line1",
    "city",
    "region",
    "postal_code",
    "country",
)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Trim text and reject what the database or QBO would choke on, before model validation.

    NUL bytes are checked here because model fields do not: PostgreSQL refuses them with a 500
    (stack-notes G11/G12) while SQLite stores them silently.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for field, value in values.items():
        if field not in EDITABLE_FIELDS:
            raise TypeError(f"unexpected field {field!r}")
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors.setdefault(field, []).append(_("Enter text."))
            continue
        if "\x00" in value:
            errors.setdefault(field, []).append(_("Null characters are not allowed."))
            continue
        if has_bidi_control(value):
            errors.setdefault(field, []).append(str(BIDI_CONTROL_MESSAGE))
            continue
        cleaned[field] = value.strip()
    if "email" in cleaned:
        # Addresses are compared case-insensitively everywhere; store them one way.
        cleaned["email"] = cleaned["email"].lower()
    if "kind" in cleaned and cleaned["kind"] == "":
        cleaned["kind"] = AccountKind.INDIVIDUAL
    if errors:
        raise ValidationError(errors)
    return cleaned


def _validate(account: ClientAccount) -> None:
    # Model validation covers required name, max lengths, e-mail syntax and the kind choices.
    account.full_clean(exclude=["firm"], validate_unique=False, validate_constraints=False)


@transaction.atomic
def account_create(
    *,
    firm: Firm,
    name: str,
    kind: str = AccountKind.INDIVIDUAL,
    email: str = "",
    phone: str = "",
    address_line1: str = "",
    city: str = "",
    region: str = "",
    postal_code: str = "",
    country: str = "",
) -> ClientAccount:
    cleaned = _clean(
        {
            "name": name,
            "kind": kind,
            "email": email,
            "phone": phone,
            "address_line1": address_line1,
            "city": city,
            "region": region,
            "postal_code": postal_code,
            "country": country,
        }
    )
    account = ClientAccount(firm=firm, **cleaned)
    _validate(account)
    account.save()
    events.record_changed(firm=firm, kind="account", obj_id=account.pk)
    return account


@transaction.atomic
def account_update(*, account: ClientAccount, **changes: Any) -> ClientAccount:
    """Change some of the EDITABLE_FIELDS; unknown keys are a programming error (TypeError)."""
    cleaned = _clean(changes)
    # Re-read under a row lock so two concurrent edits of different fields don't undo each other.
    locked = ClientAccount.objects.select_for_update().get(pk=account.pk, firm_id=account.firm_id)
    changed = [f for f, v in cleaned.items() if getattr(locked, f) != v]
    for field in changed:
        setattr(locked, field, cleaned[field])
    _validate(locked)
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
        events.record_changed(firm=locked.firm, kind="account", obj_id=locked.pk)
    _copy_into(locked, account)
    return account


def _set_archived(account: ClientAccount, archived: bool) -> ClientAccount:
    updated = ClientAccount.objects.filter(pk=account.pk, firm_id=account.firm_id).exclude(archived=archived)
    if updated.update(archived=archived):
        events.record_changed(firm=account.firm, kind="account", obj_id=account.pk)
    account.refresh_from_db()
    return account


@transaction.atomic
def account_archive(*, account: ClientAccount) -> ClientAccount:
    """Hide the account from the default list. Nothing is deleted; unarchive brings it back."""
    return _set_archived(account, True)


@transaction.atomic
def account_unarchive(*, account: ClientAccount) -> ClientAccount:
    return _set_archived(account, False)


def _copy_into(source: ClientAccount, target: ClientAccount) -> None:
    # The caller keeps its own object; give it the saved values.
    if source is not target:
        for field in (*EDITABLE_FIELDS, "archived", "updated_at"):
            setattr(target, field, getattr(source, field))
