"""The Payment mapper (pure): body shape, the reference cut to QBO's 21 characters, the marker
that `find_existing` relies on, and the unapplied amount a body implies."""

from __future__ import annotations

import datetime
from decimal import Decimal

from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds.payments import resolves_on
from practice.quickbooks.sync.mappers.payment import (
    AppliedLine,
    PaymentFacts,
    carries_marker,
    content_of,
    cut_reference_note,
    payment_body,
    unapplied_in,
)


def facts(**kw) -> PaymentFacts:
    base = {
        "payment_id": 12,
        "customer_ref": {"value": "58", "name": "Acme"},
        "total": Decimal("450.00"),
        "txn_date": datetime.date(2026, 11, 2),
        "reference": "CHK-1001",
        "lines": [AppliedLine(Decimal("150.00"), "131"), AppliedLine(Decimal("100.10"), "130")],
        "deposit_account_id": "4",
        "payment_method_id": "2",
    }
    base.update(kw)
    return PaymentFacts(**base)


def test_the_body_carries_every_field_and_one_line_per_invoice_paid():
    assert payment_body(facts()) == {
        "CustomerRef": {"value": "58"},
        "TotalAmt": 450.0,
        "TxnDate": "2026-11-02",
        "PaymentRefNum": "CHK-1001",
        "PrivateNote": "Practice payment #12",
        "DepositToAccountRef": {"value": "4"},
        "PaymentMethodRef": {"value": "2"},
        "Line": [
            {"Amount": 100.1, "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
            {"Amount": 150.0, "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]},
        ],
    }


def test_optional_references_are_left_out_and_the_remainder_is_not_sent():
    body = payment_body(facts(reference="", deposit_account_id="", payment_method_id="", lines=[]))
    assert set(body) == {"CustomerRef", "TotalAmt", "TxnDate", "PrivateNote", "Line"}
    assert body["Line"] == []
    assert unapplied_in(body) == Decimal("450.00")
    assert unapplied_in(payment_body(facts())) == Decimal("199.90")


def test_a_reference_longer_than_21_is_cut_and_kept_whole_in_the_memo():
    long_ref = "stripe_ch_3PqXYZabcdefghijklmnop"
    body = payment_body(facts(reference=long_ref))
    assert body["PaymentRefNum"] == long_ref[:21]
    assert body["PrivateNote"] == f"Practice payment #12 (reference: {long_ref})"
    assert long_ref in cut_reference_note(body)
    assert cut_reference_note(payment_body(facts(reference="x" * 21))) == ""


def test_the_marker_names_one_payment_only():
    assert carries_marker("Practice payment #12", 12)
    assert carries_marker("Voided Practice payment #12 (reference: x)", 12)
    assert not carries_marker("Practice payment #123", 12)
    assert not carries_marker("Practice payment #1", 12)
    assert not carries_marker(None, 12)


def test_create_and_update_bodies_with_the_same_content_hash_the_same():
    body = payment_body(facts())
    update = {**body, "Id": "77", "SyncToken": "3", "sparse": True}
    assert engine.hash_body(content_of(update)) == engine.hash_body(content_of(body))


def test_manual_payments_resolve_their_switch_against_the_connection():
    class Conn:
        sync_manual_payments = False

    conn = Conn()
    assert resolves_on(conn, created_manually=False, sync_to_quickbooks=False)  # type: ignore[arg-type]
    assert not resolves_on(conn, created_manually=True, sync_to_quickbooks=None)  # type: ignore[arg-type]
    assert resolves_on(conn, created_manually=True, sync_to_quickbooks=True)  # type: ignore[arg-type]
    conn.sync_manual_payments = True
    assert resolves_on(conn, created_manually=True, sync_to_quickbooks=None)  # type: ignore[arg-type]
    assert not resolves_on(conn, created_manually=True, sync_to_quickbooks=False)  # type: ignore[arg-type]
