"""The record-kind API the money kinds will use (issue 8 item 6), driven by small kinds defined
here against qbo_sandbox over HTTP: sparse updates with a 5010 re-read, kinds keyed by name (the
"customer_notes" kind below writes the same QBO entity as the customer kind), dependencies that
make a record wait with a message naming what it waits for, deletes in reverse dependency order,
and `pushed_hash` diffing so an unchanged record is never pushed again."""

from __future__ import annotations

from typing import Any

import pytest

from practice.clients.models import ClientAccount
from practice.clients.services import account_update
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.connection.errors import RecordRejected
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus
from practice.quickbooks.sync import engine
from tests.quickbooks.sync_support import accounts, link_of, make_due, run, set_up

NOTES = "customer_notes"


@pytest.fixture
def conn(connection):
    return set_up(connection)


def notes_link(connection, account) -> SyncLink:
    return SyncLink.objects.get(connection=connection, kind=NOTES, local_id=account.pk)


def plan_notes(ctx: engine.RunContext) -> list[engine.Op]:
    """Keep each customer's Notes at "E-mail on file: …" once the account's customer is in QBO."""
    ops: list[engine.Op] = []
    decisions: list[engine.DecisionRecord] = []
    links = {link.local_id: link for link in SyncLink.objects.filter(connection=ctx.connection, kind=NOTES)}
    for account in ClientAccount.objects.filter(firm_id=ctx.connection.firm_id).order_by("pk"):
        link = links.get(account.pk) or SyncLink.objects.create(
            firm_id=ctx.connection.firm_id, connection=ctx.connection, kind=NOTES, local_id=account.pk
        )
        if link.batch_request_id or link.status in (SyncStatus.SKIPPED, SyncStatus.ERROR):
            continue
        ref = engine.dependency_ref(ctx, "customer", account.pk)
        if ref is None:
            if engine.mark_waiting(link, f"Waiting for the account “{account.name}” to be in QuickBooks."):
                decisions.append(
                    engine.DecisionRecord(
                        link, {"operation": "wait", "outcome": Outcome.INFO, "message": link.error_message}
                    )
                )
                ctx.cache["recorded_without_write"] = ctx.cache.get("recorded_without_write", 0) + 1
            continue
        token = link.qbo_sync_token if link.qbo_id == ref["value"] else ""
        if not token:
            token = SyncLink.objects.get(
                connection=ctx.connection, kind="customer", local_id=account.pk
            ).qbo_sync_token
        body = {
            "Id": ref["value"],
            "SyncToken": token,
            "sparse": True,
            "Notes": f"E-mail on file: {account.email}",
        }
        if engine.unchanged_since_push(link, body):
            continue
        link.op_seq += 1
        rid = engine.request_id_for(str(ctx.connection.realm_id), NOTES, account.pk, "update", link.op_seq)
        ops.append(
            engine.Op(
                link=link, operation="update", entity="Customer", body=body, request_id=rid, label="update"
            )
        )
    engine.save_decisions(ctx, decisions)
    return ops


def notes_success(ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
    engine.mark_linked(link, entity, now=ctx.now)


def notes_rejected(
    ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
) -> engine.Rejection:
    return engine.Rejection(error_kind="rejected", message=f"QuickBooks refused the notes: {err.message}")


@pytest.fixture
def notes_kind():
    kind = engine.register(
        engine.RecordKind(
            name=NOTES,
            entity="Customer",
            order=20,
            plan=plan_notes,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=("customer",),
        )
    )
    yield kind
    engine.unregister(NOTES)


def customer_in_qbo(sandbox, realm_id, qbo_id: str) -> dict[str, Any]:
    found = sandbox.read(realm_id, "Customer", qbo_id)
    assert found is not None
    return found


def updates_of(sandbox, realm_id) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(realm_id) if r["operation"] in ("batch", "update")]


def test_a_record_waits_for_its_dependency_with_a_message_naming_it(
    firm, conn, sandbox, realm_id, notes_kind
):
    good, bad = accounts(firm, "Notes Good Co", "Notes: Bad Name", email="books@example.com")
    run(conn)
    # Same round: the customer was created first, then its notes were written.
    customer = link_of(conn, good)
    assert customer.status == SyncStatus.SYNCED
    assert customer_in_qbo(sandbox, realm_id, customer.qbo_id)["Notes"] == "E-mail on file: books@example.com"
    assert notes_link(conn, good).status == SyncStatus.SYNCED
    # The account QBO cannot take (a colon in the name) is in Error; its notes wait, named.
    assert link_of(conn, bad).status == SyncStatus.ERROR
    waiting = notes_link(conn, bad)
    assert waiting.status == SyncStatus.NOT_SYNCED and not waiting.batch_request_id
    assert waiting.error_message == "Waiting for the account “Notes: Bad Name” to be in QuickBooks."
    rows = SyncAttempt.objects.filter(link=waiting).count()
    assert rows == 1
    # Waiting is not work: another run records nothing and sends nothing.
    before = len(updates_of(sandbox, realm_id))
    assert run(conn).reason == ""
    assert SyncAttempt.objects.filter(link=waiting).count() == rows
    assert len(updates_of(sandbox, realm_id)) == before


def test_an_unchanged_record_is_never_pushed_again_and_a_change_is_pushed_once(
    firm, conn, sandbox, realm_id, notes_kind
):
    (acct,) = accounts(firm, "Diff Co", email="old@example.com")
    run(conn)
    before = len(updates_of(sandbox, realm_id))
    for _ in range(3):
        run(conn)
    assert len(updates_of(sandbox, realm_id)) == before
    account_update(account=acct, name="Diff Co", email="new@example.com")
    run(conn)
    run(conn)
    assert len(updates_of(sandbox, realm_id)) == before + 1
    qbo_id = link_of(conn, acct).qbo_id
    assert customer_in_qbo(sandbox, realm_id, qbo_id)["Notes"] == "E-mail on file: new@example.com"
    assert SyncAttempt.objects.filter(link=notes_link(conn, acct), outcome="success").count() == 2


def test_a_stale_synctoken_is_re_read_and_the_update_sent_once_more(firm, conn, sandbox, realm_id):
    (acct,) = accounts(firm, "Stale Token Co", email="a@example.com")
    run(conn)  # the customer only: the notes kind is not registered yet
    customer = link_of(conn, acct)
    # Someone edits the customer in QuickBooks: its SyncToken moves on from the one we hold.
    QBOClient(conn).update(
        "Customer",
        {"Id": customer.qbo_id, "SyncToken": customer.qbo_sync_token, "CompanyName": "Edited In QBO"},
        request_id="edit-in-qbo-1",
    )
    engine.register(
        engine.RecordKind(
            name=NOTES,
            entity="Customer",
            order=20,
            plan=plan_notes,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=("customer",),
        )
    )
    try:
        run(conn)
    finally:
        engine.unregister(NOTES)
    link = notes_link(conn, acct)
    assert link.status == SyncStatus.SYNCED and not link.batch_request_id
    history = list(SyncAttempt.objects.filter(link=link).order_by("id").values_list("outcome", "fault_code"))
    assert history == [("retry", "5010"), ("success", "")]
    stored = customer_in_qbo(sandbox, realm_id, customer.qbo_id)
    assert (stored["Notes"], stored["CompanyName"]) == ("E-mail on file: a@example.com", "Edited In QBO")


def test_a_second_5010_is_an_error_not_a_loop(firm, conn, sandbox, realm_id, monkeypatch):
    (acct,) = accounts(firm, "Twice Stale Co", email="b@example.com")
    run(conn)
    customer = link_of(conn, acct)
    client = QBOClient(conn)
    client.update(
        "Customer", {"Id": customer.qbo_id, "SyncToken": "0", "CompanyName": "One"}, request_id="e-1"
    )
    original_read = QBOClient.read

    def read_then_edit_again(self, entity, entity_id):
        current = original_read(self, entity, entity_id)
        # Edited again between our re-read and our second send.
        client.update(
            "Customer",
            {"Id": entity_id, "SyncToken": current["SyncToken"], "CompanyName": "Two"},
            request_id=f"e-{current['SyncToken']}-2",
        )
        return current

    monkeypatch.setattr(QBOClient, "read", read_then_edit_again)
    engine.register(
        engine.RecordKind(
            name=NOTES,
            entity="Customer",
            order=20,
            plan=plan_notes,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=("customer",),
        )
    )
    try:
        run(conn)
        run(conn)
    finally:
        engine.unregister(NOTES)
    link = notes_link(conn, acct)
    assert link.status == SyncStatus.ERROR and link.error_code == "5010"
    history = list(SyncAttempt.objects.filter(link=link).order_by("id").values_list("outcome", "fault_code"))
    assert history == [("retry", "5010"), ("rejected", "5010")]


def test_a_replayed_write_goes_back_to_the_kind_that_planned_it(
    firm, conn, sandbox, realm_id, notes_kind, settings
):
    settings.QBO_TRANSIENT_RETRIES = 0
    (acct,) = accounts(firm, "Replay Kind Co", email="c@example.com")
    run(conn)
    account_update(account=acct, name="Replay Kind Co", email="d@example.com")
    sandbox.inject_fault(realm_id, "503", count=1, operation="batch")
    run(conn)
    link = notes_link(conn, acct)
    assert link.status == SyncStatus.SYNCING and link.pending_body["kind"] == NOTES
    make_due(conn)
    run(conn)
    assert notes_link(conn, acct).status == SyncStatus.SYNCED
    customer = link_of(conn, acct)
    assert customer.status == SyncStatus.SYNCED and customer.pushed_hash  # the customer kind's own
    assert customer_in_qbo(sandbox, realm_id, customer.qbo_id)["Notes"] == "E-mail on file: d@example.com"


def test_kinds_come_after_what_they_depend_on_and_refuse_a_circle():
    def nothing(ctx):
        return []

    def make(name, order, deps):
        return engine.RecordKind(
            name=name,
            entity="Invoice",
            order=order,
            plan=nothing,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=deps,
        )

    try:
        engine.register(make("t_refund", 1, ("t_payment",)))
        engine.register(make("t_payment", 2, ("t_invoice",)))
        engine.register(make("t_invoice", 3, ("customer",)))
        names = [k.name for k in engine.kinds()]
        assert (
            names.index("customer")
            < names.index("t_invoice")
            < names.index("t_payment")
            < names.index("t_refund")
        )
        engine.register(make("t_invoice", 3, ("t_refund",)))
        with pytest.raises(ValueError, match="circular"):
            engine.kinds()
    finally:
        for name in ("t_refund", "t_payment", "t_invoice"):
            engine.unregister(name)


def test_an_op_refuses_an_unknown_operation():
    with pytest.raises(ValueError, match="operation"):
        engine.Op(link=SyncLink(), operation="merge", entity="Customer", body={}, request_id="x")


def test_deletes_and_voids_go_in_reverse_dependency_order(firm, conn, sandbox, realm_id):
    """A payment kind depends on an invoice kind: creates go invoices first, undoing goes payments
    first. Here the dependent kind voids one invoice and the other deletes another; QBO gets the
    void's batch before the delete's."""
    (acct,) = accounts(firm, "Undo Order Co")
    run(conn)
    line = {
        "Amount": 100,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    customer_ref = {"value": link_of(conn, acct).qbo_id}
    to_delete, to_void = sandbox.bulk_insert(
        realm_id, "Invoice", [{"CustomerRef": customer_ref, "Line": [line]} for _ in range(2)]
    )

    def undo_kind(name: str, order: int, deps: tuple[str, ...], operation: str, invoice_id: str):
        def plan(ctx: engine.RunContext) -> list[engine.Op]:
            link, _ = SyncLink.objects.get_or_create(
                connection=ctx.connection,
                kind=name,
                local_id=acct.pk,
                defaults={"firm_id": ctx.connection.firm_id},
            )
            if link.status != SyncStatus.NOT_SYNCED or link.batch_request_id:
                return []
            rid = engine.request_id_for(str(ctx.connection.realm_id), name, acct.pk, operation, 1)
            body = {"Id": invoice_id, "SyncToken": "0"}
            return [engine.Op(link=link, operation=operation, entity="Invoice", body=body, request_id=rid)]

        return engine.RecordKind(
            name=name,
            entity="Invoice",
            order=order,
            plan=plan,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=deps,
        )

    # Registered in the "wrong" order on purpose: dependencies decide, not registration.
    engine.register(undo_kind("t_payments", 1, ("t_invoices",), "void", to_void))
    engine.register(undo_kind("t_invoices", 2, ("customer",), "delete", to_delete))
    try:
        before = len(sandbox.requests(realm_id))
        run(conn)
    finally:
        engine.unregister("t_payments")
        engine.unregister("t_invoices")
    batches = [r for r in sandbox.requests(realm_id)[before:] if r["operation"] == "batch"]
    assert [b["batch_items"] for b in batches] == [1, 1]
    void_rid = SyncLink.objects.get(connection=conn, kind="t_payments").request_id
    delete_rid = SyncLink.objects.get(connection=conn, kind="t_invoices").request_id
    assert [b["requestid"] for b in batches] == [
        engine.batch_request_id_for(realm_id, [void_rid]),
        engine.batch_request_id_for(realm_id, [delete_rid]),
    ]
    assert sandbox.read(realm_id, "Invoice", to_delete) is None
    voided = sandbox.read(realm_id, "Invoice", to_void)
    assert voided is not None and float(voided["TotalAmt"]) == 0.0
    assert set(
        SyncLink.objects.filter(kind__in=["t_payments", "t_invoices"]).values_list("status", flat=True)
    ) == {SyncStatus.SYNCED}


@pytest.mark.parametrize("path", ["batch", "alone"])
def test_a_writes_options_are_stored_and_sent_both_ways(firm, conn, sandbox, realm_id, settings, path):
    """An invoice kind may need "allowduplicatedocnumber": optionsData in a batch, `include=` when
    the write goes alone (after its batch item faulted). Without it QBO answers 6140."""
    from tests.quickbooks.batch_faults import batch_item_faults

    settings.QBO_TRANSIENT_RETRIES = 0
    (acct,) = accounts(firm, "Doc Number Co")
    run(conn)
    line = {
        "Amount": 50,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    customer_ref = {"value": link_of(conn, acct).qbo_id}
    sandbox.bulk_insert(
        realm_id, "Invoice", [{"CustomerRef": customer_ref, "Line": [line], "DocNumber": "INV-7"}]
    )

    def plan(ctx: engine.RunContext) -> list[engine.Op]:
        link, _ = SyncLink.objects.get_or_create(
            connection=ctx.connection,
            kind="t_invoice",
            local_id=acct.pk,
            defaults={"firm_id": ctx.connection.firm_id},
        )
        if link.status != SyncStatus.NOT_SYNCED or link.batch_request_id:
            return []
        body = {"CustomerRef": customer_ref, "Line": [line], "DocNumber": "INV-7"}
        rid = engine.request_id_for(str(ctx.connection.realm_id), "t_invoice", acct.pk, "create", 1)
        return [
            engine.Op(
                link=link,
                operation="create",
                entity="Invoice",
                body=body,
                request_id=rid,
                options="allowduplicatedocnumber",
            )
        ]

    engine.register(
        engine.RecordKind(
            name="t_invoice",
            entity="Invoice",
            order=30,
            plan=plan,
            on_success=notes_success,
            on_rejected=notes_rejected,
            depends_on=("customer",),
        )
    )
    try:
        if path == "batch":
            run(conn)
        else:
            with batch_item_faults(sandbox.url) as proxy:
                settings.QBO_API_BASE_URL = proxy.url
                proxy.fault_next_batch("fault_not_run", "b0")
                run(conn)
                link = SyncLink.objects.get(connection=conn, kind="t_invoice")
                assert (
                    link.pending_body["alone"] and link.pending_body["options"] == "allowduplicatedocnumber"
                )
                make_due(conn)
                run(conn)
    finally:
        engine.unregister("t_invoice")
    link = SyncLink.objects.get(connection=conn, kind="t_invoice")
    assert link.status == SyncStatus.SYNCED and link.qbo_id
    numbered = sandbox.query(realm_id, "SELECT * FROM Invoice WHERE DocNumber = 'INV-7'")["Invoice"]
    assert len(numbered) == 2
