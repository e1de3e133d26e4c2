"""Six people creating invoices at the same moment (issue 12, item 5): every one gets its
invoice with its own number; none gets a 500 ("database is locked" on SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings

from practice.billing import services
from practice.clients.models import ClientAccount
from tests.common.shared_db import SharedDatabase

WRITERS = 6


@pytest.mark.django_db(transaction=True)
def test_six_members_creating_invoices_at_once_all_succeed(firm, tmp_path):
    account = ClientAccount.objects.create(firm=firm, name="Cool Cars")
    service = services.service_create(firm=firm, name="Bookkeeping", rate="100.00")
    shared = SharedDatabase(tmp_path)
    shared.publish()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.billing.concurrent_writers",
            str(firm.pk),
            str(account.pk),
            str(service.pk),
            str(WRITERS),
        ],
        env=shared.env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["statuses"] == [302] * WRITERS, outcome
    assert outcome["numbers"] == [f"INV-{n:04d}" for n in range(1, WRITERS + 1)]
