"""The first-sync preview is worked out by a worker, never inside the web request: the page asks
for it, then polls for the result of `preview_task`."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from practice.quickbooks.models import SyncLink
from tests.quickbooks.sync_support import accounts, set_up

PREVIEW_TASK = "practice.quickbooks.sync.preview.preview_task"
HX = {"HTTP_HX_REQUEST": "true"}

# transaction=True: the worker closes the database connection between tasks.
pytestmark = pytest.mark.django_db(transaction=True)


def poll_url(body: str) -> str:
    match = re.search(r'hx-get="([^"]+\?task=[^"]+)"', body)
    assert match, body
    return match.group(1).replace("&amp;", "&")


def run_worker() -> None:
    call_command("run_worker", "--batch", "--no-startup-delay", "--reap-every", "0")


def test_the_preview_is_read_by_a_worker_and_polled(firm, connection, client_as, sandbox, realm_id):
    set_up(connection)
    accounts(firm, "Amy's Bird Sanctuary", "Preview Brand New", "Pyes Cakes")
    DBTaskResult.objects.all().delete()
    owner = client_as("owner")
    url = reverse("quickbooks:sync_preview")
    qbo_calls_before = len(sandbox.requests(realm_id))

    first = owner.get(url, **HX)
    assert first.status_code == 200
    body = first.content.decode()
    assert "Reading your QuickBooks company" in body
    assert len(sandbox.requests(realm_id)) == qbo_calls_before  # the web request read nothing
    (queued,) = DBTaskResult.objects.filter(task_path=PREVIEW_TASK)
    assert queued.status == "READY" and queued.args_kwargs["args"] == [connection.pk]

    again = owner.get(poll_url(body), **HX).content.decode()  # not worked out yet: keeps polling
    assert poll_url(again) == poll_url(body)

    run_worker()
    assert len(sandbox.requests(realm_id)) > qbo_calls_before
    done = owner.get(poll_url(body), **HX).content.decode()
    assert "hx-trigger" not in done  # the poll stops
    assert "1 account will be linked" in done and "1 customer will be created" in done
    assert "1 account needs a person" in done and "Pyes Cakes" in done
    assert not SyncLink.objects.exists()  # a preview writes nothing


def test_another_firm_cannot_read_the_preview(firm, other_firm, connection, client_as, sandbox):
    from tests.quickbooks.conftest import connect_firm

    connect_firm(other_firm, sandbox.create_realm(seed="empty"), sandbox)
    set_up(connection)
    accounts(firm, "Pyes Cakes")  # needs a person: its name shows in the preview
    body = client_as("owner").get(reverse("quickbooks:sync_preview"), **HX).content.decode()
    run_worker()
    assert "Pyes Cakes" in client_as("owner").get(poll_url(body), **HX).content.decode()
    other = client_as("other")  # connected to its own company
    assert other.get(poll_url(body), **HX).status_code == 404
    url = reverse("quickbooks:sync_preview")
    assert other.get(url + "?task=not-a-task-id", **HX).status_code == 404
    assert other.get(url + "?task=7f8e3a1c-5b2d-4e6f-9a0b-1c2d3e4f5a6b", **HX).status_code == 404
    assert client_as("employee").get(poll_url(body), **HX).status_code == 403


def test_qbo_unavailable_shows_a_message_and_a_way_to_try_again(
    firm, connection, client_as, sandbox, realm_id
):
    set_up(connection)
    accounts(firm, "Outage Client")
    sandbox.inject_fault(realm_id, "503", count=50)
    owner = client_as("owner")
    body = owner.get(reverse("quickbooks:sync_preview"), **HX).content.decode()
    run_worker()
    done = owner.get(poll_url(body), **HX).content.decode()
    assert "QuickBooks did not answer. Try again in a moment." in done
    assert "Try again</button>" in done
    assert DBTaskResult.objects.get(task_path=PREVIEW_TASK).status == "SUCCESSFUL"
