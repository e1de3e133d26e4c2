"""The demo's account-sync story: what the sandbox company and the demo firm need so that the
50 demo accounts (`practice.billing.demo.DEMO_ACCOUNT_NAMES`) produce a realistic mix once the
owner connects and confirms the setup:

- synced by name ("Amy's Bird Sanctuary"), despite case/spacing ("KOOKIES BY KATHY",
  "  Rago  Travel agency"), and created ("Alvarez Family Trust", ...);
- near-match errors: "Pyes Cakes" ~ "Pye's Cakes", "Rondonuwu Fruit & Vegi" ~ "... and Vegi",
  "Diego Rodríguez" ~ "Diego Rodriguez", "Barnett Design LLC" ~ "Barnett Design" (all in the
  sample company already);
- vendor clashes ("Books by Bessie", "Hicks Hardware") and an employee clash ("Emily Platt")
  (sample company);
- inactive matches: "Sonnenschein Family Store" is made inactive here, "Harbor Dental Group" is
  added inactive;
- a refused name ("Smith: Tax Client");
- skipped: "Wedding Planning by Whitney" is marked "Do not sync" for the demo firm.

And the billing story (issue 10): the company numbers its own sales forms (custom transaction
numbers on) and has the class and location the demo invoices use, so every issued invoice of a
Synced account arrives; one deliberate problem: an invoice already holding the number of the
first invoice of `DOCNUMBER_CLASH_ACCOUNT` ("Bill's Windsurf Shop", INV-0002), under another
customer ("Dylan Sollfrank") and for another total. The app's invoice becomes an Error
("docnumber_clash": change the number) and its partial payment waits for it.

`seed_demo_company(realm_id)` is called by `local_sandbox.prepare()` (make demo) right after the
demo company is created; it talks to the sandbox's control plane and API over HTTP and is
idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from django.conf import settings

log = logging.getLogger("practice.quickbooks.demo")

MAKE_INACTIVE = ("Sonnenschein Family Store",)
ADD_INACTIVE = ("Harbor Dental Group",)
SKIPPED = ("Wedding Planning by Whitney",)
# The customer of the sandbox invoice that already uses the demo invoice's number (sample-us).
CLASH_CUSTOMER = "Dylan Sollfrank"
CLASH_ITEM = "Services"
CLASH_NOTE = "Demo: an invoice typed in QuickBooks with a number the app also uses"


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def seed_demo_company(realm_id: str, sandbox_url: str | None = None) -> None:
    base = (sandbox_url or settings.QBO_SANDBOX_URL).rstrip("/")
    with httpx.Client(base_url=base, timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        token = http.post("/_sandbox/tokens", json={"realm_id": realm_id})
        token.raise_for_status()
        api = f"/v3/company/{realm_id}"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Accept": "application/json"}

        def find(name: str) -> dict[str, Any] | None:
            statement = f"SELECT * FROM Customer WHERE DisplayName = {_q(name)} AND Active IN (true, false)"  # noqa: S608
            resp = http.post(
                f"{api}/query",
                content=statement,
                headers={**headers, "Content-Type": "application/text"},
                params={"minorversion": "75"},
            )
            resp.raise_for_status()
            found = resp.json().get("QueryResponse", {}).get("Customer", [])
            return found[0] if found else None

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            resp = http.post(f"{api}/{path}", json=body, headers=headers, params={"minorversion": "75"})
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

        for name in MAKE_INACTIVE:
            customer = find(name)
            if not customer or not customer.get("Active", True):
                continue
            if float(customer.get("Balance", 0) or 0):
                # QBO refuses to deactivate a customer with an open balance ("Delete List Has
                # Balance Error"), as a bookkeeper would find: receive the open invoices first.
                _settle_open_invoices(http, api, headers, customer)
                customer = find(name) or customer
            post(
                "customer",
                {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True, "Active": False},
            )
        missing = [{"DisplayName": n, "Active": False} for n in ADD_INACTIVE if find(n) is None]
        if missing:
            resp = http.post(f"/_sandbox/realms/{realm_id}/bulk/Customer", json=missing)
            resp.raise_for_status()
        _seed_billing(http, api, headers, realm_id)
    mark_demo_skips()
    log.info("qbo.demo.seeded realm=%s", realm_id)


def _peek(http: httpx.Client, realm_id: str, entity: str, where: str = "") -> list[dict[str, Any]]:
    """A read through the control plane (not metered: seeding must not eat the app's budget)."""
    statement = f"SELECT * FROM {entity}{where}"  # noqa: S608 (a QBO query; values quoted by _q)
    resp = http.post(f"/_sandbox/realms/{realm_id}/query", content=statement)
    resp.raise_for_status()
    found: list[dict[str, Any]] = resp.json().get("QueryResponse", {}).get(entity, [])
    return found


def _find_by(http: httpx.Client, realm_id: str, entity: str, field: str, value: str) -> list[dict[str, Any]]:
    return _peek(http, realm_id, entity, f" WHERE {field} = {_q(value)}")


def _seed_billing(http: httpx.Client, api: str, headers: dict[str, str], realm_id: str) -> None:
    """Custom transaction numbers on, the demo's class and location, and the DocNumber clash."""
    from practice.billing.demo import (
        DEMO_CLASS_NAMES,
        DEMO_LOCATION_NAMES,
        demo_firm,
        docnumber_clash_invoice,
    )

    params = {"minorversion": "75"}
    prefs = (_peek(http, realm_id, "Preferences") or [{}])[0]
    if not (prefs.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"):
        body = {"SyncToken": prefs.get("SyncToken", "0"), "sparse": True}
        body["SalesFormsPrefs"] = {"CustomTxnNumbers": True}
        http.post(f"{api}/preferences", json=body, headers=headers, params=params).raise_for_status()
    for entity, names in (("Class", DEMO_CLASS_NAMES), ("Department", DEMO_LOCATION_NAMES)):
        for name in names:
            if not _find_by(http, realm_id, entity, "Name", name):
                resp = http.post(f"/_sandbox/realms/{realm_id}/bulk/{entity}", json=[{"Name": name}])
                resp.raise_for_status()

    firm = demo_firm()
    invoice = docnumber_clash_invoice(firm) if firm is not None else None
    if invoice is None:
        return
    number = invoice.number
    if _find_by(http, realm_id, "Invoice", "DocNumber", number):
        return  # made on an earlier start (or the app's invoice is already there): nothing to add
    customer = _find_by(http, realm_id, "Customer", "DisplayName", CLASH_CUSTOMER)
    item = _find_by(http, realm_id, "Item", "Name", CLASH_ITEM)
    if not customer or not item:
        log.warning("qbo.demo.clash_skipped realm=%s reason=sample customer or item missing", realm_id)
        return
    amount = float(invoice.total) + 240.0  # another total: not the app's invoice
    body = {
        "DocNumber": number,
        "CustomerRef": {"value": str(customer[0]["Id"])},
        "TxnDate": invoice.issue_date.isoformat(),
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount,
                "Description": "Landscaping consultation",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": str(item[0]["Id"])},
                    "Qty": 1,
                    "UnitPrice": amount,
                    "TaxCodeRef": {"value": "NON"},
                },
            }
        ],
        "PrivateNote": CLASH_NOTE,
    }
    resp = http.post(f"/_sandbox/realms/{realm_id}/bulk/Invoice", json=[body])
    resp.raise_for_status()
    if resp.json().get("errors"):
        raise RuntimeError(f"demo clash invoice refused: {resp.json()['errors']}")
    log.info("qbo.demo.docnumber_clash realm=%s docnumber=%s", realm_id, number)


def _settle_open_invoices(
    http: httpx.Client, api: str, headers: dict[str, str], customer: dict[str, Any]
) -> None:
    statement = f"SELECT * FROM Invoice WHERE CustomerRef = {_q(str(customer['Id']))}"  # noqa: S608
    resp = http.post(
        f"{api}/query",
        content=statement,
        headers={**headers, "Content-Type": "application/text"},
        params={"minorversion": "75"},
    )
    resp.raise_for_status()
    lines = [
        {"Amount": inv["Balance"], "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}
        for inv in resp.json().get("QueryResponse", {}).get("Invoice", [])
        if float(inv.get("Balance", 0) or 0) > 0
    ]
    if not lines:
        return
    body = {
        "CustomerRef": {"value": str(customer["Id"])},
        "TotalAmt": round(sum(float(line["Amount"]) for line in lines), 2),
        "Line": lines,
        "PrivateNote": "Demo: settled so the customer can be made inactive",
    }
    http.post(f"{api}/payment", json=body, headers=headers, params={"minorversion": "75"}).raise_for_status()


def mark_demo_skips() -> int:
    """Mark the demo firm's "Do not sync" accounts Skipped (creating its Connection row if needed).

    The owner connects later; `connection_connect` reuses the firm's row, so the skip survives.
    """
    from practice.billing.demo import demo_firm
    from practice.clients.models import ClientAccount
    from practice.quickbooks.models import Connection, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    firm = demo_firm()
    if firm is None:
        return 0
    connection, _ = Connection.objects.get_or_create(firm=firm)
    n = 0
    for account in ClientAccount.objects.filter(firm=firm, name__in=SKIPPED):
        SyncLink.objects.update_or_create(
            connection=connection,
            kind="customer",
            local_id=account.pk,
            defaults={"firm": firm, "status": SyncStatus.SKIPPED},
        )
        n += 1
    return n
