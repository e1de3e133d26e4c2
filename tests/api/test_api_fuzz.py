"""schemathesis over /api/v1/openapi.json, in-process over WSGI (stack-notes §4).

Bounded: a few examples per operation so the whole run stays well under a minute. Every response
must be documented and match its schema, and nothing may answer 500.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from config.wsgi import application
from practice.billing.services import invoice_create, service_create
from practice.clients.services import account_create

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def seeded(firm, tokens, settings):
    settings.API_RATE_LIMIT = 1_000_000
    acct = account_create(firm=firm, name="Cool Cars")
    svc = service_create(firm=firm, name="Bookkeeping", rate="150.00")
    invoice_create(
        firm=firm,
        account=acct,
        issue_date="2026-01-05",
        due_date="2026-02-04",
        lines=[{"service": svc.pk, "quantity": "1"}],
    )
    return tokens


@schema.parametrize()
@hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, seeded):
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded['owner']}"})
