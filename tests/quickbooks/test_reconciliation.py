"""The reconciliation page (issue 16 item 5), against the real sandbox over HTTP: QBO's figures
read in pages into CustomerBalance, the app's beside them, every explanation, the CSV, roles,
staleness; and the demo's differences ("done when")."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from practice.billing import services as billing
from practice.billing.demo import DOCNUMBER_CLASH_ACCOUNT, demo_seed
from practice.clients.services import account_create
from practice.firms.models import User
from practice.quickbooks import reconciliation
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.demo.seed import seed_demo_company
from practice.quickbooks.models import Connection, CustomerBalance, SyncLink
from practice.quickbooks.sync import balances, realm_facts
from tests.quickbooks.conftest import connect_firm
from tests.quickbooks.test_billing_demo import _confirm_setup_defaults, _run_until_idle

D = Decimal
URL = "/settings/integrations/quickbooks/reconciliation/"
SAMPLE = "/work/shared/data/qbo-sample-company-us"


def _figures(row: reconciliation.Row) -> tuple[tuple[Decimal, ...], tuple[Decimal, ...] | None]:
    q = row.qbo
    return (
        (row.app.invoiced, row.app.paid, row.app.open),
        (q.invoiced, q.paid, q.open) if q else None,
    )


def _invoice(firm, account, service, *, on: datetime.date, quantity: str = "1", number: str = ""):
    inv = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=on,
        due_date=on + datetime.timedelta(days=30),
        lines=[{"service": service, "description": "Work", "quantity": D(quantity), "rate": service.rate}],
        number=number,
    )
    return billing.invoice_issue(invoice=inv)


@pytest.fixture
def books(db, firm, sandbox, realm_id):
    """Three new accounts (customers created in QBO) with billing, synced; QBO's figures read."""
    today = timezone.localdate()
    conn = _confirm_setup_defaults(connect_firm(firm, realm_id, sandbox))
    svc = billing.service_create(firm=firm, name="Bookkeeping", rate="100.00")
    a = account_create(firm=firm, name="Reco Alpha LLC", kind="company")
    b = account_create(firm=firm, name="=Reco Beta", kind="company")  # a formula-looking name
    c = account_create(firm=firm, name="Reco Gamma", kind="company")
    a1 = _invoice(firm, a, svc, on=today - datetime.timedelta(days=20), quantity="3")  # 300
    a2 = _invoice(firm, a, svc, on=today - datetime.timedelta(days=10), quantity="2")  # 200
    pay = billing.payment_record(
        firm=firm,
        account=a,
        date=today - datetime.timedelta(days=5),
        amount="350.00",
        method="ach",
        created_manually=False,
        allocations=[(a1, D("300.00"))],
    )
    billing.refund_record(payment=pay, date=today - datetime.timedelta(days=1), amount="20.00")
    b1 = _invoice(firm, b, svc, on=today - datetime.timedelta(days=8), quantity="1.5")  # 150
    _invoice(firm, c, svc, on=today - datetime.timedelta(days=7), quantity="4")  # 400
    _run_until_idle(conn)
    assert {link.status for link in SyncLink.objects.filter(connection=conn)} == {"synced"}
    assert balances.refresh_balances(conn.pk) == 3
    return {"conn": conn, "a": a, "b": b, "c": c, "a1": a1, "a2": a2, "b1": b1, "svc": svc, "pay": pay}


def _rows(firm, conn, *, explain: bool = True) -> dict[str, reconciliation.Row]:
    rows = reconciliation.all_rows(firm=firm, connection=conn)
    if explain:
        reconciliation.explain(rows, firm=firm, connection=conn)
    return {r.name: r for r in rows}


def test_exact_figures_per_customer_match_when_everything_is_in_quickbooks(firm, books):
    rows = _rows(firm, books["conn"])
    assert set(rows) == {"Reco Alpha LLC", "=Reco Beta", "Reco Gamma"}
    # invoiced 300 + 200; paid 350 − 20 refunded; open 500 − 300 applied.
    assert _figures(rows["Reco Alpha LLC"]) == ((D("500.00"), D("330.00"), D("200.00")),) * 2
    assert _figures(rows["=Reco Beta"]) == ((D("150.00"), D("0.00"), D("150.00")),) * 2
    assert _figures(rows["Reco Gamma"]) == ((D("400.00"), D("0.00"), D("400.00")),) * 2
    assert not any(r.differs or r.explanations for r in rows.values())
    cached = CustomerBalance.objects.get(
        connection=books["conn"], qbo_customer_id=rows["Reco Alpha LLC"].qbo_id
    )
    assert (cached.invoiced, cached.paid, cached.open, cached.invoice_count, cached.stale) == (
        D("500.00"),
        D("330.00"),
        D("200.00"),
        2,
        False,
    )
    assert [p["total"] for p in cached.detail["payments"]] == ["350.00"]
    assert [r["total"] for r in cached.detail["refunds"]] == ["20.00"]


def test_each_explanation(firm, books, sandbox):
    conn: Connection = books["conn"]
    client = QBOClient(conn)
    today = timezone.localdate()
    # 1. Changed in QuickBooks: Alpha's second invoice gets another line amount there.
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=books["a2"].pk)
    theirs = client.read("Invoice", link.qbo_id)
    line = theirs["Line"][0]
    line["Amount"] = 260.0
    line["SalesItemLineDetail"]["Qty"] = 2.6
    client.update(
        "Invoice",
        {"Id": theirs["Id"], "SyncToken": theirs["SyncToken"], "sparse": True, "Line": [line]},
        request_id="reco-change-1",
    )
    # 2. Created in QuickBooks by hand: an invoice for Gamma's customer typed there.
    gamma = SyncLink.objects.get(connection=conn, kind="customer", local_id=books["c"].pk)
    client.create(
        "Invoice",
        {
            "DocNumber": "HAND-1",
            "CustomerRef": {"value": gamma.qbo_id},
            "TxnDate": today.isoformat(),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 75.0,
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": theirs["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"]},
                        "Qty": 1,
                        "UnitPrice": 75.0,
                    },
                }
            ],
        },
        request_id="reco-hand-1",
    )
    # 3. Dated before the sync start date: the start date moves past Beta's new invoice.
    conn.sync_start_date = today - datetime.timedelta(days=3)
    conn.save()
    early = _invoice(firm, books["b"], books["svc"], on=today - datetime.timedelta(days=4), quantity="1")
    # 4. A record in Error: QBO refuses Beta's next invoice (its number is used by Gamma's; the
    # company numbers its own sales forms, as in the demo).
    prefs = client.preferences()
    client.update(
        "Preferences",
        {"SyncToken": prefs["SyncToken"], "sparse": True, "SalesFormsPrefs": {"CustomTxnNumbers": True}},
        request_id="reco-prefs-1",
    )
    realm_facts.note_changes(conn.pk, [("Preferences", None)])  # the webhook QBO sends for it
    clash = _invoice(firm, books["b"], books["svc"], on=today, quantity="2", number="HAND-1")
    _run_until_idle(conn)
    assert SyncLink.objects.get(connection=conn, kind="invoice", local_id=clash.pk).status == "error"
    assert not SyncLink.objects.filter(
        connection=conn, kind="invoice", local_id=early.pk, qbo_id__gt=""
    ).exists()
    balances.refresh_balances(conn.pk, force=True)
    rows = _rows(firm, conn)

    alpha = rows["Reco Alpha LLC"]
    assert _figures(alpha) == (
        (D("500.00"), D("330.00"), D("200.00")),
        (D("560.00"), D("330.00"), D("260.00")),
    )
    number = books["a2"].number
    assert alpha.explanations == [
        f"Invoice {number} ($200.00) was changed in QuickBooks: "
        "$260.00, open $260.00 there, $200.00, open $200.00 here."
    ]
    assert alpha.explained

    gamma_row = rows["Reco Gamma"]
    assert _figures(gamma_row) == (
        (D("400.00"), D("0.00"), D("400.00")),
        (D("475.00"), D("0.00"), D("475.00")),
    )
    assert gamma_row.explanations == ["Created in QuickBooks by hand: invoice HAND-1 $75.00 (open $75.00)."]

    beta = rows["=Reco Beta"]
    assert _figures(beta) == ((D("450.00"), D("0.00"), D("450.00")), (D("150.00"), D("0.00"), D("150.00")))
    start = conn.sync_start_date.isoformat()
    assert beta.explanations[0] == (
        f"Invoice {early.number} ($100.00): Dated before the QuickBooks sync start date ({start}), "
        "so it is not sent to QuickBooks."
    )
    assert beta.explanations[1].startswith(
        "Invoice HAND-1 ($200.00): in Error: Invoice number HAND-1 is already used"
    )
    assert len(beta.explanations) == 2 and beta.explained
    # Largest difference first: Beta (300), Gamma (75), Alpha (60).
    assert [r.name for r in reconciliation.all_rows(firm=firm, connection=conn)] == [
        "=Reco Beta",
        "Reco Gamma",
        "Reco Alpha LLC",
    ]


def test_the_apps_own_push_makes_the_figures_stale(firm, books):
    """QBO tells no one about the app's own writes: a push after the read marks the row stale,
    says why it differs meanwhile, and the next read brings it back in line."""
    conn = books["conn"]
    new = _invoice(firm, books["c"], books["svc"], on=timezone.localdate(), quantity="1")
    _run_until_idle(conn)
    assert SyncLink.objects.get(connection=conn, kind="invoice", local_id=new.pk).status == "synced"
    row = _rows(firm, conn)["Reco Gamma"]
    assert row.stale and _figures(row) == (
        (D("500.00"), D("0.00"), D("500.00")),
        (D("400.00"), D("0.00"), D("400.00")),
    )
    assert row.explanations == [
        f"Invoice {new.number} ($100.00) was sent to QuickBooks after these figures were read; "
        "they are being read again."
    ]
    qbo_id = row.qbo_id
    assert CustomerBalance.objects.get(connection=conn, qbo_customer_id=qbo_id).stale
    assert balances.customers_due(conn) == [qbo_id]
    assert balances.refresh_balances(conn.pk) == 1
    row = _rows(firm, conn)["Reco Gamma"]
    assert not row.stale and not row.differs and _figures(row)[1] == (D("500.00"), D("0.00"), D("500.00"))


def test_skipped_account_and_payment_with_sync_off(firm, books):
    """A Skipped account keeps its row (QBO still has its customer); what it is not sent says so,
    and so does a manual payment whose sync is turned off."""
    from practice.quickbooks import actions

    conn = books["conn"]
    today = timezone.localdate()
    billing.payment_record(
        firm=firm,
        account=books["b"],
        date=today,
        amount="40.00",
        method="check",
        created_manually=True,
        sync_to_quickbooks=False,
    )
    actions.account_unsync(firm=firm, account=books["c"])
    late = _invoice(firm, books["c"], books["svc"], on=today, quantity="1")
    _run_until_idle(conn)
    rows = _rows(firm, conn)
    gamma = rows["Reco Gamma"]
    assert gamma.status == "skipped" and gamma.needs_look
    assert _figures(gamma)[0] == (D("500.00"), D("0.00"), D("500.00"))
    assert gamma.explanations == [
        f"Invoice {late.number} ($100.00): not sent: sync is turned off for this account (Skipped)."
    ]
    beta = rows["=Reco Beta"]
    assert _figures(beta) == ((D("150.00"), D("40.00"), D("150.00")), (D("150.00"), D("0.00"), D("150.00")))
    assert beta.explanations == [
        f"Payment of {today.isoformat()} ($40.00): Sync to QuickBooks is turned off for this payment."
    ]


def test_an_unexplained_difference_says_so(firm, books):
    conn = books["conn"]
    qbo_id = SyncLink.objects.get(connection=conn, kind="customer", local_id=books["c"].pk).qbo_id
    # The cache says QuickBooks has 10 more open than the app, and no transaction explains it.
    CustomerBalance.objects.filter(connection=conn, qbo_customer_id=qbo_id).update(open=D("410.00"))
    row = _rows(firm, conn)["Reco Gamma"]
    assert row.differs and not row.explained
    assert row.explanations == ["No known reason: compare this customer's transactions in QuickBooks."]


def test_qbo_reads_are_paged(firm, books, monkeypatch):
    statements: list[str] = []
    real = QBOClient.query

    def spy(self, statement, **kw):
        statements.append(statement)
        return real(self, statement, **kw)

    monkeypatch.setattr(QBOClient, "query", spy)
    assert balances.refresh_balances(books["conn"].pk, force=True, page_size=1) == 3
    invoice_reads = [s for s in statements if s.startswith("SELECT * FROM Invoice")]
    # Four invoices, one per page, then an empty page: five queries, not one per customer.
    assert [s.rsplit("STARTPOSITION", 1)[1] for s in invoice_reads] == [
        " 1 MAXRESULTS 1",
        " 2 MAXRESULTS 1",
        " 3 MAXRESULTS 1",
        " 4 MAXRESULTS 1",
        " 5 MAXRESULTS 1",
    ]
    assert all("WHERE CustomerRef IN (" in s for s in invoice_reads)
    rows = _rows(firm, books["conn"])
    assert _figures(rows["Reco Alpha LLC"])[1] == (D("500.00"), D("330.00"), D("200.00"))


def test_stale_and_old_figures_are_read_again_when_the_page_opens(
    firm, books, client_as, settings, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    conn = books["conn"]
    qbo_id = SyncLink.objects.get(connection=conn, kind="customer", local_id=books["c"].pk).qbo_id
    assert not balances.needs_refresh(conn)
    # A wrong cached figure, fresh: the page shows it and reads nothing.
    CustomerBalance.objects.filter(connection=conn, qbo_customer_id=qbo_id).update(open=D("1.00"))
    owner = client_as("owner")
    resp = owner.get(URL, {"show": "all"})
    assert resp.status_code == 200 and "1.00" in resp.content.decode()
    assert CustomerBalance.objects.get(connection=conn, qbo_customer_id=qbo_id).open == D("1.00")
    # The drift check marks it stale: opening the page reads it again (in the task queue).
    CustomerBalance.objects.filter(connection=conn, qbo_customer_id=qbo_id).update(stale=True)
    from django.core.cache import cache

    cache.clear()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        resp = owner.get(URL)
    assert len(queued) == 1
    assert resp.status_code == 200
    fresh = CustomerBalance.objects.get(connection=conn, qbo_customer_id=qbo_id)
    assert (fresh.open, fresh.stale) == (D("400.00"), False)
    # Older than QBO_RECONCILE_MAX_AGE_SECONDS: due again.
    settings.QBO_RECONCILE_MAX_AGE_SECONDS = 60
    CustomerBalance.objects.filter(connection=conn).update(
        read_at=timezone.now() - datetime.timedelta(seconds=61)
    )
    assert len(balances.customers_due(conn)) == 3
    # The button re-reads everything.
    CustomerBalance.objects.filter(connection=conn, qbo_customer_id=qbo_id).update(open=D("2.00"))
    with django_capture_on_commit_callbacks(execute=True) as queued:
        resp = owner.post(URL + "refresh/")
    assert len(queued) == 1
    assert resp.status_code == 302 and resp["Location"] == URL
    assert CustomerBalance.objects.get(connection=conn, qbo_customer_id=qbo_id).open == D("400.00")
    assert not balances.customers_due(conn)


def test_page_roles_and_firm_isolation(firm, other_firm, books, client_as, sandbox):
    employee = client_as("employee")
    assert employee.get(URL).status_code == 403
    assert employee.post(URL + "refresh/").status_code == 403
    assert employee.get(URL + "export.csv").status_code == 403
    assert client_as("anonymous").get(URL).status_code == 302
    # The other firm's owner (a manager of their own firm) sees only their firm: nothing linked.
    resp = client_as("other").get(URL, {"show": "all"})
    assert resp.status_code == 200
    assert b"Reco Alpha" not in resp.content
    assert client_as("other").get(URL + "export.csv", {"show": "all"}).content.decode().splitlines()[1:] == []
    # The owner and the admin see the rows.
    for who in ("owner", "admin"):
        resp = client_as(who).get(URL, {"show": "all"})
        assert resp.status_code == 200
        assert b"Reco Alpha LLC" in resp.content and b"=Reco Beta" in resp.content
    assert client_as("owner").get(URL).status_code == 200
    # The links to it.
    assert URL.encode() in client_as("owner").get(reverse("quickbooks:settings")).content
    assert URL.encode() in client_as("admin").get(reverse("quickbooks:problems")).content


def test_csv_export(firm, books, client_as):
    conn = books["conn"]
    gamma = SyncLink.objects.get(connection=conn, kind="customer", local_id=books["c"].pk).qbo_id
    CustomerBalance.objects.filter(connection=conn, qbo_customer_id=gamma).update(open=D("410.00"))
    resp = client_as("owner").get(URL + "export.csv", {"show": "all"})
    assert resp.status_code == 200 and resp["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert resp["Content-Disposition"] == f'attachment; filename="reconciliation-acme-accounting-{today}.csv"'
    table = list(csv.reader(io.StringIO(resp.content.decode())))
    assert table[0] == list(reconciliation.CSV_HEADER)
    by_name = {r[0]: r for r in table[1:]}
    assert set(by_name) == {"Reco Gamma", "'=Reco Beta", "Reco Alpha LLC"}  # formula name made text
    assert by_name["Reco Gamma"][1] == "difference" and by_name["Reco Alpha LLC"][1] == "match"
    assert by_name["Reco Gamma"][3:11] == [
        "400.00",
        "400.00",
        "0.00",
        "0.00",
        "400.00",
        "410.00",
        "10.00",
        "No known reason: compare this customer's transactions in QuickBooks.",
    ]
    assert by_name["Reco Alpha LLC"][3:11] == [
        "500.00",
        "500.00",
        "330.00",
        "330.00",
        "200.00",
        "200.00",
        "0.00",
        "",
    ]
    assert table[1][0] == "Reco Gamma"  # largest difference first
    # Only differences (the page's default filter): one row.
    only = list(csv.reader(io.StringIO(client_as("owner").get(URL + "export.csv").content.decode())))
    assert [r[0] for r in only[1:]] == ["Reco Gamma"]


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_never_start_a_formula(text):
    assert reconciliation.csv_safe(text) == "'" + text
    assert reconciliation.csv_safe("Plain & Sons") == "Plain & Sons"


def test_page_shows_figures_and_pages(firm, books, client_as):
    owner = client_as("owner")
    resp = owner.get(URL, {"show": "all", "per_page": "25"})
    html = resp.content.decode()
    assert "Reco Alpha LLC" in html and "500.00" in html and "Refresh from QuickBooks" in html
    assert "QuickBooks figures read" in html
    resp = owner.get(URL)
    assert "No differences" in resp.content.decode()


def _sample_history() -> dict[str, dict[str, list[str]]]:
    """The sample company's own invoices and payments per customer name (its history)."""
    import json

    def load(name: str) -> list[dict]:
        with open(f"{SAMPLE}/{name}.json") as fh:
            return list(json.load(fh))

    customers = {c["Id"]: c["DisplayName"] for c in load("customer")}
    out: dict[str, dict[str, list[str]]] = {}
    for inv in load("invoice"):
        name = customers[inv["CustomerRef"]["value"]]
        out.setdefault(name, {"invoices": [], "payments": []})["invoices"].append(
            f"{inv['DocNumber']} ${Decimal(str(inv['TotalAmt'])):,.2f}"
            f" (open ${Decimal(str(inv['Balance'])):,.2f})"
        )
    for pay in load("payment"):
        if Decimal(str(pay["TotalAmt"])):
            name = customers[pay["CustomerRef"]["value"]]
            out.setdefault(name, {"invoices": [], "payments": []})["payments"].append(
                f"${Decimal(str(pay['TotalAmt'])):,.2f}"
            )
    return out


def test_demo_shows_its_deliberate_differences_and_nothing_else(db, sandbox, realm_id):
    """`make demo`, connected and synced. The differences to look at are exactly the planted one:
    Bill's Windsurf Shop, whose INV-0002 is in Error (the number clash) and whose payment waits
    for it. The sample company's own history (invoices and payments typed in QuickBooks before the
    demo accounts were linked to its customers) explains the whole difference of 13 more
    customers: they are listed under "QuickBooks history from before linking", each transaction
    named. Every other linked customer matches to the cent."""
    firm = demo_seed().firm
    seed_demo_company(realm_id, sandbox.url)
    conn = _confirm_setup_defaults(connect_firm(firm, realm_id, sandbox))
    _run_until_idle(conn)
    linked = SyncLink.objects.filter(connection=conn, kind="customer", status__in=("synced", "skipped"))
    assert balances.refresh_balances(conn.pk) == linked.exclude(qbo_id="").count()
    rows = _rows(firm, conn)
    history = _sample_history()
    qbo_names = {link.local_id: link.qbo_name.casefold() for link in linked}

    def hist(row: reconciliation.Row) -> dict[str, list[str]] | None:
        return next((v for k, v in history.items() if k.casefold() == qbo_names[row.account_id]), None)

    to_look_at = [name for name, r in rows.items() if r.needs_look]
    assert to_look_at == [DOCNUMBER_CLASH_ACCOUNT]
    history_rows = {name for name, r in rows.items() if r.history_only}
    assert history_rows == {name for name, r in rows.items() if hist(r)} - {DOCNUMBER_CLASH_ACCOUNT}
    assert len(history_rows) == 13
    assert {name for name, r in rows.items() if r.differs} == history_rows | {DOCNUMBER_CLASH_ACCOUNT}
    for name, row in rows.items():
        if not row.differs:
            assert row.qbo is not None and hist(row) is None, name
            continue
        assert row.explained, (name, row.explanations)
        sample = hist(row)
        assert sample is not None
        prefix = "Created in QuickBooks by hand before this account was linked: "
        assert [e for e in row.explanations if e.startswith(prefix + "invoice")] == [
            f"{prefix}invoice {i}." for i in sample["invoices"]
        ]
        paid = sorted(
            e.rsplit(" ", 1)[1].rstrip(".") for e in row.explanations if e.startswith(prefix + "payment")
        )
        assert paid == sorted(sample["payments"]), name
        others = [e for e in row.explanations if not e.startswith(prefix)]
        if name == DOCNUMBER_CLASH_ACCOUNT:
            assert len(others) == 2
            assert others[0].startswith("Payment of ") and "Waiting for invoice INV-0002" in others[0]
            assert others[1].startswith(
                "Invoice INV-0002 ($900.00): in Error: Invoice number INV-0002 is already used"
            )
        else:
            assert others == [], (name, others)

    # The page as the owner opens it (default filter: the differences to look at) shows that one.
    owner = Client()  # the demo firm's own owner
    owner.force_login(User.objects.get(email="owner@demo.test"))
    page = owner.get(URL).content.decode()
    assert page.count('class="qbo-differs"') == 1 and "Bill&#x27;s Windsurf Shop" in page
    assert "INV-0002" in page
    page = owner.get(URL, {"show": "history"}).content.decode()
    assert page.count('class="qbo-differs"') == 13
