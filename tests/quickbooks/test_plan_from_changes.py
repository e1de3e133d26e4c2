"""Planning from what changed (issue 13 item 7, engine.plan_scope).

A run looks at the records changed since the last complete run, the links that still need work,
and nothing else; a full walk is the safety net (no cursor yet, settings changed, every
QBO_FULL_PLAN_SECONDS). The headline check: the SQL statements, the rows the database hands
back and the QBO reads of a run for one changed invoice do not grow from a firm of 100 accounts
to one of 10,000.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection as db
from django.db.backends import utils as db_utils
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from practice.billing.models import Invoice, InvoiceState, Payment
from practice.billing.services import invoice_create, invoice_issue, payment_record, service_create
from practice.clients.models import ClientAccount
from practice.quickbooks.models import RealmSyncState, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine
from tests.quickbooks.sync_support import accounts, run, set_up_for_billing

TODAY = date(2026, 11, 2)
READS = {"query", "read", "cdc"}


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


def issued(firm, account, service, amount: str = "10.00") -> Invoice:
    invoice = invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=TODAY + timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": amount, "description": "work"}],
    )
    return invoice_issue(invoice=invoice)


_numbers = itertools.count(1)


def grow_firm(conn, n: int) -> None:
    """Add `n` accounts, each with one issued invoice, all long since in QBO (their links Synced
    an hour after their last change), the way a firm looks after months of use. Made in bulk:
    what matters here is how much a run reads, not how they got there. Everything already there
    becomes old news too."""
    firm_id = conn.firm_id
    start = next(_numbers)
    for _ in range(max(n - 1, 0)):
        next(_numbers)
    made = ClientAccount.objects.bulk_create(
        [ClientAccount(firm_id=firm_id, name=f"Client {start + i:06d}") for i in range(n)], batch_size=500
    )
    invoices = Invoice.objects.bulk_create(
        [
            Invoice(
                firm_id=firm_id,
                account=a,
                number=f"B-{start + i:06d}",
                issue_date=TODAY,
                due_date=TODAY,
                state=InvoiceState.ISSUED,
            )
            for i, a in enumerate(made)
        ],
        batch_size=500,
    )
    long_ago = timezone.now() - timedelta(days=3)
    ClientAccount.objects.filter(pk__in=[a.pk for a in made]).update(updated_at=long_ago)
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(updated_at=long_ago)
    synced = long_ago + timedelta(hours=1)
    SyncLink.objects.bulk_create(
        [
            SyncLink(
                firm_id=firm_id,
                connection=conn,
                kind=kind,
                local_id=obj.pk,
                status=SyncStatus.SYNCED,
                qbo_id=str(900000 + start + i),
                qbo_name=getattr(obj, "name", ""),
                pushed_hash="pushed",
                synced_at=synced,
            )
            for kind, objs in (("customer", made), ("invoice", invoices))
            for i, obj in enumerate(objs)
        ],
        batch_size=500,
    )
    # Everything the firm had is old news too (the earlier measurement's invoice included), so
    # that the next run's one change is the only recent one at both sizes.
    for model in (ClientAccount, Invoice, Payment):
        model.objects.filter(firm_id=firm_id).update(updated_at=long_ago)
    SyncLink.objects.filter(connection=conn).update(updated_at=synced)


@contextmanager
def rows_fetched() -> Iterator[list[int]]:
    """Count the rows the database hands back (every fetch the ORM makes goes through these)."""
    counted = [0]

    def fetchone(self: Any) -> Any:
        row = self.cursor.fetchone()
        counted[0] += row is not None
        return row

    def fetchmany(self: Any, size: int = 1) -> Any:
        rows = self.cursor.fetchmany(size)
        counted[0] += len(rows)
        return rows

    def fetchall(self: Any) -> Any:
        rows = self.cursor.fetchall()
        counted[0] += len(rows)
        return rows

    saved = {
        name: db_utils.CursorWrapper.__dict__.get(name) for name in ("fetchone", "fetchmany", "fetchall")
    }
    db_utils.CursorWrapper.fetchone = fetchone  # type: ignore[attr-defined]
    db_utils.CursorWrapper.fetchmany = fetchmany  # type: ignore[attr-defined]
    db_utils.CursorWrapper.fetchall = fetchall  # type: ignore[attr-defined]
    try:
        yield counted
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(db_utils.CursorWrapper, name)
            else:
                setattr(db_utils.CursorWrapper, name, value)


def measure_one_change(
    conn, firm, sandbox, realm_id, acme, audit, *, kind: str = "invoice"
) -> dict[str, int]:
    """Make one change (a new issued invoice, or a payment of one) and measure the run after it."""
    if kind == "invoice":
        record: Any = issued(firm, acme, audit)
    else:
        invoice = Invoice.objects.filter(account=acme, state=InvoiceState.ISSUED).order_by("pk").first()
        record = payment_record(
            firm=firm,
            account=acme,
            date=TODAY,
            amount="1.00",
            method="check",
            allocations=[(invoice, "1.00")],
        )
    sandbox.clear_requests(realm_id)
    with CaptureQueriesContext(db) as queries, rows_fetched() as rows:
        result = run(conn)
    assert result.ran and result.reason == "", result
    link = SyncLink.objects.get(connection=conn, kind=kind, local_id=record.pk)
    assert link.status == SyncStatus.SYNCED and link.qbo_id
    log = sandbox.requests(realm_id)
    return {
        "sql_statements": len(queries),
        "rows": rows[0],
        "qbo_reads": sum(1 for e in log if e["operation"] in READS),
        "qbo_requests": len(log),
    }


def figures_row(label: str, accounts: int, m: dict[str, int]) -> str:
    cells = [
        label,
        f"{accounts:,}",
        *(str(m[k]) for k in ("sql_statements", "rows", "qbo_reads", "qbo_requests")),
    ]
    return " | ".join(cells)


def test_a_run_for_one_changed_invoice_does_not_grow_with_the_firm(conn, firm, sandbox, realm_id):
    acme = accounts(firm, "Acme Widgets")[0]
    audit = service_create(firm=firm, name="Audit", rate="100.00")
    first = issued(firm, acme, audit)
    # A first payment too: the realm facts a payment needs (its payment methods) are read once
    # and kept, so the runs measured below compare like with like.
    payment_record(
        firm=firm, account=acme, date=TODAY, amount="1.00", method="check", allocations=[(first, "1.00")]
    )
    assert run(conn).ran  # the first run walks everything and records where it planned through
    assert RealmSyncState.objects.get(connection=conn).planned_through is not None

    grow_firm(conn, 100)
    small = measure_one_change(conn, firm, sandbox, realm_id, acme, audit)
    grow_firm(conn, 0)
    small_payment = measure_one_change(conn, firm, sandbox, realm_id, acme, audit, kind="payment")
    grow_firm(conn, 9_900)
    assert ClientAccount.objects.filter(firm=firm).count() == 10_001
    large = measure_one_change(conn, firm, sandbox, realm_id, acme, audit)
    grow_firm(conn, 0)
    large_payment = measure_one_change(conn, firm, sandbox, realm_id, acme, audit, kind="payment")

    # The figures of docs/performance.md §8 (shown with `pytest -s`).
    print("\nrun after one change | accounts | SQL statements | rows read | QBO reads | QBO requests")
    for label, size, m in (
        ("new invoice", 101, small),
        ("new invoice", 10_001, large),
        ("new payment", 101, small_payment),
        ("new payment", 10_001, large_payment),
    ):
        print(figures_row(label, size, m))
    assert large == small, (small, large)
    assert large_payment == small_payment, (small_payment, large_payment)
    assert small["qbo_requests"] <= 3, small  # the write, and at most a Preferences read + a look-up

    # The measure can tell: a full walk (what every run did before) reads every record.
    RealmSyncState.objects.filter(connection=conn).update(planned_through=None)
    full = measure_one_change(conn, firm, sandbox, realm_id, acme, audit)
    print(figures_row("new invoice, full walk", 10_001, full))
    assert full["rows"] > small["rows"] + 20_000, (small, full)


def test_full_walk_when_there_is_no_cursor_settings_change_or_it_is_due(conn, firm, settings):
    now = timezone.now()
    assert engine.plan_since(conn, now=now) is None  # never planned
    RealmSyncState.objects.update_or_create(
        connection=conn,
        defaults={
            "planned_through": now,
            "full_plan_at": now,
            "plan_settings": engine.plan_settings_fingerprint(conn),
        },
    )
    assert engine.plan_since(conn, now=now) == now - engine.PLAN_OVERLAP
    conn.sync_start_date = date(2026, 1, 1)  # what belongs in QBO changed: look at everything
    assert engine.plan_since(conn, now=now) is None
    conn.sync_start_date = None
    settings.QBO_FULL_PLAN_SECONDS = 60
    assert engine.plan_since(conn, now=now + timedelta(seconds=61)) is None
    assert engine.plan_since(conn, now=now + timedelta(seconds=59)) is not None


def test_a_change_that_bypasses_the_services_is_found_by_the_full_walk(conn, firm, sandbox, realm_id):
    """An UPDATE that does not move `updated_at` is invisible to a plan from what changed; the
    periodic full walk still sends it."""
    acme = accounts(firm, "Acme Widgets")[0]
    audit = service_create(firm=firm, name="Audit", rate="100.00")
    invoice = issued(firm, acme, audit)
    assert run(conn).ran
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)
    stamp = timezone.now() - timedelta(hours=1)  # changed an hour ago, synced just before
    later = TODAY + timedelta(days=60)
    Invoice.objects.filter(pk=invoice.pk).update(due_date=later, updated_at=stamp)
    SyncLink.objects.filter(pk=link.pk).update(updated_at=stamp, synced_at=stamp - timedelta(seconds=1))
    RealmSyncState.objects.filter(connection=conn).update(planned_through=timezone.now())
    sandbox.clear_requests(realm_id)
    assert run(conn).ran
    assert not [e for e in sandbox.requests(realm_id) if e["operation"] in ("batch", "update")]

    RealmSyncState.objects.filter(connection=conn).update(full_plan_at=timezone.now() - timedelta(days=1))
    assert run(conn).ran
    qbo = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert qbo is not None and qbo["DueDate"] == later.isoformat()


def test_waiting_records_go_once_their_dependency_is_in(conn, firm, sandbox, realm_id):
    """Not-synced links are always looked at: an invoice waiting for its account is sent by the
    run after the account is linked, though the invoice itself did not change."""
    conn.unmatched_customer = "ask"
    conn.save()
    newco = accounts(firm, "Brand New Co")[0]
    audit = service_create(firm=firm, name="Audit", rate="100.00")
    invoice = issued(firm, newco, audit)
    assert run(conn).ran
    ilink = SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)
    assert ilink.status == SyncStatus.NOT_SYNCED and "Waiting for the account" in ilink.error_message
    from practice.quickbooks import actions

    clink = SyncLink.objects.get(connection=conn, kind="customer", local_id=newco.pk)
    assert clink.error_kind == "no_match"
    # Much later, the owner chooses to create it.
    past = timezone.now() - timedelta(days=1)
    Invoice.objects.filter(pk=invoice.pk).update(updated_at=past)
    SyncLink.objects.filter(pk=ilink.pk).update(updated_at=past)
    RealmSyncState.objects.filter(connection=conn).update(planned_through=timezone.now())
    actions.account_sync_create(firm=firm, account=newco, name=newco.name)
    assert run(conn).ran
    ilink.refresh_from_db()
    assert ilink.status == SyncStatus.SYNCED and ilink.qbo_id


def test_a_backlog_is_planned_and_written_in_pages(conn, firm, sandbox, realm_id, settings):
    """With a page of 2 writes, 5 new accounts with an invoice and a payment each still go in one
    run, every record exactly once, never more than a page in one batch call."""
    settings.QBO_PLAN_WRITES_PER_ROUND = 2
    audit = service_create(firm=firm, name="Audit", rate="100.00")
    accts = accounts(firm, *(f"Paged Client {i}" for i in range(5)))
    invoices = [issued(firm, a, audit, amount="20.00") for a in accts]
    payments = [
        payment_record(
            firm=firm, account=a, date=TODAY, amount="5.00", method="check", allocations=[(inv, "5.00")]
        )
        for a, inv in zip(accts, invoices, strict=True)
    ]

    def count(entity: str) -> int:
        return int(sandbox.query(realm_id, f"select count(*) from {entity}")["totalCount"])

    before = {entity: count(entity) for entity in ("Customer", "Invoice", "Payment")}
    sandbox.clear_requests(realm_id)
    result = run(conn)
    assert result.ran and result.reason == "", result
    for kind, records in (("customer", accts), ("invoice", invoices), ("payment", payments)):
        links = SyncLink.objects.filter(connection=conn, kind=kind, local_id__in=[r.pk for r in records])
        assert sorted(link.status for link in links) == [SyncStatus.SYNCED] * 5, kind
    log = sandbox.requests(realm_id)
    batches = [e for e in log if e["operation"] == "batch"]
    assert batches and max(e["batch_items"] for e in batches) <= 2
    for entity in ("Customer", "Invoice", "Payment"):
        assert count(entity) == before[entity] + 5, entity  # each record once, none twice
