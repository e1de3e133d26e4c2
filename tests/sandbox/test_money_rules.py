"""Money rules as QuickBooks enforces them (issue 9; qbo_sandbox/money.py; docs/sandbox.md "Money rules")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body, invoice_body


def _line(amount: Any, qty: Any = None, price: Any = None, item: str = "1", **detail: Any) -> dict[str, Any]:
    sales: dict[str, Any] = {"ItemRef": {"value": item}, **detail}
    if qty is not None:
        sales["Qty"] = qty
    if price is not None:
        sales["UnitPrice"] = price
    line: dict[str, Any] = {"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": sales}
    if amount is not None:
        line["Amount"] = amount
    return line


def _invoice(customer_id: str, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"CustomerRef": {"value": customer_id}, "Line": list(lines), **extra}


def _customer(api: Api, name: str = "Money Rules Co") -> str:
    return str(api.create("Customer", customer_body(name))["Id"])


def _pay(
    api: Api, customer_id: str, total: float, *applied: tuple[str, float], **extra: Any
) -> httpx.Response:
    lines = [{"Amount": amt, "LinkedTxn": [{"TxnId": inv, "TxnType": "Invoice"}]} for inv, amt in applied]
    body = {"CustomerRef": {"value": customer_id}, "TotalAmt": total, "Line": lines, **extra}
    return api.post("/payment", body)


# ---------------------------------------------------------------- 1. line arithmetic


def test_line_amount_is_qty_times_unit_price_in_decimal(api: Api) -> None:
    cid = _customer(api)
    # 128.35 × 14.50 = 1861.075 exactly; binary floats make it 1861.0749999… and round down.
    inv = api.create("Invoice", _invoice(cid, _line(1861.08, 128.35, 14.50)))
    assert inv["Line"][0]["Amount"] == 1861.08 and inv["TotalAmt"] == 1861.08
    fault = api.fault(api.post("/invoice", _invoice(cid, _line(1861.07, 128.35, 14.50))))
    assert (fault["code"], fault["element"]) == ("6070", "Line.Amount")
    assert fault["Message"] == "Amount calculation incorrect in the request"
    # 2.675 is 2.67499999… as a binary float; QBO rounds the decimal half up.
    assert api.create("Invoice", _invoice(cid, _line(2.68, 1, 2.675)))["TotalAmt"] == 2.68
    assert api.fault(api.post("/invoice", _invoice(cid, _line(2.67, 1, 2.675))))["code"] == "6070"


def test_line_amount_is_required(api: Api) -> None:
    cid = _customer(api)
    fault = api.fault(api.post("/invoice", _invoice(cid, _line(None, 2, 10))))
    assert (fault["code"], fault["element"]) == ("2020", "Line.Amount")
    assert api.query("select count(*) from Invoice") == {"totalCount": 0}


def test_percent_discount_rounds_half_up(api: Api) -> None:
    cid = _customer(api)
    discount = {
        "DetailType": "DiscountLineDetail",
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 5},
    }
    # 5 % of 20.10 is 1.005: half up gives 1.01 (binary floats give 1.00).
    inv = api.create("Invoice", _invoice(cid, _line(20.10, 1, 20.10), discount))
    assert inv["Line"][-1]["Amount"] == 1.01 and inv["TotalAmt"] == 19.09


# ---------------------------------------------------------------- 2. sales tax


def test_manual_sales_tax_from_the_code_and_line_codes(sample: Api) -> None:
    # sample-us uses sales tax; code 2 is California 8 %, code 3 Tucson 7.1 % + 2 %.
    body = _invoice(
        "1",
        _line(100, 4, 25, item="6", TaxCodeRef={"value": "TAX"}),
        _line(50, 1, 50, item="6", TaxCodeRef={"value": "NON"}),
        TxnTaxDetail={"TxnTaxCodeRef": {"value": "3"}},
    )
    inv = sample.create("Invoice", body)
    tax = inv["TxnTaxDetail"]
    assert tax["TxnTaxCodeRef"]["value"] == "3"
    assert [(t["TaxLineDetail"]["TaxRateRef"]["value"], t["Amount"]) for t in tax["TaxLine"]] == [
        ("1", 7.10),
        ("2", 2.00),
    ]
    assert {t["TaxLineDetail"]["NetAmountTaxable"] for t in tax["TaxLine"]} == {100}
    assert tax["TotalTax"] == 9.10
    assert inv["TotalAmt"] == 159.10 and inv["Balance"] == 159.10


def test_line_without_code_follows_the_items_taxable_flag(sample: Api) -> None:
    items = {i["Id"]: i.get("Taxable") for i in sample.query("select * from Item")["Item"]}
    taxable = next(i for i, t in items.items() if t)
    untaxed = next(i for i, t in items.items() if not t)
    inv = sample.create(
        "Invoice",
        _invoice(
            "1",
            _line(10, item=taxable),
            _line(20, item=untaxed),
            TxnTaxDetail={"TxnTaxCodeRef": {"value": "2"}},
        ),
    )
    codes = [ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in inv["Line"][:2]]
    assert codes == ["TAX", "NON"]
    assert inv["TxnTaxDetail"]["TotalTax"] == 0.80 and inv["TotalAmt"] == 30.80


def test_explicit_total_tax_is_honoured_and_prorated(sample: Api) -> None:
    body = _invoice(
        "1",
        _line(100, item="6", TaxCodeRef={"value": "TAX"}),
        TxnTaxDetail={"TxnTaxCodeRef": {"value": "3"}, "TotalTax": 9.11},
    )
    tax = sample.create("Invoice", body)["TxnTaxDetail"]
    assert tax["TotalTax"] == 9.11
    assert round(sum(t["Amount"] for t in tax["TaxLine"]), 2) == 9.11


def test_line_tax_code_must_be_tax_or_non(sample: Api) -> None:
    body = _invoice("1", _line(100, item="6", TaxCodeRef={"value": "2"}))
    fault = sample.fault(sample.post("/invoice", body))
    assert (fault["code"], fault["element"]) == ("6100", "Line.SalesItemLineDetail.TaxCodeRef")


def test_custom_sales_tax_is_refused_as_txn_tax_code(sample: Api) -> None:
    body = _invoice("1", _line(100, item="6"), TxnTaxDetail={"TxnTaxCodeRef": {"value": "CustomSalesTax"}})
    fault = sample.fault(sample.post("/invoice", body))
    assert (fault["code"], fault["element"]) == ("6230", "TxnTaxDetail.TxnTaxCodeRef")


def test_automated_sales_tax_switched_on_by_a_test(api: Api) -> None:
    cid = _customer(api)
    taxable_item = api.create(
        "Item",
        {
            "Name": "Taxable goods",
            "Type": "NonInventory",
            "Taxable": True,
            "IncomeAccountRef": {"value": "1"},
        },
    )["Id"]
    plain = api.create("Invoice", _invoice(cid, _line(200, item=taxable_item)))
    assert plain["TotalAmt"] == 200 and plain["TxnTaxDetail"] == {"TotalTax": 0}
    prefs = api.server.set_sales_tax(api.realm_id, automated=True, rate=7.25)
    assert prefs["UsingSalesTax"] is True and prefs["PartnerTaxEnabled"] is True
    # AST computes tax whatever the app sends: QBO's total is no longer the app's 200.
    inv = api.create("Invoice", _invoice(cid, _line(200, item=taxable_item)))
    assert inv["TxnTaxDetail"]["TotalTax"] == 14.50
    assert inv["TotalAmt"] == 214.50 and inv["Balance"] == 214.50
    assert api.server.read(api.realm_id, "Customer", cid)["Balance"] == 414.50
    # ... unless the app sends the tax itself.
    told = api.create("Invoice", _invoice(cid, _line(200, item=taxable_item), TxnTaxDetail={"TotalTax": 0}))
    assert told["TotalAmt"] == 200
    api.server.set_sales_tax(api.realm_id, enabled=False, automated=False)
    assert api.create("Invoice", _invoice(cid, _line(200, item=taxable_item)))["TotalAmt"] == 200


def test_sales_tax_control_plane_rejects_bad_fields(sandbox: SandboxServer) -> None:
    realm = sandbox.create_realm()
    for body, field in (
        ({"enabled": "yes"}, "enabled"),
        ({"rate": "lots"}, "rate"),
        ({"rate": 150}, "rate"),
        ({"tax_code": "99"}, "tax_code"),
        ({"colour": "red"}, "colour"),
    ):
        resp = sandbox.client.post(f"/_sandbox/realms/{realm}/sales-tax", json=body)
        assert resp.status_code == 400 and resp.json()["field"] == field, (body, resp.text)
    assert sandbox.client.get(f"/_sandbox/realms/{realm}/sales-tax").json()["UsingSalesTax"] is False


# ---------------------------------------------------------------- 3. balances


def test_over_application_is_checked_across_a_payments_lines(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    fault = api.fault(_pay(api, cid, 120, (inv["Id"], 60), (inv["Id"], 60)))
    assert (fault["code"], fault["element"]) == ("6000", "Line.Amount")
    assert api.read("Invoice", inv["Id"])["Balance"] == 100
    assert api.query("select count(*) from Payment") == {"totalCount": 0}


def test_negative_payment_lines_are_refused(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    assert _pay(api, cid, 100, (inv["Id"], 100)).status_code == 200
    fault = api.fault(_pay(api, cid, 0, (inv["Id"], -50)))
    assert (fault["code"], fault["element"]) == ("6000", "Line.Amount")
    assert api.read("Invoice", inv["Id"])["Balance"] == 0


def test_invoice_deposit_reduces_balance(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0, Deposit=30, DepositToAccountRef={"value": "3"}))
    assert (inv["TotalAmt"], inv["Deposit"], inv["Balance"]) == (100, 30, 70)
    assert api.server.read(api.realm_id, "Customer", cid)["Balance"] == 70
    assert api.fault(_pay(api, cid, 80, (inv["Id"], 80)))["code"] == "6000"
    assert _pay(api, cid, 70, (inv["Id"], 70)).status_code == 200
    assert api.read("Invoice", inv["Id"])["Balance"] == 0
    assert api.fault(api.post("/invoice", invoice_body(cid, 10.0, Deposit=11)))["element"] == "Deposit"
    assert api.fault(api.post("/invoice", invoice_body(cid, 10.0, Deposit=-1)))["element"] == "Deposit"


def test_voided_payment_has_no_lines_and_zero_total(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    pay = _pay(api, cid, 100, (inv["Id"], 100)).json()["Payment"]
    resp = api.post(
        "/payment", {"Id": pay["Id"], "SyncToken": pay["SyncToken"]}, params={"operation": "void"}
    )
    voided = resp.json()["Payment"]
    assert (voided["Line"], voided["TotalAmt"], voided["UnappliedAmt"]) == ([], 0, 0)
    assert api.read("Invoice", inv["Id"])["Balance"] == 100


# ---------------------------------------------------------------- 4. voided means voided


def _void(api: Api, entity: str, obj: dict[str, Any]) -> httpx.Response:
    return api.post(
        f"/{entity.lower()}", {"Id": obj["Id"], "SyncToken": obj["SyncToken"]}, params={"operation": "void"}
    )


def test_voided_invoice_stays_voided(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0, PrivateNote="job 7"))
    voided = _void(api, "Invoice", inv).json()["Invoice"]
    assert voided["PrivateNote"] == "Voided - job 7"
    revive = {
        "Id": inv["Id"],
        "SyncToken": voided["SyncToken"],
        "sparse": True,
        "Line": invoice_body(cid, 100.0)["Line"],
    }
    fault = api.fault(api.post("/invoice", revive))
    assert fault["code"] == "6000"
    again = _void(api, "Invoice", voided)
    assert again.status_code == 200 and again.json()["Invoice"]["PrivateNote"] == "Voided - job 7"
    stored = api.read("Invoice", inv["Id"])
    assert (stored["TotalAmt"], stored["Balance"], stored["PrivateNote"]) == (0, 0, "Voided - job 7")
    assert api.server.read(api.realm_id, "Customer", cid)["Balance"] == 0


def test_customer_of_a_paid_invoice_cannot_change(api: Api) -> None:
    first, second = _customer(api, "First"), _customer(api, "Second")
    inv = api.create("Invoice", invoice_body(first, 100.0))
    assert _pay(api, first, 40, (inv["Id"], 40)).status_code == 200
    current = api.read("Invoice", inv["Id"])
    move = {
        "Id": inv["Id"],
        "SyncToken": current["SyncToken"],
        "sparse": True,
        "CustomerRef": {"value": second},
    }
    fault = api.fault(api.post("/invoice", move))
    assert (fault["code"], fault["element"]) == ("6000", "CustomerRef")
    assert api.read("Invoice", inv["Id"])["CustomerRef"]["value"] == first
    unpaid = api.create("Invoice", invoice_body(first, 10.0))
    moved = api.post("/invoice", dict(move, Id=unpaid["Id"], SyncToken=unpaid["SyncToken"]))
    assert moved.status_code == 200 and moved.json()["Invoice"]["CustomerRef"]["value"] == second


# ---------------------------------------------------------------- 5. account types


def test_payment_deposit_account_must_be_bank_or_other_current_asset(api: Api) -> None:
    cid = _customer(api)
    fault = api.fault(
        api.post(
            "/payment", {"CustomerRef": {"value": cid}, "TotalAmt": 5, "DepositToAccountRef": {"value": "7"}}
        )
    )
    assert (fault["code"], fault["element"]) == ("6000", "DepositToAccountRef")
    for account in ("3", "4"):  # Checking (Bank), Undeposited Funds (Other Current Asset)
        ok = api.post(
            "/payment",
            {"CustomerRef": {"value": cid}, "TotalAmt": 5, "DepositToAccountRef": {"value": account}},
        )
        assert ok.status_code == 200, ok.text


def test_refund_receipt_account_must_be_bank_or_other_current_asset(api: Api) -> None:
    cid = _customer(api)
    body = invoice_body(cid, 25.0, DepositToAccountRef={"value": "1"})
    assert api.fault(api.post("/refundreceipt", body))["element"] == "DepositToAccountRef"


def test_purchase_account_follows_payment_type(sample: Api) -> None:
    def purchase(kind: str, account: str) -> httpx.Response:
        line = {
            "DetailType": "AccountBasedExpenseLineDetail",
            "Amount": 3,
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "8"}},
        }
        return sample.post(
            "/purchase", {"PaymentType": kind, "AccountRef": {"value": account}, "Line": [line]}
        )

    # 35 Checking (Bank), 41 Mastercard (Credit Card)
    assert purchase("Cash", "35").status_code == 200 and purchase("Check", "35").status_code == 200
    assert purchase("CreditCard", "41").status_code == 200
    for kind, account in (("Cash", "41"), ("Check", "8"), ("CreditCard", "35")):
        fault = sample.fault(purchase(kind, account))
        assert (fault["code"], fault["element"]) == ("6000", "AccountRef"), kind


def test_item_income_account_must_be_income(api: Api) -> None:
    body = {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "7"}}
    assert api.fault(api.post("/item", body))["element"] == "IncomeAccountRef"
    assert api.create("Item", dict(body, IncomeAccountRef={"value": "1"}))["IncomeAccountRef"]["value"] == "1"


# ---------------------------------------------------------------- 6. refunds and expenses


def test_negative_refund_and_purchase_totals_are_refused(api: Api) -> None:
    cid = _customer(api)
    refund = invoice_body(cid, -25.0, DepositToAccountRef={"value": "3"}, PaymentRefNum="r1")
    assert api.fault(api.post("/refundreceipt", refund))["element"] == "TotalAmt"
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": -3,
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}},
    }
    fault = api.fault(
        api.post("/purchase", {"PaymentType": "Cash", "AccountRef": {"value": "3"}, "Line": [line]})
    )
    assert (fault["code"], fault["element"]) == ("6000", "TotalAmt")
    assert api.query("select count(*) from RefundReceipt") == {"totalCount": 0}


def test_printed_bank_refund_needs_a_reference_number(api: Api) -> None:
    cid = _customer(api)
    body = invoice_body(cid, 25.0, DepositToAccountRef={"value": "3"}, PrintStatus="PrintComplete")
    fault = api.fault(api.post("/refundreceipt", body))
    assert (fault["code"], fault["element"]) == ("2020", "PaymentRefNum")
    assert api.create("RefundReceipt", dict(body, PaymentRefNum="1042"))["PaymentRefNum"] == "1042"
    # From Undeposited Funds (not a bank account), or not printed yet: no number needed.
    assert api.create("RefundReceipt", dict(body, DepositToAccountRef={"value": "4"}))["TotalAmt"] == 25
    assert api.create("RefundReceipt", dict(body, PrintStatus="NeedToPrint"))["TotalAmt"] == 25


# ---------------------------------------------------------------- 7. not stricter than QBO


def test_long_payment_reference_passes(api: Api) -> None:
    cid = _customer(api)
    charge = "ch_3PqRsTuVwXyZ0123456789ab"
    assert len(charge) > 21
    pay = api.create("Payment", {"CustomerRef": {"value": cid}, "TotalAmt": 5, "PaymentRefNum": charge})
    assert pay["PaymentRefNum"] == charge


def test_allow_duplicate_docnumber_in_the_url(api: Api) -> None:
    cid = _customer(api)
    api.create("Invoice", invoice_body(cid, DocNumber="D-1"))
    assert api.fault(api.post("/invoice", invoice_body(cid, DocNumber="D-1")))["code"] == "6140"
    dup = api.create("Invoice", invoice_body(cid, DocNumber="D-1"), include="allowduplicatedocnumber")
    assert dup["DocNumber"] == "D-1"


@pytest.mark.parametrize("sent", ["2026-03-04T10:15:00-08:00", "2026-03-04T23:59:59Z", "2026-03-04T00:00:00"])
def test_txn_date_sent_as_datetime_is_stored_as_date(api: Api, sent: str) -> None:
    cid = _customer(api, "Dated")
    assert api.create("Invoice", invoice_body(cid, TxnDate=sent))["TxnDate"] == "2026-03-04"
    assert (
        api.fault(api.post("/invoice", invoice_body(cid, TxnDate="2026-03-04Tnoon")))["element"] == "TxnDate"
    )


def test_tax_is_recomputed_when_lines_change_by_sparse_update(sample: Api) -> None:
    body = _invoice(
        "1", _line(100, item="6", TaxCodeRef={"value": "TAX"}), TxnTaxDetail={"TxnTaxCodeRef": {"value": "2"}}
    )
    inv = sample.create("Invoice", body)
    assert (inv["TxnTaxDetail"]["TotalTax"], inv["TotalAmt"]) == (8, 108)
    lines = [_line(250, item="6", TaxCodeRef={"value": "TAX"})]
    sparse = {"Id": inv["Id"], "SyncToken": inv["SyncToken"], "sparse": True, "Line": lines}
    updated = sample.post("/invoice", sparse).json()["Invoice"]
    assert (updated["TxnTaxDetail"]["TotalTax"], updated["TotalAmt"], updated["Balance"]) == (20, 270, 270)
    # Echoing the stored detail back in a full update recomputes too; a changed TotalTax overrides.
    full = dict(updated, Line=[_line(50, item="6", TaxCodeRef={"value": "TAX"})])
    again = sample.post("/invoice", full).json()["Invoice"]
    assert (again["TxnTaxDetail"]["TotalTax"], again["TotalAmt"]) == (4, 54)
    override = dict(again, TxnTaxDetail={"TxnTaxCodeRef": {"value": "2"}, "TotalTax": 5})
    assert sample.post("/invoice", override).json()["Invoice"]["TotalAmt"] == 55
