"""History lines in the reader's language.

The engine and the actions store each SyncAttempt's message in English (history, logs and
support read the same words). Pages show it through `translate`: a stored message that matches
one of the English sentences below (placeholders and all) is shown in the active language;
anything else (QuickBooks' own fault texts, say) is shown as stored.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.utils.translation import gettext, gettext_noop

# Exactly the English the engine and the actions write (keep in step when one changes).
SENTENCES = (
    gettext_noop("Linked by name to “%(name)s”."),
    gettext_noop("Linked by hand to “%(name)s”."),
    gettext_noop("Linked by name to the item “%(name)s”."),
    gettext_noop("Asked to create “%(name)s”."),
    gettext_noop("“%(name)s” already existed in QuickBooks; linked to it."),
    gettext_noop("The item “%(name)s” already existed in QuickBooks; linked to it."),
    gettext_noop("Number changed from %(old)s to %(new)s; sending it again."),
    gettext_noop("Asked to reactivate and link the QuickBooks customer."),
    gettext_noop("Asked to retry."),
    gettext_noop("Asked to sync again."),
    gettext_noop("Asked to sync to QuickBooks."),
    gettext_noop("Sync turned off for this account."),
    gettext_noop("Sync turned off for this record."),
    gettext_noop("The account was archived; it is not synced."),
    gettext_noop("The linked QuickBooks customer no longer exists; deciding again."),
    gettext_noop("The QuickBooks customer “%(name)s” is inactive."),
    gettext_noop("Unmatched accounts are now created in QuickBooks; deciding again."),
    gettext_noop(
        "No QuickBooks customer named “%(name)s”. Link this account to an existing customer or "
        "create a new one."
    ),
    gettext_noop(
        "The QuickBooks customer “%(name)s” is inactive. Reactivate and link it, pick another "
        "customer, or create a new one."
    ),
    gettext_noop("Changed in QuickBooks meanwhile; sending the change again on top of the current version."),
    # Drift (sync/drift.py) and its fixes (actions.py).
    gettext_noop(
        "The QuickBooks customer “%(name)s” was made inactive in QuickBooks. Reactivate and link it, "
        "link the account to another customer, or create a new one."
    ),
    gettext_noop(
        "The QuickBooks customer “%(name)s” was deleted in QuickBooks. Reactivate and link it, "
        "link the account to another customer, or create a new one."
    ),
    gettext_noop(
        "The QuickBooks customer “%(name)s” this account was linked to no longer exists. "
        "Link the account to another customer, or create a new one."
    ),
    gettext_noop(
        "In QuickBooks, the customer “%(old)s” was merged into “%(new)s”. Link this account to the "
        "customer it was merged into, link it to another customer, or create a new one."
    ),
    gettext_noop(
        "The QuickBooks customer “%(name)s” was merged into another one that is no longer active. "
        "Link the account to another customer, or create a new one."
    ),
    gettext_noop(
        "Changed in QuickBooks: %(what)s. Push ours again to put the app's version back in "
        "QuickBooks, or accept QuickBooks' version (nothing is sent)."
    ),
    gettext_noop(
        "Voided in QuickBooks. QuickBooks cannot un-void it: Push again creates a new one there (the "
        "voided one stays), or Unsync it to leave QuickBooks as it is."
    ),
    gettext_noop(
        "Deleted in QuickBooks. Push again creates it there anew, or Unsync it to leave QuickBooks as it is."
    ),
    gettext_noop("Asked to push the app's version again over the one changed in QuickBooks."),
    gettext_noop("Kept QuickBooks' version; nothing was sent."),
    gettext_noop("Asked to create it again in QuickBooks."),
    gettext_noop("Asked to create it again in QuickBooks (the voided one, Id %(id)s, stays there)."),
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for msgid in SENTENCES:
        parts = _PLACEHOLDER.split(msgid)
        # split gives [text, name, text, name, ...]
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        out.append((re.compile(f"^{regex}$", re.S), msgid))
    return out


def translate(message: str) -> str:
    """`message` in the active language when it is one of the known sentences, else as stored."""
    if not message:
        return message
    for pattern, msgid in _patterns():
        m = pattern.match(message)
        if m:
            groups = m.groupdict()
            return gettext(msgid) % groups if groups else gettext(msgid)
    return message
