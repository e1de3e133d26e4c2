"""Shared fixtures: a firm with one member per role, a second firm, signed-in clients.

The role matrix every restricted view is tested with: anonymous, employee, admin, owner, and a
member of another firm (whose requests for this firm's ids must answer 404 and change nothing).
"""

from __future__ import annotations

import pytest
from django.test import Client

from practice.firms.models import Firm, Role, User
from practice.firms.services import firm_create, member_add

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def firm(db) -> Firm:
    firm = firm_create(name="Acme Accounting", owner_email="owner@acme.test", owner_password=PASSWORD)
    member_add(firm=firm, email="admin@acme.test", password=PASSWORD, role=Role.ADMIN)
    member_add(firm=firm, email="employee@acme.test", password=PASSWORD, role=Role.EMPLOYEE)
    return firm


@pytest.fixture
def other_firm(db) -> Firm:
    return firm_create(name="Other Firm LLP", owner_email="owner@other.test", owner_password=PASSWORD)


ROLE_EMAILS = {
    "owner": "owner@acme.test",
    "admin": "admin@acme.test",
    "employee": "employee@acme.test",
    "other": "owner@other.test",
}


@pytest.fixture
def client_as(firm, other_firm):
    """client_as("owner"|"admin"|"employee"|"other"|"anonymous") -> a signed-in test Client."""

    def make(who: str) -> Client:
        c = Client()
        if who != "anonymous":
            # force_login: the password check is django-axes' business (tests/firms), and
            # Client.login() calls authenticate() without the request axes needs.
            c.force_login(User.objects.get(email=ROLE_EMAILS[who]))
        return c

    return make
