"""The "service" record kind against qbo_sandbox over HTTP: services become QBO Items of type
Service, matched by name or created with the right income account; renames and archiving are
pushed as sparse updates; clashes with other item types and unknown income accounts are Errors
in words; a second run sends nothing."""

from __future__ import annotations

import pytest

from practice.billing.services import service_archive, service_create, service_update
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import run, set_up, set_up_for_billing


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


def slink(connection, service) -> SyncLink:
    return SyncLink.objects.get(connection=connection, kind="service", local_id=service.pk)


def writes(sandbox, realm_id) -> list[dict]:
    return [e for e in sandbox.requests(realm_id) if e["operation"] in ("create", "update", "batch")]


def test_match_by_name_and_create_with_every_field(conn, firm, sandbox, realm_id):
    design = service_create(firm=firm, name="  design ", rate="80.00")
    tax = service_create(
        firm=firm, name="Tax preparation", rate="150.00", description="Annual return", taxable=True
    )
    plain = service_create(firm=firm, name="Bookkeeping", rate="60.50")
    run(conn)

    matched = slink(conn, design)
    assert (matched.status, matched.qbo_id) == (SyncStatus.SYNCED, "4")  # the sample's "Design"
    assert SyncAttempt.objects.get(link=matched).operation == "match"

    created = slink(conn, tax)
    assert created.status == SyncStatus.SYNCED
    item = sandbox.read(realm_id, "Item", created.qbo_id)
    assert item["Name"] == "Tax preparation"
    assert item["Type"] == "Service"
    assert item["IncomeAccountRef"]["value"] == "1"
    assert item["Taxable"] is True
    assert item["UnitPrice"] == 150.0
    assert item["Description"] == "Annual return"
    assert item["Active"] is True
    other = sandbox.read(realm_id, "Item", slink(conn, plain).qbo_id)
    assert other["Taxable"] is False and other["UnitPrice"] == 60.5 and "Description" not in other

    before = len(writes(sandbox, realm_id))
    run(conn)
    assert len(writes(sandbox, realm_id)) == before  # nothing to send the second time


def test_rename_and_archive_are_sparse_updates(conn, firm, sandbox, realm_id):
    service = service_create(firm=firm, name="Payroll", rate="40.00")
    never = service_create(firm=firm, name="Old thing", rate="1.00")
    service_archive(service=never)
    run(conn)
    assert not SyncLink.objects.filter(connection=conn, kind="service", local_id=never.pk).exclude(qbo_id="")
    link = slink(conn, service)
    token = sandbox.read(realm_id, "Item", link.qbo_id)["SyncToken"]

    service_update(service=service, name="Payroll services", rate="45.00")
    run(conn)
    item = sandbox.read(realm_id, "Item", link.qbo_id)
    assert item["Name"] == "Payroll services"
    assert int(item["SyncToken"]) == int(token) + 1
    assert item["UnitPrice"] == 40.0  # only the name is kept in step

    service_archive(service=service)
    run(conn)
    item = sandbox.read(realm_id, "Item", link.qbo_id)
    assert item["Active"] is False
    assert slink(conn, service).status == SyncStatus.SYNCED
    ops = list(SyncAttempt.objects.filter(link=link).order_by("id").values_list("operation", flat=True))
    assert ops == ["create_item", "update_item", "deactivate_item"]

    service_archive(service=service, archived=False)
    run(conn)
    assert sandbox.read(realm_id, "Item", link.qbo_id)["Active"] is True


def test_name_of_another_item_type_is_an_error_until_renamed(conn, firm, sandbox, realm_id):
    service = service_create(firm=firm, name="Pump", rate="10.00")  # an Inventory item in the sample
    run(conn)
    link = slink(conn, service)
    assert link.status == SyncStatus.ERROR and link.error_kind == "type_clash"
    assert "type Inventory" in link.error_message and "Rename the service" in link.error_message
    run(conn)
    assert SyncAttempt.objects.filter(link=link).count() == 1  # not decided again unchanged

    service_update(service=service, name="Pump servicing", rate="10.00")
    run(conn)
    link = slink(conn, service)
    assert link.status == SyncStatus.SYNCED
    assert sandbox.read(realm_id, "Item", link.qbo_id)["Name"] == "Pump servicing"


def test_income_account_override(conn, firm, sandbox, realm_id):
    good = service_create(firm=firm, name="Garden design", rate="1.00", income_account_name="design income")
    bad = service_create(firm=firm, name="Audit", rate="1.00", income_account_name="Audit fees")
    run(conn)
    item = sandbox.read(realm_id, "Item", slink(conn, good).qbo_id)
    assert item["IncomeAccountRef"]["value"] == "82"  # "Design income"
    link = slink(conn, bad)
    assert link.status == SyncStatus.ERROR and link.error_kind == "unknown_account"
    assert "“Audit fees”" in link.error_message

    service_update(service=bad, name="Audit", rate="1.00", income_account_name="Fees Billed")
    run(conn)
    link = slink(conn, bad)
    assert link.status == SyncStatus.SYNCED
    assert sandbox.read(realm_id, "Item", link.qbo_id)["IncomeAccountRef"]["value"] == "5"


def test_no_income_account_chosen(connection, firm):
    conn = set_up(connection)
    service = service_create(firm=firm, name="Consulting", rate="1.00")
    run(conn)
    link = slink(conn, service)
    assert link.status == SyncStatus.ERROR and link.error_kind == "no_income_account"
    assert "QuickBooks settings" in link.error_message


def test_unanswered_create_is_found_by_name(conn, firm, sandbox, realm_id):
    from tests.quickbooks.sync_support import make_due

    made = [service_create(firm=firm, name=f"Service {i}", rate="1.00") for i in range(3)]
    sandbox.inject_batch_item_fault(realm_id, "item_unanswered", item=2, committed=True, entity="Item")
    run(conn)
    make_due(conn)
    run(conn)
    from practice.quickbooks.connection.client import QBOClient

    for service in made:
        link = slink(conn, service)
        assert link.status == SyncStatus.SYNCED
        found = list(QBOClient(conn).query_all("Item", f"Name = '{service.name}'"))
        assert [i["Id"] for i in found] == [link.qbo_id]
