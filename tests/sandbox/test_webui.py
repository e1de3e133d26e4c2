"""The read-only web UI (/app/...): QBO-shaped customer pages, escaped, 404s, not metered."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlencode

import httpx

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body, invoice_body

SCRIPT_NAME = '<script>alert("x")</script> & Co'


def _get(server: SandboxServer, path: str, **params: str) -> httpx.Response:
    url = f"{server.url}{path}" + (f"?{urlencode(params)}" if params else "")
    return httpx.get(url, timeout=10)


def _detail(server: SandboxServer, realm: str, name_id: str) -> httpx.Response:
    return _get(server, "/app/customerdetail", nameId=name_id, realmId=realm)


def test_detail_of_a_sample_customer(sandbox: SandboxServer, sample: Api) -> None:
    resp = _detail(sandbox, sample.realm_id, "1")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    page = resp.text
    company = sandbox.sandbox.realms[sample.realm_id].company_name
    assert html.escape(company) in page
    assert "Amy&#x27;s Bird Sanctuary" in page
    assert "Amy's" not in page
    for text in ("Birds@Intuit.com", "(650) 555-3311", "4581 Finch St.", "Bayshore, CA 94326", "$239.00"):
        assert text in page, text
    assert '<span class="badge active">Active</span>' in page
    # Customer 1's open invoices, and its payments with the invoice numbers they paid.
    open_invoices = [
        i
        for i in sandbox.sandbox.realms[sample.realm_id].data["Invoice"].values()
        if i["CustomerRef"]["value"] == "1" and i["Balance"] > 0
    ]
    assert open_invoices
    section = page.split("<h2>Open invoices</h2>", 1)[1].split("<h2>Payments</h2>", 1)[0]
    for inv in open_invoices:
        assert f"<td>{inv['DocNumber']}</td>" in section
    paid = [
        p
        for p in sandbox.sandbox.realms[sample.realm_id].data["Payment"].values()
        if p["CustomerRef"]["value"] == "1"
    ]
    assert len(paid) >= 2
    payments = page.split("<h2>Payments</h2>", 1)[1]
    assert payments.count("<tr>") == len(paid) + 1  # header + one row each


def test_payment_shows_and_paid_invoice_leaves_open_list(sandbox: SandboxServer, api: Api) -> None:
    cust = api.create("Customer", customer_body("Payer"))
    paid = api.create("Invoice", invoice_body(cust["Id"], 50.0, DocNumber="P-1"))
    still_open = api.create("Invoice", invoice_body(cust["Id"], 70.0, DocNumber="P-2"))
    api.create(
        "Payment",
        {
            "CustomerRef": {"value": cust["Id"]},
            "TotalAmt": 80.0,
            "PaymentRefNum": "CHK-9",
            "Line": [{"Amount": 50.0, "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}],
        },
    )
    page = _detail(sandbox, api.realm_id, cust["Id"]).text
    invoices, payments = page.split("<h2>Open invoices</h2>", 1)[1].split("<h2>Payments</h2>", 1)
    assert "<td>P-2</td>" in invoices and "P-1" not in invoices and still_open["Balance"] == 70
    assert "CHK-9" in payments and "<td>P-1</td>" in payments
    assert "$80.00" in payments and "$30.00" in payments  # amount, unapplied
    assert "$70.00" in page  # the customer's open balance


def test_script_name_is_escaped_everywhere(sandbox: SandboxServer, api: Api) -> None:
    customer = api.create(
        "Customer",
        customer_body(
            SCRIPT_NAME,
            CompanyName="<b>Bold</b> Ltd",
            PrimaryEmailAddr={"Address": "x@example.com"},
            BillAddr={"Line1": "<img src=x onerror=alert(1)>", "City": "Town"},
        ),
    )
    api.create("Invoice", invoice_body(customer["Id"], 120.0, DocNumber="<i>7</i>"))
    escaped = html.escape(SCRIPT_NAME)
    for resp in (
        _detail(sandbox, api.realm_id, customer["Id"]),
        _get(sandbox, "/app/customers", realmId=api.realm_id),
    ):
        assert resp.status_code == 200
        page = resp.text
        assert "<script" not in page
        assert "<img" not in page and "<b>Bold" not in page and "<i>7" not in page
        assert escaped in page
    detail = _detail(sandbox, api.realm_id, customer["Id"]).text
    assert "&lt;b&gt;Bold&lt;/b&gt; Ltd" in detail
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "&lt;i&gt;7&lt;/i&gt;" in detail and "$120.00" in detail


def test_customer_list_links_and_status(sandbox: SandboxServer, api: Api) -> None:
    keep = api.create("Customer", customer_body("Zed Active"))
    gone = api.create("Customer", customer_body("Ann Inactive"))
    api.create(
        "Customer", {"Id": gone["Id"], "SyncToken": gone["SyncToken"], "sparse": True, "Active": False}
    )
    resp = _get(sandbox, "/app/customers", realmId=api.realm_id)
    assert resp.status_code == 200
    page = resp.text
    assert "2 customers: 1 active, 1 inactive." in page
    assert page.index("Ann Inactive") < page.index("Zed Active")  # by name
    for cust in (keep, gone):
        href = html.escape(
            f"/app/customerdetail?{urlencode({'nameId': cust['Id'], 'realmId': api.realm_id})}"
        )
        assert f'href="{href}"' in page
    rows = re.findall(r"<tr>.*?</tr>", page)
    assert any("Ann Inactive" in r and "badge inactive" in r for r in rows)
    assert any("Zed Active" in r and "badge active" in r for r in rows)
    detail = _detail(sandbox, api.realm_id, gone["Id"]).text
    assert '<span class="badge inactive">Inactive</span>' in detail
    assert "No open invoices." in detail and "No payments." in detail


def test_companies_page(sandbox: SandboxServer, api: Api) -> None:
    for path in ("/app/", "/app"):
        resp = _get(sandbox, path)
        assert resp.status_code == 200
        assert f"/app/customers?realmId={api.realm_id}" in resp.text
        name = sandbox.sandbox.realms[api.realm_id].company_name
        assert html.escape(name) in resp.text


def test_404s(sandbox: SandboxServer, api: Api) -> None:
    cases = [
        _detail(sandbox, "nope", "1"),
        _detail(sandbox, api.realm_id, "999999"),
        _get(sandbox, "/app/customerdetail", realmId=api.realm_id),
        _get(sandbox, "/app/customerdetail", nameId="1"),
        _get(sandbox, "/app/customers", realmId="nope"),
        _get(sandbox, "/app/customers"),
    ]
    for resp in cases:
        assert resp.status_code == 404, resp.url
        assert resp.headers["content-type"].startswith("text/html")
        assert "not found" in resp.text
    unknown = _detail(sandbox, "<script>x</script>", "<script>").text
    assert "<script>" not in unknown and "&lt;script&gt;x&lt;/script&gt;" in unknown


def test_not_metered_or_counted(sandbox: SandboxServer, sample: Api) -> None:
    sandbox.reset_counters(sample.realm_id)
    before = len(sandbox.requests(sample.realm_id))
    for _ in range(3):
        assert _detail(sandbox, sample.realm_id, "1").status_code == 200
        assert _get(sandbox, "/app/customers", realmId=sample.realm_id).status_code == 200
    assert all(v == 0 for v in sandbox.counters(sample.realm_id).values())
    assert len(sandbox.requests(sample.realm_id)) == before


def test_not_throttled(sandbox: SandboxServer, sample: Api, limits: Any) -> None:
    limits(throttling_enabled=True, requests_per_minute=1, requests_per_second=1)
    for _ in range(5):
        assert _detail(sandbox, sample.realm_id, "1").status_code == 200


# --- Invoices, payments and items (issue 10: "Open in QuickBooks" for billing records) ----------


def test_invoice_page_shows_an_invoice_made_through_the_api(sandbox: SandboxServer, api: Api) -> None:
    cust = api.create("Customer", customer_body(SCRIPT_NAME))
    item = api.create(
        "Item",
        {"Name": "Bookkeeping <monthly>", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
    )
    body = invoice_body(cust["Id"], 150.0, item["Id"], DocNumber="INV-0042", TxnDate="2026-11-02")
    body["DueDate"] = "2026-12-02"
    body["Line"][0]["Description"] = "November books"
    inv = api.create("Invoice", body)
    resp = _get(sandbox, "/app/invoice", txnId=inv["Id"], realmId=api.realm_id)
    assert resp.status_code == 200
    page = resp.text
    assert "<h1>Invoice INV-0042</h1>" in page
    assert html.escape(SCRIPT_NAME) in page and "<script>" not in page
    detail = f"/app/customerdetail?{urlencode({'nameId': cust['Id'], 'realmId': api.realm_id})}"
    assert f'href="{html.escape(detail)}"' in page
    for text in ("2026-11-02", "2026-12-02", "$150.00", "November books", "Bookkeeping &lt;monthly&gt;"):
        assert text in page, text
    assert "<dt>Balance due</dt><dd>$150.00</dd>" in page
    assert '<p class="empty">No payments applied.</p>' in page


def test_payment_page_lists_the_invoices_it_pays(sandbox: SandboxServer, api: Api) -> None:
    cust = api.create("Customer", customer_body("Cool Cars"))
    item = api.create("Item", {"Name": "Tax prep", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    one = api.create("Invoice", invoice_body(cust["Id"], 100.0, item["Id"], DocNumber="INV-1"))
    two = api.create("Invoice", invoice_body(cust["Id"], 80.0, item["Id"], DocNumber="INV-2"))
    pay = api.create(
        "Payment",
        {
            "CustomerRef": {"value": cust["Id"]},
            "TotalAmt": 200.0,
            "TxnDate": "2026-11-05",
            "PaymentRefNum": "CHK-981",
            "Line": [
                {"Amount": 100.0, "LinkedTxn": [{"TxnId": one["Id"], "TxnType": "Invoice"}]},
                {"Amount": 30.0, "LinkedTxn": [{"TxnId": two["Id"], "TxnType": "Invoice"}]},
            ],
        },
    )
    page = _get(sandbox, "/app/recvpayment", txnId=pay["Id"], realmId=api.realm_id).text
    assert "<h1>Payment received</h1>" in page
    for text in ("2026-11-05", "CHK-981", "$200.00", "Cool Cars", "Invoice INV-1", "Invoice INV-2"):
        assert text in page, text
    assert "<dt>Unapplied</dt><dd>$70.00</dd>" in page
    applied = page.split("<h2>Applied to</h2>", 1)[1]
    assert applied.count("<tr>") == 3  # header + two invoices
    assert '<td class="num">$50.00</td>' in applied  # INV-2's open balance after $30
    inv_page = _get(sandbox, "/app/invoice", txnId=two["Id"], realmId=api.realm_id).text
    assert "<dt>Balance due</dt><dd>$50.00</dd>" in inv_page
    assert "CHK-981" in inv_page.split("<h2>Payments</h2>", 1)[1]


def test_items_page_and_missing_records(sandbox: SandboxServer, api: Api) -> None:
    api.create("Item", {"Name": "Payroll & HR", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    page = _get(sandbox, "/app/items", realmId=api.realm_id).text
    assert "<h1>Products and services</h1>" in page and "Payroll &amp; HR" in page
    assert _get(sandbox, "/app/invoice", txnId="999", realmId=api.realm_id).status_code == 404
    assert _get(sandbox, "/app/recvpayment", realmId=api.realm_id).status_code == 404
    assert _get(sandbox, "/app/items").status_code == 404


# -- the customer page's "Merge into…" form (issue 16 item 4) ------------------------------------------


def _form(page: str) -> dict[str, str]:
    action = re.search(r'<form class="act merge" method="post" action="([^"]+)">', page)
    form = page.split('<form class="act merge"', 1)[1]
    csrf = re.search(r'<input type="hidden" name="csrf" value="([0-9a-f]+)">', form)
    assert action and csrf, page
    return {"action": html.unescape(action.group(1)), "csrf": csrf.group(1)}


def _options(page: str) -> list[tuple[str, str]]:
    select = page.split('<select id="merge-into"', 1)[1].split("</select>", 1)[0]
    return re.findall(r'<option value="(\d+)">([^<]*)</option>', select)


def test_merge_form_moves_the_customer_and_redirects(sandbox: SandboxServer, api: Api) -> None:
    loser = api.create("Customer", customer_body("Pyes Cakes"))
    keep = api.create("Customer", customer_body("Pye's Cakes"))
    gone = api.create("Customer", customer_body("Closed shop"))
    api.create("Customer", {"Id": gone["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    job = api.create("Customer", customer_body("Cake job", ParentRef={"value": loser["Id"]}))
    inv = api.create("Invoice", invoice_body(loser["Id"], 75.0))
    page = _detail(sandbox, api.realm_id, loser["Id"]).text
    # Active customers other than this one and its own jobs; labelled controls.
    assert _options(page) == [(keep["Id"], "Pye&#x27;s Cakes")]
    assert '<label for="merge-into">Merge into…</label>' in page
    assert "Control token" not in page  # loopback sandbox without a control token
    form = _form(page)
    assert form["action"] == f"/app/customerdetail/merge?nameId={loser['Id']}&realmId={api.realm_id}"

    resp = httpx.post(f"{sandbox.url}{form['action']}", data={"csrf": form["csrf"], "into_id": keep["Id"]})
    assert resp.status_code == 303
    assert resp.headers["location"] == (
        f"/app/customerdetail?nameId={keep['Id']}&realmId={api.realm_id}&merged={loser['Id']}"
    )
    survivor_page = httpx.get(f"{sandbox.url}{resp.headers['location']}").text
    assert (
        f'<p class="notice" role="status">Customer {loser["Id"]} was merged into this customer'
        in survivor_page
    )
    assert "$75.00" in survivor_page  # the loser's open invoice is listed on the survivor
    assert api.read("Invoice", inv["Id"])["CustomerRef"]["value"] == keep["Id"]
    assert api.read("Customer", job["Id"])["FullyQualifiedName"] == "Pye's Cakes:Cake job"
    # The loser's own page (an app's "Open in QuickBooks" link) says where it went.
    old = _detail(sandbox, api.realm_id, loser["Id"])
    assert old.status_code == 404
    assert "was merged into" in old.text and f"nameId={keep['Id']}" in old.text
    # A forged `merged=` on another page says nothing.
    other = _get(sandbox, "/app/customerdetail", nameId=job["Id"], realmId=api.realm_id, merged=loser["Id"])
    assert 'class="notice"' not in other.text


def test_merge_form_refuses_without_its_token_or_a_choice(sandbox: SandboxServer, api: Api) -> None:
    loser = api.create("Customer", customer_body("Forged A"))
    keep = api.create("Customer", customer_body("Forged B"))
    form = _form(_detail(sandbox, api.realm_id, loser["Id"]).text)
    url = f"{sandbox.url}{form['action']}"
    before = json.dumps(sandbox.sandbox.realms[api.realm_id].data, sort_keys=True)
    # Another site's form post (no token, or one from another customer's page) changes nothing.
    forged = httpx.post(url, data={"into_id": keep["Id"]})
    assert forged.status_code == 403 and "The form has expired" in forged.text
    other_token = _form(_detail(sandbox, api.realm_id, keep["Id"]).text)["csrf"]
    assert httpx.post(url, data={"csrf": other_token, "into_id": keep["Id"]}).status_code == 403
    empty = httpx.post(url, data={"csrf": form["csrf"], "into_id": ""})
    assert empty.status_code == 400 and "Choose the customer to merge into." in empty.text
    itself = httpx.post(url, data={"csrf": form["csrf"], "into_id": loser["Id"]})
    assert itself.status_code == 400
    assert (
        '<p class="problem" role="alert">Not merged: a customer can&#x27;t be merged into itself.</p>'
        in itself.text
    )
    huge = httpx.post(url, data={"csrf": form["csrf"], "into_id": keep["Id"], "pad": "x" * 5000})
    assert huge.status_code == 413
    assert json.dumps(sandbox.sandbox.realms[api.realm_id].data, sort_keys=True) == before
    assert "form-action 'self'" in forged.headers["content-security-policy"]


def test_merge_form_needs_the_control_token_when_one_is_set() -> None:
    with SandboxServer(SandboxConfig(throttling_enabled=False), control_token="tok-123") as server:
        realm = server.create_realm()
        a, b = server.bulk_insert(realm, "Customer", [{"DisplayName": "Tok A"}, {"DisplayName": "Tok B"}])
        page = httpx.get(f"{server.url}/app/customerdetail", params={"nameId": a, "realmId": realm}).text
        assert '<label for="merge-control-token">Control token</label>' in page
        form = _form(page)
        url = f"{server.url}{form['action']}"
        wrong = httpx.post(url, data={"csrf": form["csrf"], "into_id": b, "control_token": "guess"})
        assert wrong.status_code == 403 and "The control token is missing or wrong." in wrong.text
        assert server.read(realm, "Customer", a) is not None
        ok = httpx.post(url, data={"csrf": form["csrf"], "into_id": b, "control_token": "tok-123"})
        assert ok.status_code == 303
        assert server.read(realm, "Customer", a) is None


def _status_form(page: str) -> dict[str, str]:
    form = page.split('<form class="act status"', 1)[1].split("</form>", 1)[0]
    action = re.search(r'method="post" action="([^"]+)"', form)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    active = re.search(r'name="active" value="(true|false)"', form)
    button = re.search(r"<button[^>]*>([^<]+)</button>", form)
    assert action and csrf and active and button, form
    return {
        "action": html.unescape(action.group(1)),
        "csrf": csrf.group(1),
        "active": active.group(1),
        "button": button.group(1),
    }


def test_make_inactive_and_active_again(sandbox: SandboxServer, api: Api) -> None:
    """QBO's own "Make inactive" (what the issue's demo does in the sandbox's pages), through the
    API's rules and notifying apps like an API write."""
    cust = api.create("Customer", customer_body("Dormant Dental"))
    api.create("Customer", customer_body("Busy Dental"))  # so the page has a merge form too
    form = _status_form(_detail(sandbox, api.realm_id, cust["Id"]).text)
    assert (form["button"], form["active"]) == ("Make inactive", "false")
    url = f"{sandbox.url}{form['action']}"
    # Forged or another form's token: refused, nothing changes.
    merge_token = _form(_detail(sandbox, api.realm_id, cust["Id"]).text)["csrf"]
    assert httpx.post(url, data={"csrf": merge_token, "active": "false"}).status_code == 403
    assert httpx.post(url, data={"active": "false"}).status_code == 403
    assert httpx.post(url, data={"csrf": form["csrf"], "active": "maybe"}).status_code == 400
    assert api.read("Customer", cust["Id"])["Active"] is True

    resp = httpx.post(url, data={"csrf": form["csrf"], "active": "false"})
    assert resp.status_code == 303
    assert resp.headers["location"] == (
        f"/app/customerdetail?nameId={cust['Id']}&realmId={api.realm_id}&done=inactive"
    )
    page = httpx.get(f"{sandbox.url}{resp.headers['location']}").text
    assert '<p class="notice" role="status">This customer is now inactive.</p>' in page
    assert '<span class="badge inactive">Inactive</span>' in page
    after = api.read("Customer", cust["Id"])
    assert (after["Active"], after["SyncToken"]) == (False, "1")
    # The same change an API client would make: CDC shows it.
    since = cust["MetaData"]["LastUpdatedTime"]
    cdc = api.get("/cdc", params={"entities": "Customer", "changedSince": since}).json()
    assert after in cdc["CDCResponse"][0]["QueryResponse"][0]["Customer"]

    again = _status_form(page)
    assert (again["button"], again["active"]) == ("Make active", "true")
    back = httpx.post(f"{sandbox.url}{again['action']}", data={"csrf": again["csrf"], "active": "true"})
    assert back.status_code == 303 and back.headers["location"].endswith("&done=active")
    assert api.read("Customer", cust["Id"])["Active"] is True
    # A stale "done=inactive" link doesn't claim what is no longer true.
    stale = _get(sandbox, "/app/customerdetail", nameId=cust["Id"], realmId=api.realm_id, done="inactive")
    assert 'class="notice"' not in stale.text


def test_make_inactive_refused_with_an_open_balance(sandbox: SandboxServer, api: Api) -> None:
    cust = api.create("Customer", customer_body("Owes Money"))
    api.create("Invoice", invoice_body(cust["Id"], 12.5))
    form = _status_form(_detail(sandbox, api.realm_id, cust["Id"]).text)
    resp = httpx.post(f"{sandbox.url}{form['action']}", data={"csrf": form["csrf"], "active": "false"})
    assert resp.status_code == 400
    assert (
        '<p class="problem" role="alert">Not changed: Business Validation Error: Delete List Has Balance '
        "Error: This customer cannot be deleted because it has a non-zero balance</p>"
    ) in resp.text
    assert api.read("Customer", cust["Id"])["Active"] is True
