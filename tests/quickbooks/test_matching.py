"""Matching rules of product.md §3.1, decided locally from the realm's names (no HTTP)."""

from __future__ import annotations

import pytest

from practice.quickbooks.sync.kinds.matching import (
    Decision,
    NameIndex,
    QBOName,
    decide,
    loose_key,
    name_problem,
    normalize,
)


def index(*customers: QBOName, others: tuple[QBOName, ...] = ()) -> NameIndex:
    return NameIndex.build(customers, others)


def c(id_: str, name: str, active: bool = True) -> QBOName:
    return QBOName(id=id_, name=name, active=active)


def test_normalize_trims_collapses_and_ignores_case():
    assert normalize("  Amy's   Bird\tSanctuary ") == "amy's bird sanctuary"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Pyes Cakes", "Pye's Cakes"),
        ("Rondonuwu Fruit & Vegi", "Rondonuwu Fruit and Vegi"),
        ("Diego Rodríguez", "Diego Rodriguez"),
        ("Barnett Design LLC", "Barnett Design"),
        ("Barnett Design, Inc.", "Barnett Design L.L.C."),
        ("Smith-Jones Co.", "Smith Jones"),
    ],
)
def test_loose_key_equates_near_names(a, b):
    assert loose_key(a) == loose_key(b)


@pytest.mark.parametrize(("a", "b"), [("Pye Cakes", "Pyes Cakes"), ("Bill's Windsurf", "Bills Wind Surfers")])
def test_loose_key_keeps_different_names_apart(a, b):
    assert loose_key(a) != loose_key(b)


def test_one_active_exact_match_links_despite_case_and_spacing():
    r = decide("  amy's   BIRD sanctuary ", index(c("1", "Amy's Bird Sanctuary")))
    assert r.decision == Decision.LINK and r.customer and r.customer.id == "1"


def test_no_match_creates_or_asks():
    assert decide("New Client", index()).decision == Decision.CREATE
    r = decide("New Client", index(), create_when_missing=False)
    assert r.decision == Decision.NO_MATCH
    assert "No QuickBooks customer named “New Client”" in r.message


def test_near_match_never_creates_and_lists_candidates():
    r = decide("Pyes Cakes", index(c("7", "Pye's Cakes")))
    assert r.decision == Decision.NEAR_MATCH
    assert [x.id for x in r.candidates] == ["7"]
    assert "Pye's Cakes" in r.message


def test_inactive_exact_match_is_an_error_with_reactivate():
    r = decide("Harbor Dental Group", index(c("9", "Harbor Dental Group", active=False)))
    assert r.decision == Decision.INACTIVE_MATCH
    assert "Reactivate and link" in r.message
    assert r.candidates[0].as_candidate()["active"] is False


def test_active_match_wins_over_inactive_namesake():
    r = decide("Acme", index(c("1", "Acme", active=False), c("2", "ACME")))
    assert r.decision == Decision.LINK and r.customer and r.customer.id == "2"


def test_two_active_exact_matches_are_ambiguous():
    r = decide("Acme", index(c("1", "Acme"), c("2", "acme ")))
    assert r.decision == Decision.AMBIGUOUS and len(r.candidates) == 2


@pytest.mark.parametrize(
    ("entity", "decision"), [("Vendor", Decision.VENDOR_CLASH), ("Employee", Decision.EMPLOYEE_CLASH)]
)
def test_vendor_or_employee_name_clash(entity, decision):
    other = QBOName(id="3", name="Books by Bessie", entity=entity)
    r = decide("books by bessie", index(others=(other,)))
    assert r.decision == decision
    assert ("vendor" if entity == "Vendor" else "employee") in r.message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Smith: Tax Client", "colon"),
        ("Tab\there", "tab"),
        ("Line\nbreak", "line break"),
        ("x" * 501, "at most 500"),
        ("   ", "no name"),
    ],
)
def test_names_qbo_rejects(name, words):
    assert words in (name_problem(name) or "")
    assert decide(name, index()).decision == Decision.INVALID_NAME


def test_customer_linked_to_another_account_is_not_linked_twice():
    r = decide("Acme", index(c("1", "Acme")), taken_ids={"1"})
    assert r.decision == Decision.LINKED_ELSEWHERE
