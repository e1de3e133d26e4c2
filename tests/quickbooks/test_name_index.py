"""The realm's name index kept between runs (issue 13 item 7, sync/kinds/names.py), through the
real sandbox over HTTP: the first run reads the lists whole and stores them, later runs ask QBO
for the customers changed since (one query) and decide from the rows their accounts' names could
match, with the same decisions as a full read; what QBO changes (a new or renamed customer, one
made inactive, merged, a new vendor) reaches the index; and deciding one account costs the same
SQL statements in a realm of 50 names as in one of 2,000."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from practice.clients.services import account_create
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection, RealmName, RealmSyncState
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import cdc, engine
from practice.quickbooks.sync.kinds import names
from practice.quickbooks.sync.kinds.matching import NameIndex, QBOName, customer_from_qbo, decide
from tests.quickbooks.sync_support import link_of, run, set_up


@pytest.fixture
def conn(connection):
    return set_up(connection)


def someone(conn) -> QBOClient:
    """Another QuickBooks user working in the same company (not the app's engine)."""
    return QBOClient(Connection.objects.get(pk=conn.pk))


def rid() -> str:
    return uuid.uuid4().hex


def edit(conn, entity: str, qbo_id: str, **fields: Any) -> dict[str, Any]:
    client = someone(conn)
    current = client.read(entity, qbo_id)
    return client.update(
        entity, {"Id": qbo_id, "SyncToken": current["SyncToken"], **fields}, request_id=rid(), sparse=True
    )


def qbo_ids(sandbox, realm_id: str, entity: str) -> set[str]:
    found = sandbox.query(realm_id, f"SELECT * FROM {entity} WHERE Active IN (true, false) MAXRESULTS 1000")
    return {str(body["Id"]) for body in found.get(entity, [])}


def stored(conn, entity: str) -> dict[str, RealmName]:
    return {row.qbo_id: row for row in RealmName.objects.filter(connection=conn, entity=entity)}


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every query statement the app sends (the client's own method, still over HTTP: the
    sandbox's log has the request, not the statement in its body)."""
    sent: list[str] = []
    real = QBOClient.query

    def query(self: QBOClient, statement: str, **kw: Any) -> dict[str, Any]:
        sent.append(statement)
        return real(self, statement, **kw)

    monkeypatch.setattr(QBOClient, "query", query)
    return sent


class Calls:
    """The app's requests to the realm from here on: each one's operation from the sandbox's own
    log, and for a query the entity its statement reads."""

    def __init__(self, sandbox, realm_id: str, statements: list[str]) -> None:
        self.sandbox, self.realm_id, self.statements = sandbox, realm_id, statements
        self.start = len(sandbox.requests(realm_id))
        self.first = len(statements)

    def since(self) -> list[tuple[str, str]]:
        sent = iter(self.statements[self.first :])
        made = []
        for entry in self.sandbox.requests(self.realm_id)[self.start :]:
            if entry["operation"] == "query":
                statement = next(sent)
                made.append(("query", statement.split(" FROM ")[1].split()[0]))
            else:
                made.append((entry["operation"], entry["entity"] or ""))
        return made

    def queries(self) -> list[str]:
        return self.statements[self.first :]


def full_index(conn) -> NameIndex:
    """What the engine decided with before names.py: the realm's three lists read whole."""
    client = someone(conn)
    customers = [customer_from_qbo(c) for c in client.query_all("Customer", "Active IN (true, false)")]
    others = [
        QBOName(
            id=str(b["Id"]), name=str(b["DisplayName"]), entity=entity, active=bool(b.get("Active", True))
        )
        for entity in ("Vendor", "Employee")
        for b in client.query_all(entity, "Active IN (true, false)")
    ]
    return NameIndex.build(customers, others)


def context(conn) -> engine.RunContext:
    conn = Connection.objects.get(pk=conn.pk)
    return engine.RunContext(connection=conn, client=QBOClient(conn), owner="test", now=timezone.now())


def shape(result) -> tuple[Any, ...]:
    """A decision as the account shows it (the stored index holds no e-mail or company name)."""
    return (
        result.decision,
        result.customer.id if result.customer else None,
        [(c.id, c.entity, c.active) for c in result.candidates],
        result.message,
    )


# --------------------------------------------------------------------------------------------


def test_first_run_reads_the_lists_whole_and_stores_them(firm, conn, sandbox, realm_id, statements):
    account = account_create(firm=firm, name="Amy's Bird Sanctuary")
    calls = Calls(sandbox, realm_id, statements)

    run(conn)

    assert link_of(conn, account).status == SyncStatus.SYNCED
    assert calls.since() == [
        ("query", "Vendor"),
        ("query", "Employee"),
        ("query", "Customer"),
    ]
    for entity in ("Customer", "Vendor", "Employee"):
        assert set(stored(conn, entity)) == qbo_ids(sandbox, realm_id, entity)
    pyes = stored(conn, "Customer")["15"]
    assert (pyes.name, pyes.normalized, pyes.loose, pyes.active) == (
        "Pye's Cakes",
        "pye's cakes",
        "pyescakes",
        True,
    )
    state = RealmSyncState.objects.get(connection=conn)
    # QBO's time of the answer (the sandbox's clock is the machine's), not left empty.
    assert state.names_read_at is not None and state.others_read_at is not None
    assert abs(state.names_read_at - timezone.now()) < datetime.timedelta(seconds=30)


def test_later_run_makes_one_read_and_decides_as_a_full_read_would(firm, conn, sandbox, realm_id, statements):
    _harbor, twin = sandbox.bulk_insert(
        realm_id,
        "Customer",
        # A near match of "55 Twin Lane" (Id 9) with a longer Id: candidates in QBO's order
        # (by Id as a number, not as text).
        [{"DisplayName": "Harbor Dental Group", "Active": False}, {"DisplayName": "55 Twin Lane LLC"}],
    )
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    accts = {
        name: account_create(firm=firm, name=name)
        for name in (
            "KOOKIES by kathy",
            "Pyes Cakes",
            "Books by Bessie",
            "Emily Platt",
            "Harbor Dental Group",
        )
    }
    calls = Calls(sandbox, realm_id, statements)

    run(conn)

    assert calls.since() == [("query", "Customer")]
    (refresh,) = calls.queries()
    assert "WHERE MetaData.LastUpdatedTime >= '" in refresh and "Active IN (true, false)" in refresh
    kinds = {name: (link_of(conn, a).status, link_of(conn, a).error_kind) for name, a in accts.items()}
    assert kinds == {
        "KOOKIES by kathy": (SyncStatus.SYNCED, ""),
        "Pyes Cakes": (SyncStatus.ERROR, "near_match"),
        "Books by Bessie": (SyncStatus.ERROR, "vendor_clash"),
        "Emily Platt": (SyncStatus.ERROR, "employee_clash"),
        "Harbor Dental Group": (SyncStatus.ERROR, "inactive_match"),
    }
    assert link_of(conn, accts["KOOKIES by kathy"]).qbo_id == "16"

    # Every name of the realm, and variants of it, decided from the stored rows loaded for just
    # those names and from a fresh full read: the same decisions, candidates in the same order.
    full = full_index(conn)
    realm_names = [c.name for items in full.exact.values() for c in items]
    realm_names += [o.name for items in full.others.values() for o in items]
    asked = [*realm_names, "Brand New Client", "  pye's   CAKES ", "Barnett Design LLC", "Diego Rodríguez"]
    asked += ["55 Twin Lane, Ltd."]
    asked += [n.upper() for n in realm_names] + [n.replace("'", "") + " Inc." for n in realm_names]
    index = names.index_for(context(conn), asked)
    assert [c.id for c in decide("55 Twin Lane, Ltd.", index).candidates] == ["9", twin]
    taken = {"1", "16"}
    for name in asked:
        assert shape(decide(name, index, taken_ids=taken)) == shape(decide(name, full, taken_ids=taken)), name
    # The loaded index holds only what these names can match, not the realm.
    small = names.index_for(context(conn), ["Pyes Cakes"])
    assert {c.id for items in small.exact.values() for c in items} <= {"15"}
    assert [c.id for c in small.loose["pyescakes"]] == ["15"]


def test_customer_added_or_renamed_in_qbo_is_seen_by_the_next_run(firm, conn, sandbox, realm_id, statements):
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    added = someone(conn).create("Customer", {"DisplayName": "Quayside Books Ltd"}, request_id=rid())["Id"]
    edit(conn, "Customer", "12", DisplayName="Northwind Traders, Inc.")  # was "Jeff's Jalopies"
    near_new = account_create(firm=firm, name="Quayside Books")
    near_renamed = account_create(firm=firm, name="Northwind Traders")
    calls = Calls(sandbox, realm_id, statements)

    result = run(conn)

    assert calls.since() == [("query", "Customer")]
    assert result.summary["names.refreshed"] == 2  # those two: not the realm's 30 customers
    for account, qbo_id in ((near_new, added), (near_renamed, "12")):
        link = link_of(conn, account)
        assert (link.status, link.error_kind) == (SyncStatus.ERROR, "near_match")
        assert [c["id"] for c in link.candidates] == [qbo_id]
    rows = stored(conn, "Customer")
    assert rows["12"].name == "Northwind Traders, Inc." and rows["12"].loose == "northwindtraders"
    assert not RealmName.objects.filter(connection=conn, normalized="jeff's jalopies").exists()


def test_customer_made_inactive_in_qbo_is_an_inactive_match(firm, conn, sandbox, realm_id):
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    assert stored(conn, "Customer")["14"].active is True
    edit(conn, "Customer", "14", Active=False)  # Kate Whelan (no balance: QBO allows it)
    account = account_create(firm=firm, name="Kate Whelan")

    run(conn)

    link = link_of(conn, account)
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "inactive_match")
    assert [c["id"] for c in link.candidates] == ["14"]
    assert stored(conn, "Customer")["14"].active is False


def test_merged_away_customer_leaves_the_index(firm, conn, sandbox, realm_id):
    """A merge is not a change a query can see (QBO removes the customer merged away); the CDC
    sweep sees it as deleted, so its name no longer matches and the survivor's does."""
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    assert cdc.sweep_connection(conn.pk).reason == "started"
    sandbox.merge(realm_id, "Customer", "25", "27")  # Sushi by Katsuyuki into Video Games by Dan
    assert "25" in stored(conn, "Customer")

    assert cdc.sweep_connection(conn.pk).reason == "swept"

    assert "25" not in stored(conn, "Customer") and "25" not in qbo_ids(sandbox, realm_id, "Customer")
    sushi = account_create(firm=firm, name="Sushi by Katsuyuki")
    run(conn)
    link = link_of(conn, sushi)
    # Its name is free again in QBO: created, not linked to the customer that is gone.
    assert link.status == SyncStatus.SYNCED and link.qbo_id not in ("25", "27")


def test_linked_customer_merged_away_is_removed_by_the_drift_check(firm, conn, sandbox, realm_id):
    account = account_create(firm=firm, name="Cool Cars")
    run(conn)
    assert link_of(conn, account).qbo_id == "3"
    sandbox.merge(realm_id, "Customer", "3", "7")  # into Freeman Sporting Goods
    assert "3" in stored(conn, "Customer")
    from practice.quickbooks.models import ChangeNotice
    from practice.quickbooks.sync import drift

    ChangeNotice.objects.create(
        connection=conn,
        entity="Customer",
        entity_id="3",
        operation="Update",
        source="webhook",
        dedupe_key="gone-3",
    )
    drift.apply_change_notices(conn.pk)

    assert link_of(conn, account).error_kind == "customer_gone"
    assert "3" not in stored(conn, "Customer")


def test_cdc_sweep_keeps_vendors_and_employees(firm, conn, sandbox, realm_id, statements):
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    assert cdc.sweep_connection(conn.pk).reason == "started"
    before = RealmSyncState.objects.get(connection=conn)
    vendor = someone(conn).create("Vendor", {"DisplayName": "Coastal Supplies"}, request_id=rid())["Id"]
    edit(conn, "Employee", "54", Active=False)  # John Johnson

    start = len(sandbox.requests(realm_id))
    assert cdc.sweep_connection(conn.pk).reason == "swept"
    (asked,) = sandbox.requests(realm_id)[start:]
    assert asked["operation"] == "cdc" and "Vendor%2CEmployee" in asked["query"]

    assert stored(conn, "Vendor")[vendor].name == "Coastal Supplies"
    assert stored(conn, "Employee")["54"].active is False
    after = RealmSyncState.objects.get(connection=conn)
    assert after.others_read_at > before.others_read_at and after.names_read_at > before.names_read_at
    account = account_create(firm=firm, name="Coastal Supplies")
    calls = Calls(sandbox, realm_id, statements)
    run(conn)
    assert calls.since() == [("query", "Customer")]
    link = link_of(conn, account)
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "vendor_clash")
    assert link.candidates == [{"id": vendor, "name": "Coastal Supplies", "active": True, "entity": "Vendor"}]


def test_vendor_added_since_the_last_sweep_is_looked_up_after_6240(firm, conn, sandbox, realm_id):
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    vendor = someone(conn).create("Vendor", {"DisplayName": "Harbor Freight Lines"}, request_id=rid())["Id"]
    account = account_create(firm=firm, name="Harbor Freight Lines")

    run(conn)  # decided "create" (the index has not seen the vendor); QBO refuses it with 6240

    link = link_of(conn, account)
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "vendor_clash")
    assert stored(conn, "Vendor")[vendor].name == "Harbor Freight Lines"


def test_created_customer_is_stored(firm, conn, sandbox, realm_id, django_capture_on_commit_callbacks):
    account = account_create(firm=firm, name="Brand New Client")
    with django_capture_on_commit_callbacks(execute=True):
        run(conn)
    link = link_of(conn, account)
    assert link.status == SyncStatus.SYNCED
    row = stored(conn, "Customer")[link.qbo_id]
    assert (row.name, row.active, row.sync_token) == ("Brand New Client", True, link.qbo_sync_token)


def test_lists_older_than_29_days_are_read_whole_again(firm, conn, sandbox, realm_id, statements):
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)
    RealmName.objects.create(
        connection=conn, entity="Customer", qbo_id="999", name="Ghost", normalized="ghost"
    )
    month_ago = timezone.now() - datetime.timedelta(days=30)
    RealmSyncState.objects.filter(connection=conn).update(names_read_at=month_ago)
    account_create(firm=firm, name="Pyes Cakes")
    calls = Calls(sandbox, realm_id, statements)

    run(conn)

    assert calls.since() == [("query", "Customer")]
    assert set(stored(conn, "Customer")) == qbo_ids(sandbox, realm_id, "Customer")  # the ghost is gone
    assert RealmSyncState.objects.get(connection=conn).names_read_at > month_ago


def _fill(conn, start: int, count: int) -> None:
    RealmName.objects.bulk_create(
        RealmName(
            connection=conn,
            entity="Customer",
            qbo_id=str(10_000 + i),
            name=f"Filler Client {i:05d}",
            normalized=f"filler client {i:05d}",
            loose=f"fillerclient{i:05d}",
        )
        for i in range(start, start + count)
    )


def test_statements_to_decide_one_account_do_not_grow_with_the_realm(
    firm, conn, sandbox, realm_id, statements, settings
):
    # A lease renewal is one more statement when a run takes a sixth of the lease (a loaded box):
    # a long lease keeps the counts about the names alone.
    settings.QBO_LEASE_SECONDS = 3600
    account_create(firm=firm, name="Amy's Bird Sanctuary")
    run(conn)  # the first run reads the lists whole

    counts = []
    for name, rows in (("Pyes Cakes", 50), ("Rondonuwu Fruit & Vegi", 1_950)):
        _fill(conn, RealmName.objects.filter(connection=conn, name__startswith="Filler").count(), rows)
        account = account_create(firm=firm, name=name)
        calls = Calls(sandbox, realm_id, statements)
        with CaptureQueriesContext(db_connection) as sql:
            run(conn)
        assert link_of(conn, account).error_kind == "near_match"
        assert calls.since() == [("query", "Customer")]
        counts.append(len(sql.captured_queries))
        # And the rows read are only those the name could match: every read of the stored names
        # is keyed by the name's exact or near key (a load of the whole realm is one statement
        # too, so the count alone would not show it).
        reads = [
            q["sql"] for q in sql.captured_queries if "quickbooks_realmname" in q["sql"].split(" WHERE ")[0]
        ]
        reads = [q for q in reads if q.lstrip().upper().startswith("SELECT") and '"qbo_id" IN' not in q]
        assert reads and all('"normalized" IN' in q and '"loose" IN' in q for q in reads), reads
    assert RealmName.objects.filter(connection=conn, name__startswith="Filler").count() == 2_000
    assert counts[0] == counts[1], counts
