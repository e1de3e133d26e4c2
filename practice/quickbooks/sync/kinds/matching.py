"""Matching app account names to QBO customers (product.md §3.1). Pure: no Django, no HTTP.

The realm's customers, vendors and employees are kept between runs (`RealmName`, kinds/names.py;
docs/name-index.md): a run builds a `NameIndex` from the rows its accounts' names could match and
decides every account locally, so deciding costs no query per account and no read of the lists.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from practice.common.text import BIDI_CONTROL_MESSAGE, has_bidi_control

# QBO refuses these in DisplayName (qbo-api.md §2.1) and caps it at 500 characters.
FORBIDDEN_CHARS = {":": "a colon (:)", "\t": "a tab", "\n": "a line break", "\r": "a line break"}
MAX_DISPLAY_NAME = 500

# Legal-form suffixes that do not make two names different people ("Barnett Design LLC" is
# "Barnett Design"). Compared after punctuation is gone ("L.L.C." arrives as "llc").
_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "co",
    "corp",
    "corporation",
    "company",
    "plc",
    "llp",
    "lp",
    "pc",
    "pllc",
    "gmbh",
    "sa",
    "sl",
}
_WS = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize(name: str) -> str:
    """The exact-match key: trimmed, inner white space collapsed, case-insensitive."""
    return _WS.sub(" ", name).strip().casefold()


def clean_display_name(name: str) -> str:
    """The name as we send it to QBO: trimmed, inner white space collapsed."""
    return _WS.sub(" ", name).strip()


def loose_key(name: str) -> str:
    """The near-match key: accents, punctuation, "&"/"and" and legal suffixes ignored.

    "Pye's Cakes" ~ "Pyes Cakes", "Fruit & Vegi" ~ "Fruit and Vegi", "Rodríguez" ~ "Rodriguez",
    "Barnett Design LLC" ~ "Barnett Design, Inc.".
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ")
    # Apostrophes and dots join letters ("pye's" -> "pyes", "L.L.C." -> "llc") rather than split.
    text = re.sub(r"['’`.]", "", text)
    words = _NON_ALNUM.sub(" ", text).split()
    words = [w for w in words if w != "and"]
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return "".join(words)


def name_problem(name: str) -> str | None:
    """Why QBO would refuse `name` as a DisplayName, in words, or None if it is acceptable."""
    cleaned = clean_display_name(name)
    if "\x00" in name:
        # PostgreSQL text cannot hold NUL (stack-notes G11): refused here, not a 500 later.
        return "Remove the invalid control character from the name."
    if has_bidi_control(name):
        return str(BIDI_CONTROL_MESSAGE)
    if not cleaned:
        return "The account has no name. Give it a name, then sync again."
    for ch, words in FORBIDDEN_CHARS.items():
        if ch in name.strip():
            return (
                f"QuickBooks does not allow {words} in customer names. "
                "Rename the account without it, then sync again."
            )
    if len(cleaned) > MAX_DISPLAY_NAME:
        return (
            f"QuickBooks customer names can be at most {MAX_DISPLAY_NAME} characters; this one has "
            f"{len(cleaned)}. Shorten the account name, then sync again."
        )
    return None


@dataclass(frozen=True)
class QBOName:
    """A name in the QBO company: a customer, vendor or employee."""

    id: str
    name: str
    entity: str = "Customer"
    active: bool = True
    company: str = ""
    email: str = ""
    sync_token: str = ""

    def as_candidate(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "active": self.active, "entity": self.entity}


def customer_from_qbo(body: dict[str, object]) -> QBOName:
    email = body.get("PrimaryEmailAddr")
    return QBOName(
        id=str(body.get("Id", "")),
        name=str(body.get("DisplayName", "")),
        entity="Customer",
        active=bool(body.get("Active", True)),
        company=str(body.get("CompanyName", "") or ""),
        email=str(email.get("Address", "")) if isinstance(email, dict) else "",
        sync_token=str(body.get("SyncToken", "")),
    )


@dataclass
class NameIndex:
    """The realm's names, keyed for exact and near matching."""

    exact: dict[str, list[QBOName]] = field(default_factory=lambda: defaultdict(list))
    loose: dict[str, list[QBOName]] = field(default_factory=lambda: defaultdict(list))
    others: dict[str, list[QBOName]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def build(cls, customers: Iterable[QBOName], others: Iterable[QBOName] = ()) -> NameIndex:
        index = cls()
        for c in customers:
            index.add_customer(c)
        for o in others:
            index.others[normalize(o.name)].append(o)
        return index

    def add_customer(self, c: QBOName) -> None:
        self.exact[normalize(c.name)].append(c)
        key = loose_key(c.name)
        if key:
            self.loose[key].append(c)


class Decision(StrEnum):
    LINK = "link"
    CREATE = "create"
    NO_MATCH = "no_match"  # "ask me": a person links or creates
    NEAR_MATCH = "near_match"
    INACTIVE_MATCH = "inactive_match"
    AMBIGUOUS = "ambiguous"
    VENDOR_CLASH = "vendor_clash"
    EMPLOYEE_CLASH = "employee_clash"
    INVALID_NAME = "invalid_name"
    LINKED_ELSEWHERE = "linked_elsewhere"


@dataclass(frozen=True)
class MatchResult:
    decision: Decision
    customer: QBOName | None = None
    candidates: tuple[QBOName, ...] = ()
    message: str = ""


def _names(items: Iterable[QBOName]) -> str:
    return ", ".join(f"“{c.name}”" for c in items)


def decide(
    name: str,
    index: NameIndex,
    *,
    create_when_missing: bool = True,
    taken_ids: frozenset[str] | set[str] = frozenset(),
) -> MatchResult:
    """What to do with an account called `name` (product.md §3.1), with a message for Error.

    `taken_ids`: QBO customers already linked to another account of the firm; an exact match on
    one of them is not linked a second time (two accounts would post to one customer).
    """
    problem = name_problem(name)
    if problem:
        return MatchResult(Decision.INVALID_NAME, message=problem)
    shown = clean_display_name(name)
    exact = index.exact.get(normalize(name), [])
    active = [c for c in exact if c.active]
    if len(active) == 1:
        if active[0].id in taken_ids:
            return MatchResult(
                Decision.LINKED_ELSEWHERE,
                candidates=(active[0],),
                message=(
                    f"The QuickBooks customer “{active[0].name}” is already linked to another "
                    "account. Link this account to a different customer or create a new one."
                ),
            )
        return MatchResult(Decision.LINK, customer=active[0])
    if len(active) > 1:
        return MatchResult(
            Decision.AMBIGUOUS,
            candidates=tuple(active),
            message=(
                f"Several QuickBooks customers are named “{shown}”: {_names(active)}. "
                "Choose the right one with “Sync account with QuickBooks”."
            ),
        )
    if exact:  # only inactive ones
        return MatchResult(
            Decision.INACTIVE_MATCH,
            customer=exact[0],
            candidates=tuple(exact),
            message=(
                f"The QuickBooks customer “{exact[0].name}” is inactive. Reactivate and link it, "
                "pick another customer, or create a new one."
            ),
        )
    for other in index.others.get(normalize(name), []):
        decision = Decision.EMPLOYEE_CLASH if other.entity == "Employee" else Decision.VENDOR_CLASH
        what = "an employee" if other.entity == "Employee" else "a vendor"
        return MatchResult(
            decision,
            candidates=(other,),
            message=(
                f"“{other.name}” is already {what} in QuickBooks, and QuickBooks does not allow a "
                "customer with the same name. Link this account to an existing customer, or "
                "create the customer under a different name (for example “"
                f"{shown} (client)”)."
            ),
        )
    near = index.loose.get(loose_key(name), [])
    if near:
        return MatchResult(
            Decision.NEAR_MATCH,
            candidates=tuple(near),
            message=(
                f"No QuickBooks customer is named exactly “{shown}”, but similar ones exist: "
                f"{_names(near)}. Link the right one, or create a new customer if none is this client."
            ),
        )
    if not create_when_missing:
        return MatchResult(
            Decision.NO_MATCH,
            message=(
                f"No QuickBooks customer named “{shown}”. Link this account to an existing "
                "customer or create a new one."
            ),
        )
    return MatchResult(Decision.CREATE)
