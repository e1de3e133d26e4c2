"""Account services and selectors: validation by field, firm scoping, change events."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from practice.clients.models import ClientAccount
from practice.clients.selectors import account_get, account_list
from practice.clients.services import account_archive, account_create, account_unarchive, account_update
from practice.common import events


@pytest.fixture
def changes():
    """Collects record_changed notifications (they fire on commit)."""
    seen: list[dict] = []

    def listener(**payload):
        seen.append(payload)

    events.subscribe(listener)
    yield seen
    events.unsubscribe(listener)


def test_create_trims_lowercases_email_and_notifies(firm, changes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        account = account_create(
            firm=firm, name="  Alvarez & Sons  ", email="Ana@Example.COM", kind="company"
        )
    assert account.name == "Alvarez & Sons"
    assert account.email == "ana@example.com"
    assert account.kind == "company"
    assert changes == [{"firm": firm, "kind": "account", "obj_id": account.pk}]


def test_no_event_when_transaction_rolls_back(firm, changes, django_capture_on_commit_callbacks):
    from django.db import transaction

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        account_create(firm=firm, name="Rolled back")
        raise RuntimeError
    assert changes == []
    assert not ClientAccount.objects.filter(name="Rolled back").exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 501}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "ok", "email": "not-an-email"}, "email"),
        ({"name": "ok", "email": "a@b.c\x00"}, "email"),
        ({"name": "ok", "kind": "alien"}, "kind"),
        ({"name": "ok", "phone": "1" * 31}, "phone"),
        ({"name": "ok", "city": "\x00"}, "city"),
        ({"name": 12}, "name"),
        *[
            ({"name": f"Acme{ch}Co"}, "name")
            for ch in map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
        ],
        ({"name": "ok", "address_line1": "1 Main \u202eSt"}, "address_line1"),
    ],
)
def test_create_rejects_bad_input_by_field(firm, kwargs, field):
    with pytest.raises(ValidationError) as exc:
        account_create(firm=firm, **kwargs)
    assert field in exc.value.message_dict
    assert ClientAccount.objects.count() == 0


def test_name_of_500_chars_is_accepted(firm):
    assert len(account_create(firm=firm, name="x" * 500).name) == 500


def test_update_changes_only_given_fields_and_notifies_once(
    firm, changes, django_capture_on_commit_callbacks
):
    account = account_create(firm=firm, name="Baker", email="b@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        account_update(account=account, name="Baker Family Trust", city="Austin")
    account.refresh_from_db()
    assert (account.name, account.city, account.email) == ("Baker Family Trust", "Austin", "b@example.com")
    assert len(changes) == 1


def test_update_without_change_sends_no_event(firm, changes, django_capture_on_commit_callbacks):
    account = account_create(firm=firm, name="Same")
    with django_capture_on_commit_callbacks(execute=True):
        account_update(account=account, name="Same ")
    assert changes == []


def test_update_rejects_bad_input_and_keeps_the_row(firm):
    account = account_create(firm=firm, name="Keep me")
    with pytest.raises(ValidationError) as exc:
        account_update(account=account, name="", email="nope")
    assert set(exc.value.message_dict) >= {"name"}
    account.refresh_from_db()
    assert account.name == "Keep me"


def test_update_refuses_fields_that_are_not_editable(firm):
    account = account_create(firm=firm, name="A")
    with pytest.raises(TypeError):
        account_update(account=account, archived=True)


def test_archive_and_unarchive_are_idempotent(firm, changes, django_capture_on_commit_callbacks):
    account = account_create(firm=firm, name="A")
    with django_capture_on_commit_callbacks(execute=True):
        account_archive(account=account)
        account_archive(account=account)
    assert account.archived is True
    assert len(changes) == 1
    with django_capture_on_commit_callbacks(execute=True):
        account_unarchive(account=account)
    assert account.archived is False
    assert len(changes) == 2


def test_list_is_firm_scoped_searchable_and_hides_archived(firm, other_firm):
    a = account_create(firm=firm, name="Alpha Dental", email="front@alpha.test")
    b = account_create(firm=firm, name="Beta Bakery", phone="555-0101")
    c = account_create(firm=firm, name="Gamma Archived")
    account_archive(account=c)
    account_create(firm=other_firm, name="Alpha Other Firm")

    assert list(account_list(firm=firm)) == [a, b]
    assert list(account_list(firm=firm, include_archived=True)) == [a, b, c]
    assert list(account_list(firm=firm, search="alpha")) == [a]
    assert list(account_list(firm=firm, search="ALPHA.TEST")) == [a]
    assert list(account_list(firm=firm, search="0101")) == [b]
    assert list(account_list(firm=firm, search="\x00")) == [a, b]


def test_get_answers_404_for_other_firms(firm, other_firm):
    mine = account_create(firm=firm, name="Mine")
    assert account_get(firm=firm, pk=mine.pk) == mine
    with pytest.raises(Http404):
        account_get(firm=other_firm, pk=mine.pk)
