"""Billing fixtures: a few accounts, services and invoices in the `firm` of tests/conftest.py."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from practice.billing import services
from practice.billing.models import Invoice, Service
from practice.clients.models import ClientAccount

TODAY = datetime.date(2026, 11, 1)
DUE = datetime.date(2026, 12, 1)


@pytest.fixture
def account(firm) -> ClientAccount:
    return ClientAccount.objects.create(firm=firm, name="Cool Cars", email="cars@example.test")


@pytest.fixture
def account2(firm) -> ClientAccount:
    return ClientAccount.objects.create(firm=firm, name="Red Rock Diner")


@pytest.fixture
def other_account(other_firm) -> ClientAccount:
    return ClientAccount.objects.create(firm=other_firm, name="Elsewhere Inc")


@pytest.fixture
def service(firm) -> Service:
    return services.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


@pytest.fixture
def service2(firm) -> Service:
    return services.service_create(firm=firm, name="Tax preparation", rate=Decimal("250.00"))


@pytest.fixture
def make_invoice(firm, account, service):
    """make_invoice(amount=..., issued=True, account=...) -> an invoice with one line."""

    def make(amount: str = "100.00", *, issued: bool = True, acct=None, number: str = "") -> Invoice:
        invoice = services.invoice_create(
            firm=firm,
            account=acct or account,
            issue_date=TODAY,
            due_date=DUE,
            number=number,
            lines=[{"service": service, "quantity": "1", "rate": amount, "description": "Work"}],
        )
        if issued:
            invoice = services.invoice_issue(invoice=invoice)
        return invoice

    return make


@pytest.fixture
def invoice(make_invoice) -> Invoice:
    return make_invoice("300.00")


@pytest.fixture
def draft(make_invoice) -> Invoice:
    return make_invoice("120.00", issued=False)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The role fixtures create four users per test; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
