"""Account-sync error messages in the reader's language.

The engine stores an English message on the link (for history, logs and support) together with
the error's kind and candidates; pages show the message rebuilt here with gettext, so a Spanish
bookkeeper reads Spanish. Kinds without a template here (QBO's own fault texts) fall back to the
stored message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext as _

from practice.common.text import BIDI_CONTROL_MESSAGE, has_bidi_control
from practice.quickbooks.sync.kinds.matching import MAX_DISPLAY_NAME, clean_display_name


def _names(candidates: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"“{c.get('name', '')}”" for c in candidates if c.get("name"))


def _name_problem(name: str) -> str | None:
    stripped = name.strip()
    if "\x00" in name:
        return _("Remove the invalid control character from the name.")
    if has_bidi_control(name):
        return str(BIDI_CONTROL_MESSAGE)
    if not stripped:
        return _("The account has no name. Give it a name, then sync again.")
    for ch, words in ((":", _("a colon (:)")), ("\t", _("a tab")), ("\n", _("a line break"))):
        if ch in stripped:
            return _(
                "QuickBooks does not allow %(what)s in customer names. "
                "Rename the account without it, then sync again."
            ) % {"what": words}
    cleaned = clean_display_name(name)
    if len(cleaned) > MAX_DISPLAY_NAME:
        return _(
            "QuickBooks customer names can be at most %(max)d characters; this one has %(n)d. "
            "Shorten the account name, then sync again."
        ) % {"max": MAX_DISPLAY_NAME, "n": len(cleaned)}
    return None


def error_text(kind: str, *, name: str, candidates: list[dict[str, Any]], stored: str) -> str:
    """The message for an Error of `kind` about the account called `name`, in the active language."""
    shown = clean_display_name(name)
    first = candidates[0] if candidates else {}
    text: str | None = None
    if kind == "near_match" and candidates:
        text = _(
            "No QuickBooks customer is named exactly “%(name)s”, but similar ones exist: %(names)s. "
            "Link the right one, or create a new customer if none is this client."
        ) % {"name": shown, "names": _names(candidates)}
    elif kind == "no_match":
        text = _(
            "No QuickBooks customer named “%(name)s”. Link this account to an existing customer or "
            "create a new one."
        ) % {"name": shown}
    elif kind == "inactive_match" and first:
        text = _(
            "The QuickBooks customer “%(name)s” is inactive. Reactivate and link it, pick another "
            "customer, or create a new one."
        ) % {"name": first.get("name", shown)}
    elif kind == "ambiguous" and candidates:
        text = _(
            "Several QuickBooks customers are named “%(name)s”: %(names)s. Choose the right one with "
            "“Sync account with QuickBooks”."
        ) % {"name": shown, "names": _names(candidates)}
    elif kind in ("vendor_clash", "employee_clash") and first:
        template = (
            _(
                "“%(name)s” is already a vendor in QuickBooks, and QuickBooks does not allow a customer "
                "with the same name. Link this account to an existing customer, or create the customer "
                "under a different name (for example “%(name)s (client)”)."
            )
            if kind == "vendor_clash"
            else _(
                "“%(name)s” is already an employee in QuickBooks, and QuickBooks does not allow a "
                "customer with the same name. Link this account to an existing customer, or create the "
                "customer under a different name (for example “%(name)s (client)”)."
            )
        )
        text = template % {"name": first.get("name", shown)}
    elif kind == "linked_elsewhere" and first:
        text = _(
            "The QuickBooks customer “%(name)s” is already linked to another account. Link this "
            "account to a different customer or create a new one."
        ) % {"name": first.get("name", shown)}
    elif kind == "invalid_name":
        text = _name_problem(name)
    elif kind == "duplicate_name":
        text = _(
            "QuickBooks says this name is already used by another customer, vendor or employee. Link "
            "this account to the existing customer or create one with a different name."
        )
    elif kind in ("customer_inactive", "customer_deleted") and first:
        template = (
            _(
                "The QuickBooks customer “%(name)s” was made inactive in QuickBooks. Reactivate and "
                "link it, link the account to another customer, or create a new one."
            )
            if kind == "customer_inactive"
            else _(
                "The QuickBooks customer “%(name)s” was deleted in QuickBooks. Reactivate and link it, "
                "link the account to another customer, or create a new one."
            )
        )
        text = template % {"name": first.get("name", shown)}
    elif kind == "customer_merged" and first:
        text = _(
            "In QuickBooks, this account's customer was merged into “%(name)s”. Link the account to "
            "“%(name)s”, link it to another customer, or create a new one."
        ) % {"name": first.get("name", "")}
    elif kind == "customer_gone":
        text = _(
            "The QuickBooks customer this account was linked to no longer exists. Link the account "
            "to another customer, or create a new one."
        )
    elif kind == "unavailable":
        text = _(
            "QuickBooks did not answer after several tries. Nothing was duplicated; use Retry to try "
            "again, or check QuickBooks' status page."
        )
    return text or stored
