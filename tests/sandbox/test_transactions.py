"""qbo-api.md §2.5–2.9 and checklist §11.3: sales forms, payments, expenses, delete and void."""

from __future__ import annotations

from .conftest import Api, customer_body, invoice_body


def _customer(api: Api, name: str = "Amy's Bird Sanctuary") -> str:
    return api.create("Customer", customer_body(name))["Id"]


def test_invoice_totals_subtotal_line_and_defaults(api: Api) -> None:
    cid = _customer(api)
    body = invoice_body(cid, 100.0, TxnDate="2026-01-10", TotalAmt=5, Balance=7)
    body["Line"].append(
        {
            "DetailType": "SalesItemLineDetail",
            "Amount": 37.5,  # required (REF-invoice); QBO does not fill it from Qty × UnitPrice
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 3, "UnitPrice": 12.5},
        }
    )
    inv = api.create("Invoice", body)
    assert inv["TotalAmt"] == 137.5 and inv["Balance"] == 137.5
    lines = inv["Line"]
    assert [ln["Id"] for ln in lines[:2]] == ["1", "2"] and lines[1]["Amount"] == 37.5
    assert lines[-1] == {"Amount": 137.5, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert inv["CustomerRef"] == {"value": cid, "name": "Amy's Bird Sanctuary"}
    assert inv["DueDate"] == "2026-02-09"  # default terms Net 30
    assert inv["LinkedTxn"] == [] and inv["CurrencyRef"]["value"] == "USD"
    assert inv["DocNumber"] == "1001"
    assert api.create("Invoice", invoice_body(cid))["DocNumber"] == "1002"


def test_invoice_requires_line_and_customer(api: Api) -> None:
    cid = _customer(api)
    assert api.fault(api.post("/invoice", {"CustomerRef": {"value": cid}}))["element"] == "Line"
    body = invoice_body(cid)
    del body["CustomerRef"]
    assert api.fault(api.post("/invoice", body))["element"] == "CustomerRef"


def test_empty_sales_item_line_detail_is_2020(api: Api) -> None:
    cid = _customer(api)
    body = {
        "CustomerRef": {"value": cid},
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {}}],
    }
    err = api.fault(api.post("/invoice", body))
    assert err["code"] == "2020" and err["element"] == "Line.SalesItemLineDetail"
    assert err["Detail"] == "Required parameter Line.SalesItemLineDetail is missing in the request"


def test_invoice_references_are_checked(api: Api) -> None:
    cid = _customer(api)
    err = api.fault(api.post("/invoice", invoice_body("5555")))
    assert err["code"] == "2500" and err["element"] == "CustomerRef"
    err = api.fault(api.post("/invoice", invoice_body(cid, item_id="777")))
    assert err["code"] == "2500" and err["element"] == "Line.SalesItemLineDetail.ItemRef"
    api.create("Customer", {"Id": cid, "SyncToken": "0", "sparse": True, "Active": False})
    assert api.fault(api.post("/invoice", invoice_body(cid)))["code"] == "2500"


def test_docnumber_rules(api: Api) -> None:
    cid = _customer(api)
    api.create("Invoice", invoice_body(cid, DocNumber="INV-7"))
    err = api.fault(api.post("/invoice", invoice_body(cid, DocNumber="INV-7")))
    assert err["code"] == "6140" and "DocNumber=INV-7" in err["Detail"]
    dup = api.create("Invoice", invoice_body(cid, DocNumber="INV-7"), include="allowduplicatedocnum")
    assert dup["DocNumber"] == "INV-7"
    err = api.fault(api.post("/invoice", invoice_body(cid, DocNumber="X" * 22)))
    assert err["code"] == "2050" and err["element"] == "DocNumber"
    # The same number on another transaction type is fine.
    api.create("CreditMemo", invoice_body(cid, DocNumber="INV-7"))


def test_private_note_and_memo_lengths(api: Api) -> None:
    cid = _customer(api)
    assert (
        api.fault(api.post("/invoice", invoice_body(cid, PrivateNote="n" * 4001)))["element"] == "PrivateNote"
    )
    err = api.fault(api.post("/invoice", invoice_body(cid, CustomerMemo={"value": "m" * 1001})))
    assert err["element"] == "CustomerMemo.value"


def test_discount_and_tax_lines(api: Api) -> None:
    cid = _customer(api)
    body = invoice_body(cid, 200.0, TxnTaxDetail={"TotalTax": 8})
    body["Line"].append(
        {
            "DetailType": "DiscountLineDetail",
            "Amount": 0,
            "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
        }
    )
    inv = api.create("Invoice", body)
    # Tax is ignored when the company does not use sales tax (empty seed): 200 - 20.
    assert inv["TotalAmt"] == 180.0 and inv["TxnTaxDetail"]["TotalTax"] == 0


def test_sparse_update_of_lines(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 50.0))
    line = dict(inv["Line"][0], Amount=60.0)
    line["SalesItemLineDetail"] = dict(line["SalesItemLineDetail"], UnitPrice=60.0)
    new_line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 5,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    upd = api.create("Invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "Line": [line, new_line]})
    assert upd["TotalAmt"] == 65.0 and upd["Balance"] == 65.0
    assert [ln.get("Id") for ln in upd["Line"][:2]] == ["1", "2"]
    only = api.create("Invoice", {"Id": inv["Id"], "SyncToken": "1", "sparse": True, "Line": [new_line]})
    assert only["TotalAmt"] == 5.0 and len(only["Line"]) == 2


def test_payment_applies_to_invoice_and_customer_balance(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    assert api.read("Customer", cid)["Balance"] == 100.0
    pay = api.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": 130.0,
            "PaymentRefNum": "ch_1",
            "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert pay["UnappliedAmt"] == 30.0 and pay["ProcessPayment"] is False
    assert pay["DepositToAccountRef"]["value"] == "4"  # Undeposited Funds
    after = api.read("Invoice", inv["Id"])
    assert after["Balance"] == 0 and after["SyncToken"] == "1"
    assert {"TxnId": pay["Id"], "TxnType": "Payment"} in after["LinkedTxn"]
    assert api.read("Customer", cid)["Balance"] == -30.0


def test_partial_payment_then_delete_payment_restores_balance(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    pay = api.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": 40.0,
            "Line": [{"Amount": 40.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert api.read("Invoice", inv["Id"])["Balance"] == 60.0
    resp = api.post("/payment", {"Id": pay["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert resp.json()["Payment"] == {"status": "Deleted", "domain": "QBO", "Id": pay["Id"]}
    restored = api.read("Invoice", inv["Id"])
    assert restored["Balance"] == 100.0 and restored["LinkedTxn"] == []
    assert api.read("Customer", cid)["Balance"] == 100.0


def test_payment_over_application_is_rejected(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    link = [{"TxnId": inv["Id"], "TxnType": "Invoice"}]
    err = api.fault(
        api.post(
            "/payment",
            {
                "CustomerRef": {"value": cid},
                "TotalAmt": 150.0,
                "Line": [{"Amount": 150.0, "LinkedTxn": link}],
            },
        )
    )
    assert err["code"] == "6000"
    err = api.fault(
        api.post(
            "/payment",
            {"CustomerRef": {"value": cid}, "TotalAmt": 50.0, "Line": [{"Amount": 80.0, "LinkedTxn": link}]},
        )
    )
    assert err["code"] == "6000"
    other = _customer(api, "Someone Else")
    err = api.fault(
        api.post(
            "/payment",
            {
                "CustomerRef": {"value": other},
                "TotalAmt": 10.0,
                "Line": [{"Amount": 10.0, "LinkedTxn": link}],
            },
        )
    )
    assert err["code"] == "6000"
    assert api.fault(api.post("/payment", {"CustomerRef": {"value": cid}}))["element"] == "TotalAmt"


def test_payment_void_unlinks_and_zeroes(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    pay = api.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": 100.0,
            "PrivateNote": "stripe",
            "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    resp = api.post(
        "/payment",
        {"Id": pay["Id"], "SyncToken": "0", "sparse": True},
        params={"operation": "update", "include": "void"},
    )
    voided = resp.json()["Payment"]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"].startswith("Voided")
    assert api.read("Invoice", inv["Id"])["Balance"] == 100.0
    assert api.read("Payment", pay["Id"])["TotalAmt"] == 0


def test_invoice_void_keeps_record_with_zero_amounts(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0, PrivateNote="sync:abc"))
    resp = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "void"})
    voided = resp.json()["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert voided["PrivateNote"] == "Voided - sync:abc"
    assert voided["Line"][0]["Amount"] == 0
    assert api.read("Invoice", inv["Id"])["SyncToken"] == "1"
    assert api.read("Customer", cid)["Balance"] == 0


def test_invoice_delete_is_hard_and_reads_610(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid))
    stale = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "5"}, params={"operation": "delete"})
    assert api.fault(stale)["code"] == "5010"
    resp = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert resp.status_code == 200
    assert resp.json()["Invoice"]["status"] == "Deleted"
    err = api.fault(api.get(f"/invoice/{inv['Id']}"))
    assert err["code"] == "610" and "deleted" in err["Detail"]
    again = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert api.fault(again)["code"] == "610"
    assert api.read("Customer", cid)["Balance"] == 0


def test_invoice_with_payment_cannot_be_deleted(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid))
    api.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": 10,
            "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    resp = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "1"}, params={"operation": "delete"})
    assert api.fault(resp)["code"] == "6000"


def test_credit_memo_applied_through_payment(api: Api) -> None:
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    cm = api.create("CreditMemo", invoice_body(cid, 30.0))
    assert cm["RemainingCredit"] == 30.0 and cm["Balance"] == 30.0
    assert api.read("Customer", cid)["Balance"] == 70.0
    pay = api.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": 0,
            "Line": [
                {"Amount": 30.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                {"Amount": 30.0, "LinkedTxn": [{"TxnId": cm["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    assert pay["UnappliedAmt"] == 0
    assert api.read("Invoice", inv["Id"])["Balance"] == 70.0
    assert api.read("CreditMemo", cm["Id"])["RemainingCredit"] == 0
    assert api.read("Customer", cid)["Balance"] == 70.0


def test_refund_receipt_requires_deposit_account(api: Api) -> None:
    cid = _customer(api)
    body = invoice_body(cid, 25.0)
    assert api.fault(api.post("/refundreceipt", body))["element"] == "DepositToAccountRef"
    refund = api.create("RefundReceipt", dict(body, DepositToAccountRef={"value": "3"}, PaymentRefNum="re_1"))
    assert refund["TotalAmt"] == 25.0 and refund["DepositToAccountRef"]["name"] == "Checking"
    resp = api.post("/refundreceipt", {"Id": refund["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert resp.json()["RefundReceipt"]["status"] == "Deleted"


def test_purchase_expense(api: Api) -> None:
    body = {
        "PaymentType": "Cash",
        "AccountRef": {"value": "3"},
        "TxnDate": "2026-03-01",
        "PrivateNote": "Stripe fees",
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": 2.95,
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}},
            }
        ],
    }
    purchase = api.create("Purchase", body)
    assert purchase["TotalAmt"] == 2.95 and purchase["AccountRef"]["name"] == "Checking"
    assert api.fault(api.post("/purchase", dict(body, PaymentType="Barter")))["code"] == "2170"
    no_acct = dict(
        body,
        Line=[
            {"DetailType": "AccountBasedExpenseLineDetail", "Amount": 1, "AccountBasedExpenseLineDetail": {}}
        ],
    )
    assert api.fault(api.post("/purchase", no_acct))["code"] == "2020"
    missing = {k: v for k, v in body.items() if k != "PaymentType"}
    assert api.fault(api.post("/purchase", missing))["element"] == "PaymentType"
    vendor = api.create("Vendor", {"DisplayName": "Stripe"})
    with_entity = api.create("Purchase", dict(body, EntityRef={"value": vendor["Id"]}))
    assert with_entity["EntityRef"]["type"] == "Vendor"


def test_transaction_ids_share_one_sequence(api: Api) -> None:
    cid = _customer(api)
    a = api.create("Invoice", invoice_body(cid))
    b = api.create("Payment", {"CustomerRef": {"value": cid}, "TotalAmt": 1})
    assert int(b["Id"]) == int(a["Id"]) + 1


def test_overapplied_payment_can_be_left_unapplied(api: Api, limits) -> None:
    limits(reject_overapplied_payments=False)
    cid = _customer(api)
    inv = api.create("Invoice", invoice_body(cid, 100.0))
    link = [{"TxnId": inv["Id"], "TxnType": "Invoice"}]
    pay = api.create(
        "Payment",
        {"CustomerRef": {"value": cid}, "TotalAmt": 150.0, "Line": [{"Amount": 150.0, "LinkedTxn": link}]},
    )
    assert pay["Line"][0]["Amount"] == 100.0 and pay["UnappliedAmt"] == 50.0
    assert api.read("Invoice", inv["Id"])["Balance"] == 0
