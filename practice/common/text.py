"""Text rules shared by everything that ends up in QuickBooks (account, service, invoice names)."""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

# Unicode's explicit embeddings, overrides and isolates (LRE..RLO, LRI..PDI). Invisible, they
# make a name display in another order than it is stored ("Trojan Source", CVE-2021-42574):
# "Invoice\u202egpj.exe" reads as "Invoiceexe.jpg". Nobody types them on purpose; they come
# from pasted text. QBO stores them as given, so they are refused before they get there.
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))
BIDI_CONTROL_MESSAGE = _(
    "Remove the invisible text-direction character (usually pasted from another document): it "
    "makes the text read differently from what is saved."
)

# Customer.CompanyName holds at most 100 characters (qbo-api.md §2.1; longer is refused with
# 2050), while DisplayName holds 500: the app sends the first 100 and says so first.
QBO_COMPANY_NAME_MAX = 100

_WHITESPACE = re.compile(r"\s+")


def has_bidi_control(text: str) -> bool:
    return not BIDI_CONTROLS.isdisjoint(text)


def qbo_company_name(name: str) -> str:
    """The CompanyName QuickBooks will hold for `name`: white space collapsed, then cut."""
    return _WHITESPACE.sub(" ", name).strip()[:QBO_COMPANY_NAME_MAX]


def qbo_would_cut_company_name(name: str) -> bool:
    return len(_WHITESPACE.sub(" ", name).strip()) > QBO_COMPANY_NAME_MAX
