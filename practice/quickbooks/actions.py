"""What people do with an account's QuickBooks sync: link to a customer, create, reactivate,
unsync, retry, and the bulk forms of these (owner and admin; views check the role, these check
the firm). Called by the views and the API; each action records its intent on the link and asks
for a run, and the engine does the writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from practice.clients.models import ClientAccount
from practice.quickbooks.connection.errors import QBOError, ReauthRequired, RecordRejected
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import CUSTOMER_DRIFT, RECORD_DRIFT, Outcome, SyncStatus
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds.customers import ENTITY, KIND, _get_or_make_link
from practice.quickbooks.sync.kinds.matching import clean_display_name, name_problem
from practice.quickbooks.sync.mappers.customer import input_hash
from practice.quickbooks.sync.triggers import request_sync

if TYPE_CHECKING:
    from practice.firms.models import Firm
    from practice.quickbooks.connection.client import QBOClient

logger = logging.getLogger("practice.quickbooks.sync")


def connection_for(firm: Firm) -> Connection | None:
    return Connection.objects.filter(firm=firm).first()


class SyncActionError(Exception):
    """A manual action that cannot be done now, with a message for the person."""


@dataclass
class LinkCheck:
    """What linking to a customer would do (for the confirm step)."""

    customer: dict[str, Any]
    linked_to: list[ClientAccount]


def _require_connection(firm: Firm) -> Connection:
    connection = connection_for(firm)
    if connection is None or not connection.realm_id:
        raise SyncActionError("QuickBooks is not connected.")
    return connection


def _locked_link(connection: Connection, account: ClientAccount) -> SyncLink:
    if account.firm_id != connection.firm_id:
        raise PermissionDenied
    link = _get_or_make_link(connection, account)
    return SyncLink.objects.select_for_update().get(pk=link.pk)


def _refuse_in_flight(link: SyncLink) -> None:
    if link.batch_request_id:
        raise SyncActionError("A sync of this account is in progress. Try again in a moment.")


def customer_lookup(*, firm: Firm, customer_id: str, client: QBOClient | None = None) -> dict[str, Any]:
    """Read one QBO customer live (for link and its confirm step)."""
    from practice.quickbooks.connection.client import QBOClient

    connection = _require_connection(firm)
    client = client or QBOClient(connection)
    body = client.read(ENTITY, customer_id)
    customer: dict[str, Any] = body.get(ENTITY, body)
    return customer


def accounts_linked_to(
    *, firm: Firm, customer_id: str, exclude: ClientAccount | None = None
) -> list[ClientAccount]:
    connection = connection_for(firm)
    if connection is None:
        return []
    ids = (
        SyncLink.objects.filter(connection=connection, kind=KIND, qbo_id=customer_id)
        .exclude(status=SyncStatus.SKIPPED)
        .values_list("local_id", flat=True)
    )
    qs = ClientAccount.objects.filter(firm=firm, pk__in=list(ids))
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    return list(qs)


def linked_accounts_by_customer(*, firm: Firm, customer_ids: list[str]) -> dict[str, list[str]]:
    """{QBO customer id: names of the firm's accounts linked to it} (two queries)."""
    connection = connection_for(firm)
    if connection is None or not customer_ids:
        return {}
    pairs = list(
        SyncLink.objects.filter(connection=connection, kind=KIND, qbo_id__in=customer_ids)
        .exclude(status=SyncStatus.SKIPPED)
        .values_list("qbo_id", "local_id")
    )
    names = dict(
        ClientAccount.objects.filter(firm=firm, pk__in=[p[1] for p in pairs]).values_list("pk", "name")
    )
    out: dict[str, list[str]] = {}
    for qbo_id, local_id in pairs:
        if local_id in names:
            out.setdefault(qbo_id, []).append(names[local_id])
    return out


def account_sync_link(
    *,
    firm: Firm,
    account: ClientAccount,
    customer_id: str,
    actor: str = "",
    confirmed: bool = False,
    client: QBOClient | None = None,
) -> LinkCheck | SyncLink:
    """Link the account to an existing QBO customer (read live first).

    Returns a `LinkCheck` (nothing changed) when the customer is already linked to another
    account and the person has not confirmed yet.
    """
    customer_id = str(customer_id).strip()
    if not customer_id.isdigit():
        raise ValidationError({"customer_id": "Choose a QuickBooks customer."})
    try:
        customer = customer_lookup(firm=firm, customer_id=customer_id, client=client)
    except RecordRejected as e:
        raise SyncActionError("That QuickBooks customer no longer exists. Choose another one.") from e
    except ReauthRequired as e:
        raise SyncActionError("QuickBooks needs to be reconnected (Settings > QuickBooks) first.") from e
    except QBOError as e:
        raise SyncActionError("QuickBooks did not answer. Try again in a moment.") from e
    if not customer.get("Active", True):
        raise SyncActionError(
            f"“{customer.get('DisplayName')}” is inactive in QuickBooks. Use “Reactivate and link” instead."
        )
    others = accounts_linked_to(firm=firm, customer_id=customer_id, exclude=account)
    if others and not confirmed:
        return LinkCheck(customer=customer, linked_to=others)
    connection = _require_connection(firm)
    with transaction.atomic():
        link = _locked_link(connection, account)
        _refuse_in_flight(link)
        link.status = SyncStatus.SYNCED  # mark_linked keeps Skipped; a manual link turns sync on
        engine.mark_linked(link, customer, now=timezone.now())
        link.input_hash = input_hash(account)
        link.save()
        engine.record_attempt(
            link,
            operation="link",
            outcome=Outcome.SUCCESS,
            actor=actor,
            message=f"Linked by hand to “{link.qbo_name}”.",
        )
    request_sync(connection)  # its invoices and payments can go now
    return link


def _queue_manual_op(link: SyncLink, *, op: str, actor: str, message: str) -> None:
    """Hand a person's create/reactivate request to the engine: Syncing, a fresh retry count,
    no stale error, and a history row saying who asked. Call inside the link's lock."""
    link.pending_op = op
    link.status = SyncStatus.SYNCING
    link.attempts = 0
    link.next_retry_at = None
    engine.clear_error(link)
    link.save()
    engine.record_attempt(link, operation=op, outcome=Outcome.INFO, actor=actor, message=message)


def account_sync_create(*, firm: Firm, account: ClientAccount, name: str, actor: str = "") -> SyncLink:
    """Create a new QBO customer for the account (name editable), through the engine."""
    problem = name_problem(name)
    if problem:
        raise ValidationError({"name": problem})
    if account.archived:
        raise SyncActionError("Archived accounts are not synced. Restore the account first.")
    connection = _require_connection(firm)
    with transaction.atomic():
        link = _locked_link(connection, account)
        _refuse_in_flight(link)
        if link.qbo_id and link.status == SyncStatus.SYNCED:
            raise SyncActionError("This account is already linked. Unsync it first to link it elsewhere.")
        link.desired_name = clean_display_name(name)
        link.target_qbo_id = ""
        link.qbo_id = ""
        link.qbo_name = ""
        _queue_manual_op(link, op="create", actor=actor, message=f"Asked to create “{link.desired_name}”.")
    request_sync(connection)
    return link


def account_sync_reactivate(
    *, firm: Firm, account: ClientAccount, customer_id: str | None = None, actor: str = ""
) -> SyncLink:
    """Reactivate the inactive QBO customer that matches (or `customer_id`) and link it."""
    connection = _require_connection(firm)
    with transaction.atomic():
        link = _locked_link(connection, account)
        _refuse_in_flight(link)
        target = customer_id or next(
            (
                str(c.get("id"))
                for c in (link.candidates or [])
                if not c.get("active", True) and c.get("entity", "Customer") == "Customer"
            ),
            "",
        )
        if not target or not str(target).isdigit():
            raise SyncActionError("There is no inactive QuickBooks customer to reactivate for this account.")
        link.target_qbo_id = str(target)
        _queue_manual_op(
            link,
            op="reactivate",
            actor=actor,
            message="Asked to reactivate and link the QuickBooks customer.",
        )
    request_sync(connection)
    return link


def _turn_off(link: SyncLink) -> None:
    """Skipped: nothing in QBO is deleted and the QBO Id stays; a write already sent keeps its
    identity so that its answer can still be recorded."""
    link.status = SyncStatus.SKIPPED
    if not link.batch_request_id:
        engine.clear_pending(link)
    engine.clear_error(link)


UNSYNC_MESSAGE = "Sync turned off for this account."
RETRY_MESSAGE = "Asked to sync again."


def _sync_again(link: SyncLink) -> bool:
    """Decide the link afresh (linked ones resume). False when there is nothing to do (Synced)."""
    if link.status == SyncStatus.SYNCED:
        return False
    link.attempts = 0
    link.next_retry_at = None
    engine.clear_error(link)
    if link.batch_request_id:
        link.status = SyncStatus.SYNCING  # the unanswered batch is replayed as it was
    elif link.qbo_id and link.status == SyncStatus.SKIPPED:
        link.status = SyncStatus.SYNCED  # linked before: resume; waiting records go now
    else:
        link.status = SyncStatus.SYNCING
        if link.pending_op not in ("create", "reactivate"):
            link.pending_op = ""
        link.input_hash = ""
    return True


def account_unsync(*, firm: Firm, account: ClientAccount, actor: str = "") -> SyncLink:
    """Turn sync off for the account (Skipped). Deletes nothing in QBO; keeps the link's QBO Id."""
    connection = _require_connection(firm)
    with transaction.atomic():
        link = _locked_link(connection, account)
        _turn_off(link)
        link.save()
        engine.record_attempt(
            link, operation="unsync", outcome=Outcome.INFO, actor=actor, message=UNSYNC_MESSAGE
        )
    return link


def _linked_customer_state(firm: Firm, qbo_id: str, client: QBOClient | None) -> dict[str, Any] | None:
    """The linked QBO customer read live, or None when QuickBooks no longer has it."""
    try:
        return customer_lookup(firm=firm, customer_id=qbo_id, client=client)
    except RecordRejected:
        return None
    except ReauthRequired as e:
        raise SyncActionError("QuickBooks needs to be reconnected (Settings > QuickBooks) first.") from e
    except QBOError as e:
        raise SyncActionError("QuickBooks did not answer. Try again in a moment.") from e


GONE_MESSAGE = "The linked QuickBooks customer no longer exists; deciding again."
CHECK_IDS_PER_QUERY = 200  # Ids in one `Id IN (...)` query, as for invoice numbers


def _check_skipped_customer(link: SyncLink, customer: dict[str, Any] | None) -> tuple[str, str] | None:
    """A Skipped, linked account asked to sync again, against its QBO customer read live.

    Gone (None): the link forgets it and the account is decided afresh (matched by name or
    created). Inactive: Error offering "Reactivate and link" (the account stays out of QBO until
    someone chooses). Active: nothing to say, it resumes. Returns (outcome, history message) for
    the "check" line, or None when the customer is fine. The caller saves the link.
    """
    if customer is None:
        link.qbo_id = ""
        link.qbo_sync_token = ""
        link.qbo_name = ""
        link.pushed_hash = ""
        link.status = SyncStatus.NOT_SYNCED  # _sync_again decides it afresh
        engine.clear_error(link)
        return Outcome.INFO, GONE_MESSAGE
    if not customer.get("Active", True):
        name = str(customer.get("DisplayName") or link.qbo_name)
        message = f"The QuickBooks customer “{name}” is inactive."
        engine.mark_error(
            link,
            error_kind="inactive_match",
            message=message,
            candidates=[{"id": str(customer.get("Id")), "name": name, "active": False, "entity": "Customer"}],
        )
        link.status = SyncStatus.ERROR  # mark_error keeps Skipped; the person asked to sync
        return Outcome.ERROR, message
    return None


def _needs_customer_check(link: SyncLink | None) -> bool:
    if link is None or link.status != SyncStatus.SKIPPED:
        return False
    return bool(link.qbo_id) and not link.batch_request_id


def _skipped_customers(
    connection: Connection, account_ids: list[int], client: QBOClient | None = None
) -> dict[str, dict[str, Any] | None]:
    """{QBO Id: customer or None when QBO no longer has it} for the Skipped, linked accounts among
    `account_ids`, read live in a few queries (inactive ones included), before any lock is taken."""
    from practice.quickbooks.connection.client import QBOClient, quote

    qbo_ids = sorted(
        {
            link.qbo_id
            for link in SyncLink.objects.filter(
                connection=connection, kind=KIND, local_id__in=account_ids, status=SyncStatus.SKIPPED
            ).exclude(qbo_id="")
        }
    )
    if not qbo_ids:
        return {}
    client = client or QBOClient(connection)
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(qbo_ids)
    try:
        for start in range(0, len(qbo_ids), CHECK_IDS_PER_QUERY):
            chunk = ", ".join(quote(i) for i in qbo_ids[start : start + CHECK_IDS_PER_QUERY])
            for customer in client.query_all(ENTITY, f"Id IN ({chunk}) AND Active IN (true, false)"):
                found[str(customer.get("Id"))] = customer
    except ReauthRequired as e:
        raise SyncActionError("QuickBooks needs to be reconnected (Settings > QuickBooks) first.") from e
    except QBOError as e:
        raise SyncActionError("QuickBooks did not answer. Try again in a moment.") from e
    return found


def _forget_drifted_customer(link: SyncLink) -> None:
    """An account whose QBO customer was deleted, made inactive or merged away (drift.py) is
    decided afresh by name when asked to sync again (an inactive match offers "Reactivate and
    link" again); the caller saves the link."""
    drifted = link.status == SyncStatus.ERROR and link.error_kind in CUSTOMER_DRIFT
    if drifted and not link.batch_request_id:
        link.qbo_id = ""
        link.qbo_sync_token = ""
        link.qbo_name = ""
        link.pushed_hash = ""


def account_sync_retry(
    *, firm: Firm, account: ClientAccount, actor: str = "", client: QBOClient | None = None
) -> SyncLink:
    """Sync again: a Skipped/Error/Not synced account is decided afresh (linked ones resume).

    A Skipped account that was linked resumes only if its QBO customer still exists and is
    active (read live first, `_check_skipped_customer`)."""
    connection = _require_connection(firm)
    if account.archived:
        raise SyncActionError("Archived accounts are not synced. Restore the account first.")
    existing = SyncLink.objects.filter(connection=connection, kind=KIND, local_id=account.pk).first()
    customer: dict[str, Any] | None = {}
    if _needs_customer_check(existing):
        assert existing is not None
        customer = _linked_customer_state(firm, existing.qbo_id, client)
    with transaction.atomic():
        link = _locked_link(connection, account)
        if _needs_customer_check(link) and (checked := _check_skipped_customer(link, customer)):
            outcome, message = checked
            link.save()
            engine.record_attempt(link, operation="check", outcome=outcome, actor=actor, message=message)
            if link.status == SyncStatus.ERROR:
                return link
        _forget_drifted_customer(link)
        if not _sync_again(link):
            return link
        link.save()
        engine.record_attempt(
            link, operation="sync", outcome=Outcome.INFO, actor=actor, message=RETRY_MESSAGE
        )
    request_sync(connection)
    return link


def accounts_replan_no_match(*, connection: Connection, actor: str = "") -> int:
    """After "When no QuickBooks customer has the account's name" changes from "Ask me" to
    "Create": the accounts in Error for that reason are decided again (created on the next run).
    One UPDATE and one INSERT per page. Returns how many."""
    ids = sorted(
        SyncLink.objects.filter(
            connection=connection, kind=KIND, status=SyncStatus.ERROR, error_kind="no_match"
        ).values_list("pk", flat=True)
    )
    done = 0
    for start in range(0, len(ids), BULK_PAGE_SIZE):
        with transaction.atomic():
            links = list(
                SyncLink.objects.select_for_update()
                .filter(pk__in=ids[start : start + BULK_PAGE_SIZE], status=SyncStatus.ERROR)
                .order_by("pk")
            )
            for link in links:
                engine.clear_error(link)
                link.status = SyncStatus.NOT_SYNCED
                link.input_hash = ""
                link.attempts = 0
            rows = [
                engine.attempt_row(
                    link,
                    operation="sync",
                    outcome=Outcome.INFO,
                    actor=actor,
                    message="Unmatched accounts are now created in QuickBooks; deciding again.",
                )
                for link in links
            ]
            engine.save_links_with_attempts(links, rows)
            done += len(links)
    if done:
        request_sync(connection)
    return done


# Accounts a bulk action changes in one transaction: a few statements each, whatever the count
# (the form sends at most 1,000 ids; "retry all errors" may cover the whole firm).
BULK_PAGE_SIZE = 500
BULK_ACTIONS = ("sync", "unsync", "retry_errors")


def _bulk_page(
    connection: Connection,
    *,
    firm: Firm,
    action: str,
    account_ids: list[int],
    actor: str,
    customers: dict[str, dict[str, Any] | None],
) -> int:
    """One page of a bulk action in a constant number of queries: read the accounts, create the
    links they lack, lock the links, then one UPDATE and one INSERT of history rows."""
    accounts = ClientAccount.objects.filter(firm=firm, pk__in=account_ids)
    if action != "unsync":
        accounts = accounts.filter(archived=False)  # archived accounts are not synced
    ids = list(accounts.values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        have = set(
            SyncLink.objects.filter(connection=connection, kind=KIND, local_id__in=ids).values_list(
                "local_id", flat=True
            )
        )
        missing = [pk for pk in ids if pk not in have]
        if missing:
            engine.insert_links(connection, KIND, missing, read_chunk=BULK_PAGE_SIZE)
        links = list(
            SyncLink.objects.select_for_update()
            .filter(connection=connection, kind=KIND, local_id__in=ids)
            .order_by("pk")  # one lock order for every runner: no deadlock between two bulk actions
        )
        changed: list[SyncLink] = []
        attempts = []
        operation, message = ("unsync", UNSYNC_MESSAGE) if action == "unsync" else ("sync", RETRY_MESSAGE)
        for link in links:
            if action == "unsync":
                _turn_off(link)
                changed.append(link)
            else:
                # A Skipped, linked account: the same live check as the single "Sync again".
                checked = None
                if _needs_customer_check(link) and link.qbo_id in customers:
                    checked = _check_skipped_customer(link, customers[link.qbo_id])
                if checked:
                    changed.append(link)
                    attempts.append(
                        engine.attempt_row(
                            link, operation="check", outcome=checked[0], actor=actor, message=checked[1]
                        )
                    )
                    if link.status == SyncStatus.ERROR:
                        continue
                _forget_drifted_customer(link)
                if not _sync_again(link):
                    continue
                if not checked:
                    changed.append(link)
            row = engine.attempt_row(
                link, operation=operation, outcome=Outcome.INFO, actor=actor, message=message
            )
            attempts.append(row)
        engine.save_links_with_attempts(changed, attempts)
    return len(changed)


def accounts_sync_bulk(*, firm: Firm, action: str, account_ids: Iterable[int], actor: str = "") -> int:
    """Bulk actions of the accounts list: "sync", "unsync" (selected ids) or "retry_errors" (all
    accounts in Error). Returns how many accounts changed (Synced ones asked to sync do not;
    other firms' ids and, for sync, archived accounts are left out)."""
    if action not in BULK_ACTIONS:
        raise ValidationError({"action": "Choose sync, unsync or retry errors."})
    connection = _require_connection(firm)
    if action == "retry_errors":
        ids = sorted(
            SyncLink.objects.filter(connection=connection, kind=KIND, status=SyncStatus.ERROR).values_list(
                "local_id", flat=True
            )
        )
    else:
        ids = sorted({int(i) for i in account_ids})
    done = 0
    for start in range(0, len(ids), BULK_PAGE_SIZE):
        page = ids[start : start + BULK_PAGE_SIZE]
        customers = _skipped_customers(connection, page) if action != "unsync" else {}
        done += _bulk_page(
            connection, firm=firm, action=action, account_ids=page, actor=actor, customers=customers
        )
    if done and action != "unsync":
        request_sync(connection)
    return done


# --------------------------------------------------------------------------------------------
# Invoices


def invoice_renumber(*, firm: Firm, invoice: Any, number: str, actor: Any = None) -> Any:
    """Give an invoice a number QuickBooks does not use yet (the fix for a "docnumber_clash"
    Error) and send it again. Refused once the invoice is linked in QuickBooks: its number is
    then QuickBooks' too. Raises ValidationError (key "number") for a bad number."""
    from practice.billing import services as billing_services
    from practice.quickbooks.sync.kinds.invoices import DELETED
    from practice.quickbooks.sync.kinds.invoices import KIND as INVOICE

    if invoice.firm_id != firm.pk:
        raise PermissionDenied
    connection = connection_for(firm)
    with transaction.atomic():
        link = None
        if connection is not None:
            link = (
                SyncLink.objects.select_for_update()
                .filter(connection=connection, kind=INVOICE, local_id=invoice.pk)
                .first()
            )
        if link is not None and link.batch_request_id:
            raise SyncActionError("A sync of this invoice is in progress. Try again in a moment.")
        if link is not None and link.qbo_id and link.pushed_hash != DELETED:
            raise SyncActionError(
                "This invoice is already in QuickBooks; its number cannot be changed here any more."
            )
        old = invoice.number
        renumbered = billing_services.invoice_renumber(invoice=invoice, number=number, actor=actor)
        if link is not None and renumbered.number != old:
            engine.clear_pending(link)
            engine.clear_error(link)
            link.input_hash = ""
            if link.status != SyncStatus.SKIPPED:
                link.status = SyncStatus.NOT_SYNCED
            link.save()
            engine.record_attempt(
                link,
                operation="renumber",
                outcome=Outcome.INFO,
                actor=str(getattr(actor, "email", "") or actor or ""),
                message=f"Number changed from {old} to {renumbered.number}; sending it again.",
            )
    return renumbered


# --------------------------------------------------------------------------------------------
# Services, invoices and payments (issue 10): Sync to QuickBooks, Unsync, Retry on one record.

RECORD_UNSYNC_MESSAGE = "Sync turned off for this record."
DRIFT_REFUSAL = (
    "This record was changed, voided or deleted in QuickBooks. Choose what to do with its own "
    "actions (Push ours again, Accept QuickBooks' version, Push again, or Unsync)."
)
RECORD_SYNC_MESSAGE = "Asked to sync to QuickBooks."
RECORD_RETRY_MESSAGE = "Asked to retry."


def _record_and_link(*, firm: Firm, kind: str, local_id: int) -> tuple[Connection, Any, SyncLink]:
    """The firm's record and its link (made Not synced if missing), locked. Call in a transaction."""
    from practice.quickbooks import billing_status

    if kind not in billing_status.BILLING_KINDS:
        raise ValidationError({"kind": "Choose a service, an invoice or a payment."})
    connection = _require_connection(firm)
    record = billing_status.record_get(firm=firm, kind=kind, pk=local_id)
    if record is None:
        raise PermissionDenied
    link, _created = SyncLink.objects.get_or_create(
        connection=connection,
        kind=kind,
        local_id=record.pk,
        defaults={"firm_id": connection.firm_id, "status": SyncStatus.NOT_SYNCED},
    )
    return connection, record, SyncLink.objects.select_for_update().get(pk=link.pk)


def _refuse_unless_eligible(connection: Connection, kind: str, record: Any, link: SyncLink) -> None:
    from practice.quickbooks import billing_status

    acct = billing_status.account_status(connection, record.account_id) if kind != "service" else None
    check = billing_status.sync_eligibility(
        kind, record, connection, account_status=acct, linked=bool(link.qbo_id)
    )
    if not check.ok:
        raise SyncActionError(check.reason)


def _record_sync_again(*, firm: Firm, kind: str, local_id: int, actor: str, operation: str) -> SyncLink:
    with transaction.atomic():
        connection, record, link = _record_and_link(firm=firm, kind=kind, local_id=local_id)
        _refuse_unless_eligible(connection, kind, record, link)
        if link.status == SyncStatus.ERROR and link.error_kind in RECORD_DRIFT:
            # A blind retry would push over (or past) what was done in QuickBooks: a person
            # chooses with the record's own actions (DRIFT_FIXES).
            raise SyncActionError(DRIFT_REFUSAL)
        if link.status == SyncStatus.SYNCED and not link.batch_request_id:
            return link  # already in QuickBooks and up to date: nothing to ask for
        was_skipped = link.status == SyncStatus.SKIPPED
        link.attempts = 0
        link.next_retry_at = None
        engine.clear_error(link)
        link.input_hash = ""
        if link.batch_request_id:
            link.status = SyncStatus.SYNCING  # the unanswered batch is replayed as it was
        elif link.qbo_id and was_skipped:
            link.status = SyncStatus.SYNCED  # resume: the hash diff pushes any edits made meanwhile
        else:
            engine.clear_pending(link)
            link.status = SyncStatus.NOT_SYNCED  # the kind decides afresh on the next run
        link.save()
        message = RECORD_RETRY_MESSAGE if operation == "retry" else RECORD_SYNC_MESSAGE
        engine.record_attempt(link, operation=operation, outcome=Outcome.INFO, actor=actor, message=message)
    request_sync(connection)
    return link


def record_sync(*, firm: Firm, kind: str, local_id: int, actor: str = "") -> SyncLink:
    """ "Sync to QuickBooks" for a service, invoice or payment: decided afresh on the next run.

    Refused (SyncActionError, in words) while the record's account is not Synced or the record
    is not eligible (a draft, dated before the sync start date, a manual payment with sync off).
    """
    return _record_sync_again(firm=firm, kind=kind, local_id=local_id, actor=actor, operation="sync")


def record_retry(*, firm: Firm, kind: str, local_id: int, actor: str = "") -> SyncLink:
    """ "Retry" a record in Error (or waiting to retry): same as sync, recorded as a retry."""
    return _record_sync_again(firm=firm, kind=kind, local_id=local_id, actor=actor, operation="retry")


def record_unsync(*, firm: Firm, kind: str, local_id: int, actor: str = "") -> SyncLink:
    """Turn sync off for the record (Skipped): never written, nothing in QBO is deleted (except
    for a payment: product.md §4 "Unsync payment" deletes it and its refunds and fee in QBO; the
    payment kind plans that delete from the Skipped status), and a write already sent keeps its
    identity so that its answer is still recorded."""
    with transaction.atomic():
        _connection, _record, link = _record_and_link(firm=firm, kind=kind, local_id=local_id)
        if link.status == SyncStatus.SKIPPED:
            return link
        if link.status == SyncStatus.ERROR and link.error_kind in ("voided_in_qbo", "deleted_in_qbo"):
            # Voided or deleted in QuickBooks, and left so: the link forgets that QBO record, so
            # an unsynced payment does not try to delete it there (product.md §4) and a later
            # Sync creates the record anew.
            link.qbo_id = ""
            link.qbo_sync_token = ""
            link.pushed_hash = ""
        _turn_off(link)
        link.save()
        engine.record_attempt(
            link, operation="unsync", outcome=Outcome.INFO, actor=actor, message=RECORD_UNSYNC_MESSAGE
        )
    return link


# --------------------------------------------------------------------------------------------
# Problems page (issue 11): retry every record of one kind that is in Error.


def _decide_again(link: SyncLink) -> None:
    """A Retry from "Retry all" or the problems page: out of Error, attempts reset, decided afresh
    on the next run (an unanswered write keeps its identity and is replayed as it was)."""
    link.attempts = 0
    link.next_retry_at = None
    engine.clear_error(link)
    link.input_hash = ""
    if link.batch_request_id:
        link.status = SyncStatus.SYNCING
    else:
        engine.clear_pending(link)
        link.status = SyncStatus.NOT_SYNCED


def _records_retry_page(connection: Connection, *, firm: Firm, kind: str, ids: list[int], actor: str) -> int:
    """One page of "Retry all" for services, invoices or payments in a constant number of
    queries: the records with their accounts, the accounts' links, the locked links, one UPDATE
    and one INSERT. Records that may not be sent now (see `_refuse_unless_eligible`) stay as
    they are."""
    from practice.quickbooks import billing_status

    model = billing_status._model(kind)
    qs = model.objects.filter(firm=firm, pk__in=ids)
    if kind != "service":
        qs = qs.select_related("account")
    records = {r.pk: r for r in qs}
    account_status: dict[int, str] = {}
    if kind != "service":
        account_ids = sorted({r.account_id for r in records.values()})
        account_status = dict(
            SyncLink.objects.filter(connection=connection, kind=KIND, local_id__in=account_ids).values_list(
                "local_id", "status"
            )
        )
    with transaction.atomic():
        links = list(
            SyncLink.objects.select_for_update()
            .filter(connection=connection, kind=kind, local_id__in=list(records), status=SyncStatus.ERROR)
            .exclude(error_kind__in=RECORD_DRIFT)  # changed in QuickBooks: a person chooses
            .order_by("pk")
        )
        changed: list[SyncLink] = []
        for link in links:
            record = records[link.local_id]
            acct = account_status.get(record.account_id, SyncStatus.NOT_SYNCED) if kind != "service" else None
            if not billing_status.sync_eligibility(
                kind, record, connection, account_status=acct, linked=bool(link.qbo_id)
            ).ok:
                continue
            _decide_again(link)
            changed.append(link)
        attempts = [
            engine.attempt_row(
                link, operation="retry", outcome=Outcome.INFO, actor=actor, message=RECORD_RETRY_MESSAGE
            )
            for link in changed
        ]
        engine.save_links_with_attempts(changed, attempts)
    return len(changed)


def retry_errors(*, firm: Firm, kind: str, actor: str = "") -> int:
    """ "Retry all" of one category of the problems page: every record of `kind` in Error is
    decided afresh on the next run (accounts as "Sync again", the others as "Retry"). Returns
    how many were changed; a few statements per page of `BULK_PAGE_SIZE`, whatever the count."""
    from practice.quickbooks import billing_status

    if kind == KIND:
        return accounts_sync_bulk(firm=firm, action="retry_errors", account_ids=[], actor=actor)
    if kind in PAYMENT_PARTS:
        return _payment_parts_retry(firm=firm, kind=kind, local_ids=None, actor=actor)
    if kind not in billing_status.BILLING_KINDS:
        raise ValidationError({"kind": "Choose accounts, services, invoices or payments."})
    connection = _require_connection(firm)
    ids = sorted(
        SyncLink.objects.filter(connection=connection, kind=kind, status=SyncStatus.ERROR).values_list(
            "local_id", flat=True
        )
    )
    done = 0
    for start in range(0, len(ids), BULK_PAGE_SIZE):
        page = ids[start : start + BULK_PAGE_SIZE]
        done += _records_retry_page(connection, firm=firm, kind=kind, ids=page, actor=actor)
    if done:
        request_sync(connection)
    return done


def retry_one(*, firm: Firm, kind: str, local_id: int, actor: str = "") -> SyncLink:
    """ "Retry" on one row of the problems page (an account, a service, an invoice or a payment)."""
    from practice.quickbooks import billing_status

    if kind == KIND:
        account = ClientAccount.objects.filter(firm=firm, pk=local_id).first()
        if account is None:
            raise PermissionDenied
        return account_sync_retry(firm=firm, account=account, actor=actor)
    if kind in PAYMENT_PARTS:
        _payment_parts_retry(firm=firm, kind=kind, local_ids=[local_id], actor=actor)
        link = SyncLink.objects.filter(firm=firm, kind=kind, local_id=local_id).first()
        if link is None:
            raise PermissionDenied
        return link
    if kind not in billing_status.BILLING_KINDS:
        raise ValidationError({"kind": "Choose accounts, services, invoices or payments."})
    return record_retry(firm=firm, kind=kind, local_id=local_id, actor=actor)


# A payment's refunds and its processing fee have no page or menu of their own (they show on the
# payment's page); the problems page retries them here. They follow their payment, so a retry
# only puts the link back to Not synced: the refund and fee kinds decide again on the next run
# (and wait, with a message, while their payment is not in QuickBooks).
PAYMENT_PARTS = ("refund", "fee")


def _payment_parts_retry(*, firm: Firm, kind: str, local_ids: list[int] | None, actor: str) -> int:
    connection = _require_connection(firm)
    found = SyncLink.objects.filter(connection=connection, kind=kind, status=SyncStatus.ERROR).exclude(
        error_kind__in=RECORD_DRIFT  # changed in QuickBooks: fixed with DRIFT_FIXES, not retried
    )
    if local_ids is not None:
        found = found.filter(local_id__in=local_ids)
    done = 0
    ids = sorted(found.values_list("pk", flat=True))
    for start in range(0, len(ids), BULK_PAGE_SIZE):
        with transaction.atomic():
            links = list(
                SyncLink.objects.select_for_update()
                .filter(pk__in=ids[start : start + BULK_PAGE_SIZE], status=SyncStatus.ERROR)
                .order_by("pk")
            )
            for link in links:
                _decide_again(link)
            attempts = [
                engine.attempt_row(
                    link, operation="retry", outcome=Outcome.INFO, actor=actor, message=RECORD_RETRY_MESSAGE
                )
                for link in links
            ]
            engine.save_links_with_attempts(links, attempts)
            done += len(links)
    if done:
        request_sync(connection)
    return done


# --------------------------------------------------------------------------------------------
# Drift (issue 16): a linked record changed inside QuickBooks (sync/drift.py). Accounts are
# fixed with the account actions above (link to the survivor, reactivate and link, create);
# services, invoices, payments, refunds and fees with these.

DRIFT_RECORD_KINDS = ("service", "invoice", "payment", "refund", "fee")
PUSH_OURS_MESSAGE = "Asked to push the app's version again over the one changed in QuickBooks."
ACCEPT_MESSAGE = "Kept QuickBooks' version; nothing was sent."
PUSH_AGAIN_MESSAGE = "Asked to create it again in QuickBooks."
PUSH_AGAIN_VOIDED_MESSAGE = "Asked to create it again in QuickBooks (the voided one, Id %(id)s, stays there)."


def _drift_link(firm: Firm, kind: str, local_id: int, wanted: Iterable[str]) -> tuple[Connection, SyncLink]:
    """The record's link in a drift Error of one of the `wanted` kinds, locked (in a transaction)."""
    if kind not in DRIFT_RECORD_KINDS:
        raise ValidationError({"kind": "Choose a service, an invoice, a payment, a refund or a fee."})
    connection = _require_connection(firm)
    link = (
        SyncLink.objects.select_for_update()
        .filter(connection=connection, kind=kind, local_id=local_id)
        .first()
    )
    if link is None or link.firm_id != firm.pk:
        raise PermissionDenied
    if link.status != SyncStatus.ERROR or link.error_kind not in set(wanted):
        raise SyncActionError("This record has no change made in QuickBooks to resolve any more.")
    _refuse_in_flight(link)
    return connection, link


def _current_token(connection: Connection, kind: str, qbo_id: str, client: QBOClient | None) -> str:
    """The record's SyncToken in QuickBooks now (read live)."""
    from practice.quickbooks.connection.client import QBOClient
    from practice.quickbooks.sync.drift import KIND_ENTITY

    try:
        body = (client or QBOClient(connection)).read(KIND_ENTITY[kind], qbo_id)
    except RecordRejected as e:
        raise SyncActionError(
            "It is no longer in QuickBooks (deleted meanwhile). Use “Push again” once the page shows it."
        ) from e
    except ReauthRequired as e:
        raise SyncActionError("QuickBooks needs to be reconnected (Settings > QuickBooks) first.") from e
    except QBOError as e:
        raise SyncActionError("QuickBooks did not answer. Try again in a moment.") from e
    return str(body.get("SyncToken", ""))


def _drift_qbo_id(firm: Firm, kind: str, local_id: int) -> tuple[Connection, str]:
    connection = _require_connection(firm)
    link = SyncLink.objects.filter(connection=connection, kind=kind, local_id=local_id, firm=firm).first()
    if link is None:
        raise PermissionDenied
    return connection, link.qbo_id


def record_push_ours(
    *, firm: Firm, kind: str, local_id: int, actor: str = "", client: QBOClient | None = None
) -> SyncLink:
    """ "Push ours again" on a record changed in QuickBooks: the next run sends the app's version
    as a sparse update on top of QuickBooks' current SyncToken (read live now)."""
    connection, qbo_id = _drift_qbo_id(firm, kind, local_id)
    token = _current_token(connection, kind, qbo_id, client)
    with transaction.atomic():
        connection, link = _drift_link(firm, kind, local_id, {"changed_in_qbo"})
        if link.qbo_id != qbo_id:
            raise SyncActionError("This record was linked anew meanwhile. Reload the page.")
        engine.clear_pending(link)
        engine.clear_error(link)
        link.qbo_sync_token = token
        # Forget what was pushed: the kind compares the app's body with nothing and sends it all.
        link.pushed_hash = ""
        link.input_hash = ""
        link.status = SyncStatus.NOT_SYNCED
        link.save()
        engine.record_attempt(
            link, operation="push_ours", outcome=Outcome.INFO, actor=actor, message=PUSH_OURS_MESSAGE
        )
    request_sync(connection)
    return link


def record_accept_qbo(
    *, firm: Firm, kind: str, local_id: int, actor: str = "", client: QBOClient | None = None
) -> SyncLink:
    """ "Accept QuickBooks' version": Synced without pushing; QuickBooks' SyncToken is remembered,
    so this version is no longer drift. A later edit in the app is sent as usual."""
    connection, qbo_id = _drift_qbo_id(firm, kind, local_id)
    token = _current_token(connection, kind, qbo_id, client)
    with transaction.atomic():
        connection, link = _drift_link(firm, kind, local_id, {"changed_in_qbo"})
        if link.qbo_id != qbo_id:
            raise SyncActionError("This record was linked anew meanwhile. Reload the page.")
        engine.clear_pending(link)
        engine.clear_error(link)
        link.qbo_sync_token = token
        link.status = SyncStatus.SYNCED
        link.synced_at = timezone.now()
        link.save()
        engine.record_attempt(
            link, operation="accept_qbo", outcome=Outcome.SUCCESS, actor=actor, message=ACCEPT_MESSAGE
        )
    return link


def record_push_again(*, firm: Firm, kind: str, local_id: int, actor: str = "") -> SyncLink:
    """ "Push again" on a record voided or deleted in QuickBooks: created anew by the next run.

    QuickBooks cannot un-void a transaction (its amounts are zeroed and it refuses updates), so a
    voided one stays in QuickBooks as the record of the void and a new one is created; an
    invoice's number is then allowed twice, the voided one being ours (see the invoice kind)."""
    with transaction.atomic():
        connection, link = _drift_link(firm, kind, local_id, {"voided_in_qbo", "deleted_in_qbo"})
        voided = link.error_kind == "voided_in_qbo"
        old = link.qbo_id
        engine.clear_pending(link)
        engine.clear_error(link)
        link.qbo_id = ""
        link.qbo_sync_token = ""
        link.qbo_name = ""
        link.pushed_hash = ""
        link.input_hash = ""
        link.status = SyncStatus.NOT_SYNCED
        if voided:
            link.target_qbo_id = old  # the voided invoice that may keep the same number
        link.save()
        message = PUSH_AGAIN_VOIDED_MESSAGE % {"id": old} if voided else PUSH_AGAIN_MESSAGE
        engine.record_attempt(
            link, operation="push_again", outcome=Outcome.INFO, actor=actor, message=message
        )
    request_sync(connection)
    return link


DRIFT_ACTIONS: dict[str, Callable[..., SyncLink]] = {
    "push_ours": record_push_ours,
    "accept_qbo": record_accept_qbo,
    "push_again": record_push_again,
}
