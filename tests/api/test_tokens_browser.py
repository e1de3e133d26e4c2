"""The profile page's API tokens section in a real browser: keyboard only, every control named,
the new secret announced in a status region and gone after a reload, revoke by its named button."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from practice.api.models import ApiToken
from tests.clients import test_browser as browser_setup

chromium = browser_setup.chromium
signed_in = browser_setup.signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every interactive element must have an accessible name, and form fields a <label> (the same
# rules the app's other pages follow: visible labels, named buttons, one h1, ids unique).
A11Y_PROBLEMS = """
() => {
  const problems = [];
  const ids = {};
  for (const el of document.querySelectorAll('[id]')) {
    if (ids[el.id]) problems.push('duplicate id ' + el.id);
    ids[el.id] = true;
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label');
    if (!labelled) problems.push('unlabelled ' + (el.id || el.name));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    const name = (el.getAttribute('aria-label') || el.textContent || el.title || '').trim();
    if (!name) problems.push('unnamed ' + el.outerHTML.slice(0, 80));
  }
  if (document.querySelectorAll('h1').length !== 1) problems.push('h1 count');
  for (const el of document.querySelectorAll('[aria-describedby]')) {
    if (!document.getElementById(el.getAttribute('aria-describedby'))) problems.push('dangling describedby');
  }
  if (!document.documentElement.lang) problems.push('no lang');
  return problems;
}
"""


def test_create_and_revoke_a_token_by_keyboard(signed_in, live_server):
    pg = signed_in
    pg.goto(live_server.url + "/settings/profile/")
    assert pg.evaluate(A11Y_PROBLEMS) == []
    # An empty name: the error is tied to the field.
    pg.get_by_label("New token name").focus()
    pg.keyboard.press("Enter")
    # Enter submits the form and the page comes back with the error; wait for that page (a bare
    # get_attribute read the old page while the POST was still in flight, once in CI).
    field = pg.get_by_label("New token name")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert pg.evaluate(A11Y_PROBLEMS) == []
    field.fill("Zapier")
    field.press("Enter")
    status = pg.get_by_role("status").filter(has_text="shown only this once")
    secret = status.get_by_label("Your new token").input_value()
    assert secret.startswith("pat_")
    assert pg.evaluate(A11Y_PROBLEMS) == []
    pg.goto(live_server.url + "/settings/profile/")
    assert secret not in pg.content()
    pg.get_by_role("button", name="Revoke token Zapier").focus()
    pg.keyboard.press("Enter")
    pg.wait_for_selector("text=The token was revoked")
    assert ApiToken.objects.get(name="Zapier").revoked_at is not None
    assert pg.evaluate(A11Y_PROBLEMS) == []
