"""The demo story: the 50 demo accounts against the seeded sandbox company give a realistic mix."""

from __future__ import annotations

from practice.billing.demo import DEMO_ACCOUNT_NAMES, demo_seed
from practice.clients.models import ClientAccount
from practice.quickbooks.demo.seed import seed_demo_company
from practice.quickbooks.models import SyncLink
from tests.quickbooks.conftest import connect_firm
from tests.quickbooks.sync_support import qbo_customers, run, set_up


def test_demo_mix(db, sandbox, realm_id):
    firm = demo_seed().firm
    seed_demo_company(realm_id, sandbox.url)
    seed_demo_company(realm_id, sandbox.url)  # idempotent
    conn = set_up(connect_firm(firm, realm_id, sandbox), scope="with_activity")
    assert run(conn).ran
    by_name = {a.name: a.pk for a in ClientAccount.objects.filter(firm=firm)}
    links = {link.local_id: link for link in SyncLink.objects.filter(connection=conn, kind="customer")}

    def status(name):
        link = links.get(by_name[name])
        return (link.status, link.error_kind) if link else ("not_synced", "")

    assert status("Amy's Bird Sanctuary") == ("synced", "")
    assert status("KOOKIES BY KATHY") == ("synced", "")
    rago = next(n for n in by_name if "Rago" in n)
    assert status(rago) == ("synced", "")
    assert status("Pyes Cakes") == ("error", "near_match")
    assert status("Rondonuwu Fruit & Vegi") == ("error", "near_match")
    assert status("Diego Rodríguez")[1] in ("near_match", "")  # may have no billing in the demo
    assert status("Barnett Design LLC") == ("error", "near_match")
    assert status("Books by Bessie") == ("error", "vendor_clash")
    assert status("Hicks Hardware") == ("error", "vendor_clash")
    assert status("Sonnenschein Family Store") == ("error", "inactive_match")
    assert status("Harbor Dental Group") == ("error", "inactive_match")
    assert status("Wedding Planning by Whitney") == ("skipped", "")
    counts: dict[str, int] = {}
    for name in by_name:
        s = status(name)[0]
        counts[s] = counts.get(s, 0) + 1
    assert sum(counts.values()) == len(DEMO_ACCOUNT_NAMES)
    assert counts.get("synced", 0) >= 20 and counts.get("error", 0) >= 8 and counts.get("not_synced", 0) >= 1
    created = [n for n in ("Alvarez Family Trust", "Northwind Traders") if status(n)[0] == "synced"]
    for name in created:
        assert len(qbo_customers(conn, name)) == 1
    assert qbo_customers(conn, "Pyes Cakes") == []
