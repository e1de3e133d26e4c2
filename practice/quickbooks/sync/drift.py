"""Drift: what changed inside QuickBooks on records the app has linked (issue 16 items 2-3).

`apply_change_notices(connection_id)` looks at the connection's unapplied `ChangeNotice` rows
(webhook or CDC, models/changes.py). A notice is only "entity X changed" (qbo-api.md §9.4: late,
twice, out of order), so this never trusts its content: it keeps the notices whose entity is
linked (a `SyncLink.qbo_id` of the matching kind; the rest are marked applied without a read),
re-reads those entities from QBO in pages (`Id IN (...)`, at most READ_PAGE ids a query) and
compares what it finds with the link:

- customer inactive, deleted (QBO's "delete" of a name is Active=false and a " (deleted)" name),
  gone, or merged into another (a Merge notice: `deleted_id` is ours, `entity_id` survives; with
  CDC alone, a customer gone whose transactions now all name one other customer) ->
  Error with the survivor or the inactive customer as candidate, so the account's Info tab offers
  Link / Reactivate and link / Create, as for a matching error;
- invoice, payment, refund, fee or item whose SyncToken moved past the one our own last write
  got back (`SyncLink.qbo_sync_token`), and whose content in QBO now differs from the app's ->
  "changed_in_qbo" (actions: "Push ours again", "Accept QuickBooks' version"). A moved token
  with the same content (a payment applied to the invoice, an e-mail sent from QBO) only
  remembers the new token: that is not a change of the books;
- voided or deleted in QBO (not by us) -> "voided_in_qbo" / "deleted_in_qbo" (actions: "Push
  again", "Unsync").

Our own writes are never drift: the engine stores the SyncToken QBO answered, so an entity read
back at that token (or an older one, from a late notice) is ours. Safe beside the engine: the
check holds the realm's lease (engine.claim_lease) while it reads and writes, so no run sends
anything meanwhile; a link with a write in flight (an interrupted run) keeps its notices for the
next check. Idempotent: a record already in the same drift Error is left as it is.

Records in a drift Error wait for a person (statuses.DRIFT_ERRORS): the planners skip them and
the engine drops a write planned for one (engine._still_wanted).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from practice.quickbooks.connection.errors import QBOError
from practice.quickbooks.models import ChangeNotice, Connection, CustomerBalance, SyncAttempt, SyncLink
from practice.quickbooks.statuses import DRIFT_ERRORS, Outcome, SyncStatus
from practice.quickbooks.sync import engine

if TYPE_CHECKING:
    from practice.quickbooks.connection.client import QBOClient

logger = logging.getLogger("practice.quickbooks.drift")

# The QBO entity each linked kind is, and back.
KIND_ENTITY = {
    "customer": "Customer",
    "service": "Item",
    "invoice": "Invoice",
    "payment": "Payment",
    "refund": "RefundReceipt",
    "fee": "Purchase",
}
ENTITY_KINDS: dict[str, tuple[str, ...]] = {}
for _kind, _entity in KIND_ENTITY.items():
    ENTITY_KINDS[_entity] = (*ENTITY_KINDS.get(_entity, ()), _kind)
# Name lists: QBO "deletes" them by making them inactive, and a query without a mention of Active
# returns only active ones (qbo-api.md §2.0).
NAME_LISTS = {"Customer", "Item"}
# Notices of these entities touch a customer's QBO totals (reconciliation cache, CustomerBalance).
BALANCE_ENTITIES = {"Customer", "Invoice", "Payment", "RefundReceipt", "CreditMemo"}
READ_PAGE = 100  # ids per `Id IN (...)` query
NOTICE_PAGE = 500  # notices looked at per transaction
# pushed_hash markers the invoice and payment kinds use for what they did themselves.
VOIDED_BY_US = "voided"
DELETED_BY_US = "deleted"
# History operation of a drift decision (models/sync.py OPERATION_LABELS).
OP_DRIFT = "drift"

# What the record shows (English, stored; history_text.SENTENCES and messages.error_text show
# them in the reader's language).
CUSTOMER_INACTIVE_MESSAGE = (
    "The QuickBooks customer “%(name)s” was made inactive in QuickBooks. Reactivate and link it, "
    "link the account to another customer, or create a new one."
)
CUSTOMER_DELETED_MESSAGE = (
    "The QuickBooks customer “%(name)s” was deleted in QuickBooks. Reactivate and link it, "
    "link the account to another customer, or create a new one."
)
CUSTOMER_GONE_MESSAGE = (
    "The QuickBooks customer “%(name)s” this account was linked to no longer exists. "
    "Link the account to another customer, or create a new one."
)
MERGED_MESSAGE = (
    "In QuickBooks, the customer “%(old)s” was merged into “%(new)s”. Link this account to the "
    "customer it was merged into, link it to another customer, or create a new one."
)
MERGED_AWAY_MESSAGE = (
    "The QuickBooks customer “%(name)s” was merged into another one that is no longer active. "
    "Link the account to another customer, or create a new one."
)
CHANGED_MESSAGE = (
    "Changed in QuickBooks: %(what)s. Push ours again to put the app's version back in "
    "QuickBooks, or accept QuickBooks' version (nothing is sent)."
)
VOIDED_MESSAGE = (
    "Voided in QuickBooks. QuickBooks cannot un-void it: Push again creates a new one there (the "
    "voided one stays), or Unsync it to leave QuickBooks as it is."
)
DELETED_MESSAGE = (
    "Deleted in QuickBooks. Push again creates it there anew, or Unsync it to leave QuickBooks as it is."
)


@dataclass
class Verdict:
    """What a re-read found about one link: an Error to show, or only a newer token to remember."""

    link: SyncLink
    error_kind: str = ""
    message: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    sync_token: str = ""
    name: str = ""


@dataclass
class Check:
    connection: Connection
    client: QBOClient
    owner: str
    renewed: float = field(default_factory=time.monotonic)
    found: int = 0
    # QBO ids of linked customers judged merged away, gone or inactive in this check.
    moved: set[str] = field(default_factory=set)

    def keep_lease(self, *, force: bool = False) -> None:
        """Renew the realm's lease every sixth of its length (the client calls this before every
        request and while it waits); raise LeaseLost when another runner took the realm."""
        now = time.monotonic()
        if not force and now - self.renewed < engine.lease_seconds() / 6:
            return
        if not engine.renew_lease(self.connection.pk, self.owner):
            raise engine.LeaseLost
        self.renewed = now


# --------------------------------------------------------------------------------------------
# Entry point


def apply_change_notices(connection_id: int, *, client: QBOClient | None = None) -> int:
    """Apply the connection's unapplied notices (any source). Returns how many were applied.

    Nothing happens for a connection that is not connected, not set up or paused (the notices
    wait), nor while another runner holds the realm (`held_until` says when to look again). A
    QBO failure (429, 5xx, reconnect needed) stops the check; the notices not applied yet wait
    for the next one (the CDC sweep or the next webhook).
    """
    from practice.quickbooks.connection.client import QBOClient

    connection = Connection.objects.filter(pk=connection_id).select_related("firm").first()
    if connection is None or not _may_read(connection):
        return 0
    if not ChangeNotice.objects.filter(connection=connection, applied_at__isnull=True).exists():
        return 0
    owner = f"drift-{uuid.uuid4().hex[:16]}"
    if not engine.claim_lease(connection_id, owner):
        return 0  # a run holds the realm; tasks asks again at its lease's expiry (`held_until`)
    applied = 0
    held: set[int] = set()
    try:
        check = Check(connection=connection, client=client or QBOClient(connection), owner=owner)
        check.client.heartbeat = check.keep_lease
        while True:
            notices = list(
                ChangeNotice.objects.filter(connection=connection, applied_at__isnull=True)
                .exclude(pk__in=held)
                .order_by("pk")[:NOTICE_PAGE]
            )
            if not notices:
                break
            done, waiting = _apply_page(check, notices)
            applied += done
            held |= waiting
            if not done:
                break
    except engine.LeaseLost:
        logger.warning("qbo.drift.lease_lost", extra={"connection": connection_id})
    except QBOError as e:
        # Reconnect needed (the client marked it), a 429 or QBO away: the rest waits.
        logger.warning("qbo.drift.stopped", extra={"connection": connection_id, "error": str(e)})
    finally:
        engine.release_lease(connection_id, owner)
    if applied:
        logger.info("qbo.drift.applied", extra={"connection": connection_id, "notices": applied})
    return applied


def _may_read(connection: Connection) -> bool:
    return connection.is_connected and connection.is_set_up and not connection.is_paused


def held_until(connection_id: int) -> datetime | None:
    """When notices wait because another runner holds the realm: a moment after its lease runs
    out (when to look again); else None."""
    if not ChangeNotice.objects.filter(connection_id=connection_id, applied_at__isnull=True).exists():
        return None
    now = timezone.now()
    expires = (
        Connection.objects.filter(pk=connection_id, lease_expires_at__gte=now)
        .exclude(lease_owner="")
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    return expires + timedelta(seconds=1) if expires is not None else None


# --------------------------------------------------------------------------------------------
# One page of notices


def _apply_page(check: Check, notices: list[ChangeNotice]) -> tuple[int, set[int]]:
    """Look at one page of notices; returns (applied, ids of notices kept for later)."""
    connection = check.connection
    merged_into: dict[tuple[str, str], str] = {}
    wanted: dict[str, set[str]] = {}
    for n in notices:
        if n.entity not in ENTITY_KINDS:
            continue
        wanted.setdefault(n.entity, set()).add(n.entity_id)
        if n.operation == "Merge" and n.deleted_id:
            merged_into[(n.entity, n.deleted_id)] = n.entity_id
            wanted[n.entity].add(n.deleted_id)
    links = _linked(connection, wanted)
    in_flight = {(KIND_ENTITY[link.kind], link.qbo_id) for link in links if link.batch_request_id}
    held = {
        n.pk for n in notices if (n.entity, n.entity_id) in in_flight or (n.entity, n.deleted_id) in in_flight
    }
    settled = [link for link in links if not link.batch_request_id]
    # Entities to read: the linked ones and the survivors of merges that took a linked one.
    to_read: dict[str, set[str]] = {}
    for link in settled:
        entity = KIND_ENTITY[link.kind]
        to_read.setdefault(entity, set()).add(link.qbo_id)
        survivor = merged_into.get((entity, link.qbo_id))
        if survivor:
            to_read[entity].add(survivor)
    bodies = {entity: _read(check, entity, ids) for entity, ids in to_read.items()}
    _infer_merges(check, settled, bodies, merged_into)
    _note_names(connection, to_read.get("Customer", set()), bodies.get("Customer", {}), merged_into)
    # Customers judged first: a transaction of a customer merged away or gone names another
    # customer now, which that customer's Error explains (not a change of the transaction).
    settled.sort(key=lambda link: link.kind != "customer")
    verdicts = [v for v in (_judge(check, link, bodies, merged_into) for link in settled) if v is not None]
    customers = _customers_touched(notices, bodies)
    with transaction.atomic():
        check.keep_lease(force=True)
        _record(check, verdicts)
        done = [n.pk for n in notices if n.pk not in held]
        ChangeNotice.objects.filter(pk__in=done, applied_at__isnull=True).update(applied_at=timezone.now())
        _mark_stale(connection, customers)
    return len(done), held


def _infer_merges(
    check: Check,
    links: list[SyncLink],
    bodies: dict[str, dict[str, dict[str, Any]]],
    merged_into: dict[tuple[str, str], str],
) -> None:
    """A linked customer gone from QBO without a Merge notice (CDC reports the record merged away
    only as deleted, §9.4): when the account's transactions read in this page now all name one
    other customer, QBO moved them there in a merge, so that customer is offered as the survivor."""
    gone = {
        link.local_id: link.qbo_id
        for link in links
        if link.kind == "customer"
        and link.qbo_id not in bodies.get("Customer", {})
        and ("Customer", link.qbo_id) not in merged_into
    }
    if not gone:
        return
    from practice.billing.models import Invoice, Payment

    accounts: dict[tuple[str, int], int] = {}
    for kind, model in (("invoice", Invoice), ("payment", Payment)):
        ids = [link.local_id for link in links if link.kind == kind]
        if ids:
            for pk, account_id in model.objects.filter(pk__in=ids).values_list("pk", "account_id"):
                accounts[(kind, pk)] = account_id
    named: dict[int, set[str]] = {}
    for link in links:
        owner = accounts.get((link.kind, link.local_id))
        body = bodies.get(KIND_ENTITY[link.kind], {}).get(link.qbo_id)
        if owner is not None and owner in gone and body is not None:
            named.setdefault(owner, set()).add(_ref(body, "CustomerRef"))
    survivors: dict[str, str] = {}
    for account_id, refs in named.items():
        refs.discard(gone[account_id])
        if len(refs) == 1 and "" not in refs:
            survivors[gone[account_id]] = refs.pop()
    if survivors:
        found = _read(check, "Customer", set(survivors.values()))
        bodies.setdefault("Customer", {}).update(found)
        for loser, survivor in survivors.items():
            merged_into[("Customer", loser)] = survivor


def _note_names(
    connection: Connection,
    asked: set[str],
    found: dict[str, dict[str, Any]],
    merged_into: dict[tuple[str, str], str],
) -> None:
    """What the check read keeps the realm's name index true (kinds/names.py): customers found are
    stored as read; one asked for and not found (deleted, merged away) or merged away is removed,
    as a query would no longer return it."""
    from practice.quickbooks.sync.kinds import names

    gone = {i for i in asked if i not in found}
    gone.update(loser for (entity, loser), _survivor in merged_into.items() if entity == "Customer")
    gone.difference_update(found)
    names.forget(connection, "Customer", gone)
    names.remember(connection, "Customer", found.values())


def _linked(connection: Connection, wanted: dict[str, set[str]]) -> list[SyncLink]:
    """The connection's links to any of `wanted` ({entity: ids}), one query. Skipped records and
    records the app deleted from QBO itself are not the app's concern any more."""
    if not wanted:
        return []
    where = Q()
    for entity, ids in wanted.items():
        where |= Q(kind__in=ENTITY_KINDS[entity], qbo_id__in=sorted(ids))
    return list(
        SyncLink.objects.filter(connection=connection)
        .filter(where)
        .exclude(status=SyncStatus.SKIPPED)
        .exclude(pushed_hash=DELETED_BY_US)
        .order_by("pk")
    )


def _read(check: Check, entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{Id: body} of the entities QBO still has among `ids` (a deleted transaction is absent)."""
    from practice.quickbooks.connection.client import quote

    wanted = sorted(ids, key=lambda i: (len(i), i))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), READ_PAGE):
        chunk = wanted[start : start + READ_PAGE]
        where = f"Id IN ({', '.join(quote(i) for i in chunk)})"
        if entity in NAME_LISTS:
            where += " AND Active IN (true, false)"
        for body in check.client.query_all(entity, where, page_size=READ_PAGE):
            found[str(body.get("Id"))] = body
    check.found += len(found)
    return found


# --------------------------------------------------------------------------------------------
# Judging one link


def _token(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return -1


def _judge(
    check: Check,
    link: SyncLink,
    bodies: dict[str, dict[str, dict[str, Any]]],
    merged_into: dict[tuple[str, str], str],
) -> Verdict | None:
    entity = KIND_ENTITY[link.kind]
    found = bodies.get(entity, {})
    body = found.get(link.qbo_id)
    if link.kind == "customer":
        survivor_id = merged_into.get((entity, link.qbo_id))
        if survivor_id and survivor_id != link.qbo_id:
            verdict: Verdict | None = _merged(link, body, found.get(survivor_id), survivor_id)
        else:
            verdict = _customer(link, body)
        if verdict is not None and verdict.error_kind:
            check.moved.add(link.qbo_id)
        return verdict
    if body is None:
        return Verdict(
            link,
            error_kind="deleted_in_qbo",
            message=DELETED_MESSAGE,
        )
    token = str(body.get("SyncToken", ""))
    if _token(token) <= _token(link.qbo_sync_token):
        return None  # our own write read back, or a late notice of an older version
    if link.kind in ("invoice", "payment", "refund", "fee") and _is_voided(body):
        if link.pushed_hash == VOIDED_BY_US:
            return Verdict(link, sync_token=token)  # our own void: remember its token
        return Verdict(
            link,
            error_kind="voided_in_qbo",
            message=VOIDED_MESSAGE,
            sync_token=token,
        )
    differences = _differences(check, link, body)
    if not differences:
        return Verdict(link, sync_token=token)  # e.g. a payment applied to it, or e-mailed
    return Verdict(
        link,
        error_kind="changed_in_qbo",
        message=CHANGED_MESSAGE % {"what": "; ".join(differences)},
        sync_token=token,
    )


def _is_voided(body: dict[str, Any]) -> bool:
    """How QBO shows a voided transaction: zero total and "Voided" leading the PrivateNote
    (qbo-api.md §2.5)."""
    return Decimal(str(body.get("TotalAmt") or 0)) == 0 and str(body.get("PrivateNote") or "").startswith(
        "Voided"
    )


def _customer(link: SyncLink, body: dict[str, Any] | None) -> Verdict | None:
    if body is None:
        return Verdict(
            link,
            error_kind="customer_gone",
            message=CUSTOMER_GONE_MESSAGE % {"name": link.qbo_name},
        )
    name = str(body.get("DisplayName") or link.qbo_name)
    token = str(body.get("SyncToken", ""))
    if body.get("Active", True) is False:
        deleted = name.rstrip().endswith("(deleted)")
        candidate = {"id": str(body.get("Id")), "name": name, "active": False, "entity": "Customer"}
        return Verdict(
            link,
            error_kind="customer_deleted" if deleted else "customer_inactive",
            message=(CUSTOMER_DELETED_MESSAGE if deleted else CUSTOMER_INACTIVE_MESSAGE) % {"name": name},
            candidates=[candidate],
            sync_token=token,
            name=name,
        )
    if _token(token) > _token(link.qbo_sync_token) or name != link.qbo_name:
        # Edited in QuickBooks (a new e-mail, a new name): the app pushes no customer fields, so
        # only the name and version are remembered.
        return Verdict(link, sync_token=token, name=name)
    return None


def _merged(
    link: SyncLink, loser: dict[str, Any] | None, survivor: dict[str, Any] | None, survivor_id: str
) -> Verdict:
    old = str((loser or {}).get("DisplayName") or link.qbo_name)
    if survivor is None or survivor.get("Active", True) is False:
        return Verdict(
            link,
            error_kind="customer_gone",
            message=MERGED_AWAY_MESSAGE % {"name": old},
        )
    new = str(survivor.get("DisplayName") or "")
    return Verdict(
        link,
        error_kind="customer_merged",
        message=MERGED_MESSAGE % {"old": old, "new": new},
        candidates=[{"id": survivor_id, "name": new, "active": True, "entity": "Customer"}],
    )


# --------------------------------------------------------------------------------------------
# What differs between QBO's version and the app's


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _show(value: Decimal) -> str:
    return f"${value:,.2f}"


def _customer_id(check: Check, account_id: int) -> str:
    """The QBO customer the account is linked to, or "" when that says nothing now: the account
    is not linked, or its customer was merged away, deleted or made inactive in QBO (its own
    Error explains why the transaction names another customer there)."""
    row = (
        SyncLink.objects.filter(connection=check.connection, kind="customer", local_id=account_id)
        .values_list("qbo_id", "status", "error_kind")
        .first()
    )
    if row is None:
        return ""
    qbo_id, status, error_kind = row
    if qbo_id in check.moved or (status == SyncStatus.ERROR and error_kind in DRIFT_ERRORS):
        return ""
    return str(qbo_id)


def _ref(body: dict[str, Any], key: str) -> str:
    ref = body.get(key)
    return str(ref.get("value", "")) if isinstance(ref, dict) else ""


def _differences(check: Check, link: SyncLink, body: dict[str, Any]) -> list[str]:
    """What QBO's version says differently from the app's record, in words (empty: the same)."""
    if link.kind == "invoice":
        return _invoice_differences(check, link, body)
    if link.kind == "payment":
        return _payment_differences(check, link, body)
    if link.kind == "service":
        return _item_differences(link, body)
    return _total_differences(link, body)


def _total_without_tax(body: dict[str, Any]) -> tuple[Decimal, Decimal]:
    total = _money(body.get("TotalAmt"))
    detail = body.get("TxnTaxDetail")
    tax = _money(detail.get("TotalTax") if isinstance(detail, dict) else 0)
    return total, tax


def _invoice_differences(check: Check, link: SyncLink, body: dict[str, Any]) -> list[str]:
    from practice.billing.models import Invoice

    invoice = Invoice.objects.filter(pk=link.local_id).prefetch_related("lines").first()
    if invoice is None:
        return []
    out: list[str] = []
    lines = list(invoice.lines.all())
    ours = sum((ln.amount for ln in lines), Decimal("0.00"))
    total, tax = _total_without_tax(body)
    if ours not in (total, total - tax):
        out.append(f"the total is {_show(total)} there and {_show(ours)} in the app")
    issued, due = invoice.issue_date.isoformat(), invoice.due_date.isoformat()
    if str(body.get("TxnDate", ""))[:10] != issued:
        out.append(f"the invoice date is {body.get('TxnDate')} there and {issued} here")
    if body.get("DueDate") and str(body.get("DueDate"))[:10] != due:
        out.append(f"the due date is {body.get('DueDate')} there and {due} here")
    number = str(body.get("DocNumber") or "")
    # Compared only when QBO kept the app's numbers (custom transaction numbers on).
    if number and number != invoice.number and link.qbo_name == invoice.number:
        out.append(f"its number is {number} there and {invoice.number} here")
    customer = _customer_id(check, invoice.account_id)
    if customer and _ref(body, "CustomerRef") != customer:
        out.append("it is billed to another customer there")
    sales = [ln for ln in body.get("Line") or [] if ln.get("DetailType") == "SalesItemLineDetail"]
    if total in (_money(ours), _money(ours) + tax) and len(sales) != len(lines):
        out.append(f"it has {len(sales)} line(s) there and {len(lines)} here")
    return out


def _payment_differences(check: Check, link: SyncLink, body: dict[str, Any]) -> list[str]:
    from practice.billing.models import Payment, PaymentAllocation

    payment = Payment.objects.filter(pk=link.local_id).first()
    if payment is None:
        return []
    out: list[str] = []
    total = _money(body.get("TotalAmt"))
    if total != _money(payment.amount):
        out.append(f"the amount is {_show(total)} there and {_show(_money(payment.amount))} in the app")
    if str(body.get("TxnDate", ""))[:10] != payment.date.isoformat():
        out.append(f"the date is {body.get('TxnDate')} there and {payment.date.isoformat()} here")
    customer = _customer_id(check, payment.account_id)
    if customer and _ref(body, "CustomerRef") != customer:
        out.append("it is from another customer there")
    applied_there = Decimal("0.00")
    for line in body.get("Line") or []:
        if any(str(t.get("TxnType")) == "Invoice" for t in line.get("LinkedTxn") or []):
            applied_there += _money(line.get("Amount"))
    applied_here = sum((a.amount for a in PaymentAllocation.objects.filter(payment=payment)), Decimal("0.00"))
    if applied_there != _money(applied_here):
        here = _show(_money(applied_here))
        out.append(f"{_show(applied_there)} of it is applied to invoices there and {here} here")
    return out


def _total_differences(link: SyncLink, body: dict[str, Any]) -> list[str]:
    """Refunds and processing fees: their amount."""
    from practice.billing.models import Payment, Refund

    if link.kind == "refund":
        refund = Refund.objects.filter(pk=link.local_id).first()
        ours = _money(refund.amount) if refund is not None else None
    else:
        payment = Payment.objects.filter(pk=link.local_id).first()
        ours = _money(payment.processing_fee) if payment is not None else None
    total = _money(body.get("TotalAmt"))
    if ours is None or total == ours:
        return []
    return [f"the amount is {_show(total)} there and {_show(ours)} in the app"]


def _item_differences(link: SyncLink, body: dict[str, Any]) -> list[str]:
    from practice.billing.models import Service
    from practice.quickbooks.sync.mappers.service import item_state

    service = Service.objects.filter(pk=link.local_id).first()
    if service is None:
        return []
    state = item_state(service)
    out: list[str] = []
    if str(body.get("Name", "")) != state["Name"]:
        out.append(f"the item is named “{body.get('Name')}” there and “{state['Name']}” here")
    if bool(body.get("Active", True)) != state["Active"]:
        out.append("it was made inactive there" if state["Active"] else "it was made active again there")
    return out


# --------------------------------------------------------------------------------------------
# Recording


def _record(check: Check, verdicts: list[Verdict]) -> None:
    """Save the verdicts (inside the caller's transaction, lease checked): each link re-read under
    lock, and left alone if it moved on meanwhile (a person re-linked it, a write went out)."""
    if not verdicts:
        return
    locked = {
        link.pk: link
        for link in SyncLink.objects.select_for_update().filter(pk__in=[v.link.pk for v in verdicts])
    }
    now = timezone.now()
    changed: list[SyncLink] = []
    attempts: list[SyncAttempt] = []
    for v in verdicts:
        link = locked.get(v.link.pk)
        if (
            link is None
            or link.batch_request_id
            or link.qbo_id != v.link.qbo_id
            or link.status == SyncStatus.SKIPPED
        ):
            continue
        if not v.error_kind:
            # Only a newer version to remember (never an older one: notices come out of order).
            moved = False
            if v.sync_token and _token(v.sync_token) > _token(link.qbo_sync_token):
                link.qbo_sync_token = v.sync_token
                moved = True
            if v.name and link.kind == "customer" and v.name != link.qbo_name:
                link.qbo_name = v.name
                moved = True
            if moved:
                changed.append(link)
            continue
        if link.status == SyncStatus.ERROR and link.error_kind == v.error_kind:
            continue  # already shown (a repeated or late notice)
        engine.mark_error(link, error_kind=v.error_kind, message=v.message, candidates=v.candidates)
        link.status = SyncStatus.ERROR
        link.last_attempt_at = now
        changed.append(link)
        attempts.append(
            engine.attempt_row(link, operation=OP_DRIFT, outcome=Outcome.ERROR, message=v.message)
        )
    engine.save_links_with_attempts(changed, attempts)
    for link in changed:
        if link.error_kind in DRIFT_ERRORS:
            logger.info(
                "qbo.drift.found",
                extra={"connection": check.connection.pk, "record": link.pk, "kind": link.error_kind},
            )


def _customers_touched(
    notices: list[ChangeNotice], bodies: dict[str, dict[str, dict[str, Any]]]
) -> set[str] | None:
    """QBO customer ids whose totals the notices may have changed; None: unknown (all of them).
    CDC notices were counted by the sweep from the full payload it read."""
    touched: set[str] = set()
    for n in notices:
        if n.entity not in BALANCE_ENTITIES or n.source == "cdc":
            continue
        if n.entity == "Customer":
            touched.add(n.entity_id)
            if n.deleted_id:
                touched.add(n.deleted_id)
            continue
        body = bodies.get(n.entity, {}).get(n.entity_id)
        ref = _ref(body, "CustomerRef") if body else ""
        if not ref:
            return None
        touched.add(ref)
    return touched


def _mark_stale(connection: Connection, customers: set[str] | None) -> None:
    """Mark the reconciliation figures of these customers out of date and have them re-read in
    the background (only theirs: `balances.customers_due` picks the stale rows), so the page shows
    QuickBooks' new totals without waiting for someone to open it."""
    rows = CustomerBalance.objects.filter(connection=connection, stale=False)
    if customers is None:
        marked = rows.update(stale=True)
    elif customers:
        marked = rows.filter(qbo_customer_id__in=sorted(customers)).update(stale=True)
    else:
        marked = 0
    if marked:
        from practice.quickbooks.sync.balances import refresh_customer_balances

        connection_id = connection.pk
        transaction.on_commit(lambda: refresh_customer_balances.enqueue(connection_id))


def mark_balances_stale(connection: Connection, customer_ids: Iterable[str] | None) -> None:
    """For the CDC sweep: the customers whose totals its payload touched (None: all)."""
    _mark_stale(connection, None if customer_ids is None else set(customer_ids))


def is_drift(link: SyncLink) -> bool:
    return link.status == SyncStatus.ERROR and link.error_kind in DRIFT_ERRORS


__all__ = ["apply_change_notices", "held_until", "is_drift", "mark_balances_stale"]
