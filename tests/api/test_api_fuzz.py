"""schemathesis over /api/v1/openapi.json, in-process over WSGI (stack-notes §4).

Bounded: a few examples per operation so the whole run stays well under a minute. Every response
must be documented and match its schema, and nothing may answer 500.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from config.wsgi import application
from practice.billing.services import invoice_create, service_create
from practice.clients.services import account_create

# Business rules the schema cannot express (unique service names, positive quantities, a draft
# cannot be voided) answer 422 naming the field; for schema-valid data that is an accepted answer.
# Everything else stays on: no 500s, every status and body documented and matching its schema.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
)
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application, config=CONFIG)
_owner_token: dict[str, str] = {}


@schema.auth(refresh_interval=None)  # each test has its own token: never cache it
class OwnerToken:
    """The owner's token, through schemathesis' auth hook so negative cases may drop it knowingly."""

    def get(self, case, ctx):
        return _owner_token.get("secret", "pat_unset")

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def _keep_test_connection():
    # Requests go straight to the WSGI app, not through Django's test Client, so the
    # request signals would close the test's database connection (and its transaction) after
    # the first call on PostgreSQL. Django's Client disconnects the same handler.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(firm, tokens, settings, _keep_test_connection):
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
    _owner_token["secret"] = tokens["owner"]
    return tokens


@schema.parametrize()
@hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, seeded):
    case.call_and_validate()
