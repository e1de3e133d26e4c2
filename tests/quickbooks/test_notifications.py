"""Notifications of records that newly enter Error (issue 11 item 3): driven by real runs against
the sandbox; one in-app notification per owner/admin and one e-mail per run, never twice for the
same error; the bell, the list and "mark read"."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from practice.notifications.models import Notification
from practice.quickbooks.models import SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import accounts, link_of, run, set_up


@pytest.fixture
def asking(connection):
    return set_up(connection, unmatched="ask")


def test_new_errors_notified_once_per_run_and_never_twice(firm, asking):
    conn = asking
    accounts(firm, "Nobody Like This", "Nor This One")
    run(conn)
    assert SyncLink.objects.filter(status=SyncStatus.ERROR).count() == 2
    assert len(mail.outbox) == 1  # one e-mail for the run, not one per record
    message = mail.outbox[0]
    assert message.subject == "QuickBooks: 2 records could not be sent"
    assert sorted(message.to) == ["admin@acme.test", "owner@acme.test"]
    assert "No QuickBooks customer named “Nobody Like This”" in message.body
    assert "No QuickBooks customer named “Nor This One”" in message.body
    assert reverse("quickbooks:problems") in message.body
    people = sorted(Notification.objects.values_list("user__email", flat=True))
    assert people == ["admin@acme.test", "owner@acme.test"]  # never the employee

    run(conn)  # the same errors: nothing new
    assert len(mail.outbox) == 1 and Notification.objects.count() == 2

    (third,) = accounts(firm, "Third Unknown")
    run(conn)
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "QuickBooks: 1 record could not be sent"
    assert "Third Unknown" in mail.outbox[1].body and "Nobody Like This" not in mail.outbox[1].body

    # Fixed, then failing again: news again.
    link = link_of(conn, third)
    SyncLink.objects.filter(pk=link.pk).update(status=SyncStatus.SKIPPED)
    run(conn)
    assert len(mail.outbox) == 2
    SyncLink.objects.filter(pk=link.pk).update(status=SyncStatus.ERROR)
    run(conn)
    assert len(mail.outbox) == 3 and "Third Unknown" in mail.outbox[2].body


def test_a_run_without_new_errors_sends_nothing(firm, connection):
    conn = set_up(connection)  # "Create": nothing fails
    accounts(firm, "Brand New Client")
    run(conn)
    assert mail.outbox == [] and Notification.objects.count() == 0


def test_bell_list_and_mark_read(firm, asking, client_as):
    accounts(firm, "Nobody Like This")
    run(asking)
    owner = client_as("owner")
    page = owner.get(reverse("clients:account_list")).content.decode()
    assert 'id="notification-bell"' in page and 'aria-label="Notifications: 1 unread"' in page
    assert (
        'id="notification-bell"'
        not in client_as("employee").get(reverse("clients:account_list")).content.decode()
    )
    listing = owner.get(reverse("notifications:list"))
    (item,) = listing.context["notifications"]
    assert item.title == "QuickBooks: 1 record could not be sent" and item.read_at is None
    assert "Nobody Like This" in listing.content.decode()
    owner.post(reverse("notifications:mark_read"), {"id": str(item.pk)})
    item.refresh_from_db()
    assert item.read_at is not None
    assert (
        'aria-label="Notifications: 0 unread"' in owner.get(reverse("clients:account_list")).content.decode()
    )
    # The admin's own notification is untouched, and nobody reads another's.
    admin_item = Notification.objects.get(user__email="admin@acme.test")
    assert admin_item.read_at is None
    owner.post(reverse("notifications:mark_read"), {"id": str(admin_item.pk)})
    admin_item.refresh_from_db()
    assert admin_item.read_at is None
    admin = client_as("admin")
    admin.post(reverse("notifications:mark_read"))  # all
    admin_item.refresh_from_db()
    assert admin_item.read_at is not None
    assert client_as("admin").get(reverse("notifications:list")).status_code == 200


def test_each_person_is_told_in_their_own_language(firm, asking):
    """An admin whose language is Spanish gets the bell and the e-mail in Spanish; the owner on
    the site's default language gets English. Still one e-mail per language per run."""
    from practice.firms.models import User

    User.objects.filter(email="admin@acme.test").update(language="es")
    accounts(firm, "Nobody Like This")
    run(asking)
    by_to = {tuple(m.to): m for m in mail.outbox}
    assert sorted(by_to) == [("admin@acme.test",), ("owner@acme.test",)]
    spanish, english = by_to[("admin@acme.test",)], by_to[("owner@acme.test",)]
    assert english.subject == "QuickBooks: 1 record could not be sent"
    assert "No QuickBooks customer named “Nobody Like This”" in english.body
    assert spanish.subject == "QuickBooks: no se pudo enviar 1 registro"
    assert "Estos registros necesitan su atención" in spanish.body
    assert "Cuentas #" in spanish.body
    assert "No hay ningún cliente de QuickBooks llamado «Nobody Like This»." in spanish.body
    titles = dict(Notification.objects.values_list("user__email", "title"))
    assert titles == {
        "admin@acme.test": "QuickBooks: no se pudo enviar 1 registro",
        "owner@acme.test": "QuickBooks: 1 record could not be sent",
    }
    run(asking)  # nothing new: nothing in either language
    assert len(mail.outbox) == 2
