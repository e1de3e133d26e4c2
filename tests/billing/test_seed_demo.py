from __future__ import annotations

from io import StringIO

from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from practice.billing import selectors
from practice.billing.demo import DEMO_ACCOUNT_NAMES, DEMO_FIRM_NAME, NO_BILLING_ACCOUNT_NAMES
from practice.billing.models import Invoice, InvoiceState, Payment, Refund, Service
from practice.clients.models import ClientAccount
from practice.firms.models import Firm, Membership

EXPECTED = {"accounts": 50, "services": 6, "invoices": 58, "payments": 36, "refunds": 1}


def counts(firm) -> dict[str, int]:
    return {
        "accounts": ClientAccount.objects.filter(firm=firm).count(),
        "services": Service.objects.filter(firm=firm).count(),
        "invoices": Invoice.objects.filter(firm=firm).count(),
        "payments": Payment.objects.filter(firm=firm).count(),
        "refunds": Refund.objects.filter(firm=firm).count(),
    }


def run(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_demo_account_names_are_exact():
    assert len(DEMO_ACCOUNT_NAMES) == 50 == len(set(DEMO_ACCOUNT_NAMES))
    assert "  Rago  Travel agency" in DEMO_ACCOUNT_NAMES
    assert "Gevelber  Photography" in DEMO_ACCOUNT_NAMES
    assert set(NO_BILLING_ACCOUNT_NAMES) <= set(DEMO_ACCOUNT_NAMES)
    assert len(NO_BILLING_ACCOUNT_NAMES) == 7


def test_seed_demo_is_idempotent_and_exact(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert "Created" in run()
    firm = Firm.objects.get(name=DEMO_FIRM_NAME)
    assert counts(firm) == EXPECTED
    assert list(ClientAccount.objects.filter(firm=firm).order_by("id").values_list("name", flat=True)) == (
        DEMO_ACCOUNT_NAMES
    )
    roles = dict(Membership.objects.filter(firm=firm).values_list("user__email", "role"))
    assert roles == {"owner@demo.test": "owner", "admin@demo.test": "admin", "employee@demo.test": "employee"}
    # With a request, as the sign-in form calls it (django-axes refuses requestless calls).
    assert (
        authenticate(
            RequestFactory().post("/login/"), username="employee@demo.test", password="demo-password-1"
        )
        is not None
    )

    # the billing mix the demo promises
    billed = selectors.account_ids_with_billing(firm=firm)
    names = dict(ClientAccount.objects.filter(firm=firm).values_list("pk", "name"))
    assert {names[pk] for pk in billed} == set(DEMO_ACCOUNT_NAMES) - set(NO_BILLING_ACCOUNT_NAMES)
    states = [i.state for i in Invoice.objects.filter(firm=firm)]
    assert states.count(InvoiceState.VOID) == 1
    assert states.count(InvoiceState.DRAFT) == 7
    invoices = list(selectors.invoice_list(firm=firm, state=InvoiceState.ISSUED))
    assert any(i.balance == 0 for i in invoices)  # paid
    assert any(0 < i.balance < i.total for i in invoices)  # partly paid
    assert any(i.balance == i.total for i in invoices)  # unpaid
    payments = list(selectors.payment_list(firm=firm))
    assert any(p.allocated == 0 for p in payments)  # unapplied retainers
    assert all(p.unapplied >= 0 for p in payments)
    assert any(not p.created_manually for p in payments) and any(p.created_manually for p in payments)

    assert "already exists" in run()
    assert Firm.objects.filter(name=DEMO_FIRM_NAME).count() == 1
    assert counts(firm) == EXPECTED

    assert "Created" in run("--reset")
    assert Firm.objects.filter(name=DEMO_FIRM_NAME).count() == 1
    assert counts(Firm.objects.get(name=DEMO_FIRM_NAME)) == EXPECTED
