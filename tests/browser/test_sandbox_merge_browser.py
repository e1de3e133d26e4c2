"""The sandbox's customer page and its "Merge into…" form in Chromium: merged by keyboard alone,
and axe-core finds no WCAG 2 A/AA violation on the form, the survivor's page with its notice, the
merged-away customer's page and a refused merge (issue 16 item 4)."""

from __future__ import annotations

import pytest

from tests.browser.axe import axe_violations
from tests.browser.conftest import expect


@pytest.fixture
def sandbox_page(pw_browser):
    context = pw_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_merge_customer_by_keyboard(browser_sandbox, sandbox_page) -> None:
    server = browser_sandbox
    realm = server.create_realm(name="Merge Browser Co")
    loser, keep, other = server.bulk_insert(
        realm,
        "Customer",
        [{"DisplayName": "Pyes Cakes"}, {"DisplayName": "Pye's Cakes"}, {"DisplayName": "Zed's Bakery"}],
    )
    page = sandbox_page
    page.goto(f"{server.url}/app/customerdetail?nameId={loser}&realmId={realm}")
    expect()(page.get_by_role("heading", name="Merge into another customer")).to_be_visible()
    assert axe_violations(page) == []

    # Submitting without a choice: the browser keeps the form (the select is required).
    select = page.get_by_label("Merge into…")
    select.focus()
    page.keyboard.press("Tab")
    expect()(page.get_by_role("button", name="Merge")).to_be_focused()
    page.keyboard.press("Enter")
    expect()(page).to_have_url(f"{server.url}/app/customerdetail?nameId={loser}&realmId={realm}")

    select.focus()
    select.select_option(keep)  # what arrow keys on the focused select do
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect()(page).to_have_url(
        f"{server.url}/app/customerdetail?nameId={keep}&realmId={realm}&merged={loser}"
    )
    expect()(page.get_by_role("status")).to_contain_text(f"Customer {loser} was merged into this customer")
    expect()(page.get_by_role("heading", level=1)).to_have_text("Pye's Cakes")
    assert axe_violations(page) == []
    assert server.read(realm, "Customer", loser) is None

    page.goto(f"{server.url}/app/customerdetail?nameId={loser}&realmId={realm}")
    expect()(page.get_by_role("heading", level=1)).to_have_text("Customer merged")
    assert axe_violations(page) == []
    page.get_by_role("link", name="Pye's Cakes").click()
    expect()(page.get_by_role("heading", level=1)).to_have_text("Pye's Cakes")

    # A refusal is announced next to the form: the other customer made inactive meanwhile.
    page.goto(f"{server.url}/app/customerdetail?nameId={keep}&realmId={realm}")
    tokens = server.issue_tokens(realm)
    with server.api(realm, tokens["access_token"]) as api:
        off = api.post("/customer", json={"Id": other, "SyncToken": "0", "sparse": True, "Active": False})
        assert off.status_code == 200, off.text
    page.get_by_label("Merge into…").select_option(other)
    page.get_by_role("button", name="Merge").click()
    expect()(page.get_by_role("alert")).to_have_text(
        f"Not merged: Customer {other} is inactive; make it active before merging into it."
    )
    assert axe_violations(page) == []


def test_make_inactive_by_keyboard(browser_sandbox, sandbox_page) -> None:
    """The issue's demo: a customer made inactive in the sandbox's own pages."""
    server = browser_sandbox
    realm = server.create_realm(name="Inactive Browser Co")
    (cust,) = server.bulk_insert(realm, "Customer", [{"DisplayName": "Dormant Dental"}])
    page = sandbox_page
    page.goto(f"{server.url}/app/customerdetail?nameId={cust}&realmId={realm}")
    button = page.get_by_role("button", name="Make inactive")
    button.focus()
    page.keyboard.press("Enter")
    expect()(page.get_by_role("status")).to_have_text("This customer is now inactive.")
    assert server.read(realm, "Customer", cust)["Active"] is False
    assert axe_violations(page) == []
    page.get_by_role("button", name="Make active").press("Enter")
    expect()(page.get_by_role("status")).to_have_text("This customer is now active.")
    assert server.read(realm, "Customer", cust)["Active"] is True
