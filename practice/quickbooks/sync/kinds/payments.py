"""The "payment" record kind (issue 10 item 3): the app's payments -> QBO Payments, applied to
the QBO invoices they pay (billing-contract.md; qbo-api.md §2.6).

Which payments go: recorded, of an account whose customer is Synced, dated on or after the
connection's sync start date, and, when entered by hand (`created_manually`), only when their
`sync_to_quickbooks` resolves on (None follows the connection's `sync_manual_payments`).

A payment waits (Not synced, with a message naming what it waits for) until its account and every
invoice it pays are in QBO. Applied to an invoice that will never be synced (dated before the
sync start date, or Skipped by a person) it is an Error that says what to do: QBO must never show
a payment applied differently from the app. Allocation changes are sparse updates (the Line array
is replaced whole); a payment deleted in the app is deleted in QBO.

After every push QBO's `UnappliedAmt` is compared with the app's (amount − allocations): a
difference means QBO applied the payment differently (an invoice's balance differs there) and is
an Error naming both amounts.

Importing this module registers the kind with the engine (order 40, after customers and invoices).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from practice.billing.models import Payment, PaymentAllocation, PaymentMethod, PaymentState
from practice.clients.models import ClientAccount
from practice.quickbooks.connection.client import quote
from practice.quickbooks.connection.errors import RecordRejected, RequestRefused
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus, held_by_drift
from practice.quickbooks.sync import engine, realm_facts
from practice.quickbooks.sync.mappers.payment import (
    AppliedLine,
    PaymentFacts,
    carries_marker,
    content_of,
    cut_reference_note,
    input_hash,
    payment_body,
    unapplied_in,
)

logger = logging.getLogger("practice.quickbooks.sync")

KIND = "payment"
FACTS_PAGE = 1000  # payments decided per page (their allocations read together)
ENTITY = "Payment"
# History operations of this kind (labels in models/sync.py OPERATION_LABELS; the last four
# are shared with the other billing kinds).
OP_CREATE = "create_payment"
OP_UPDATE = "update"
OP_DELETE = "delete"
OP_WAIT = "wait"
OP_CHECK = "check"
# `pushed_hash` of a payment deleted in QBO (its link keeps the history, no QBO Id).
DELETED = "deleted"
# Error kinds set by this kind's own checks (the others come from QBO's faults).
INVOICE_NOT_SYNCED = "invoice_not_synced"
AMOUNT_MISMATCH = "amount_mismatch"
# QBO payment methods for the app's methods, by name (the first one the realm has is used).
_METHOD_NAMES = {
    PaymentMethod.CASH: ("cash",),
    PaymentMethod.CHECK: ("check", "cheque"),
    PaymentMethod.CARD: ("credit card", "card"),
    PaymentMethod.ACH: ("ach", "bank transfer", "eft"),
}
_READ_CHUNK = 500
# input_hash of a planned delete: what it was decided on is "deleted in the app".
_DELETE_INPUT = input_hash(["deleted"])
_CENTS = Decimal("0.01")


# --------------------------------------------------------------------------------------------
# Eligibility


def resolves_on(connection: Connection, *, created_manually: bool, sync_to_quickbooks: bool | None) -> bool:
    """Whether a payment's own switch lets it sync: payments from a processor always do; a manual
    one follows its `sync_to_quickbooks`, or the connection's default when that is None."""
    if not created_manually:
        return True
    if sync_to_quickbooks is None:
        return bool(connection.sync_manual_payments)
    return bool(sync_to_quickbooks)


def is_eligible(connection: Connection, payment: Payment) -> bool:
    """Recorded, on or after the sync start date, and switched on (see `resolves_on`)."""
    if payment.state != PaymentState.RECORDED:
        return False
    if connection.sync_start_date and payment.date < connection.sync_start_date:
        return False
    return resolves_on(
        connection, created_manually=payment.created_manually, sync_to_quickbooks=payment.sync_to_quickbooks
    )


# --------------------------------------------------------------------------------------------
# Realm look-ups (once per run, only when a body is built)


def _deposit_account_id(ctx: engine.RunContext) -> str:
    """The connection's deposit-to account, else the realm's "Undeposited Funds" (kept between
    runs, sync/realm_facts.py), else "" (QBO then deposits to Undeposited Funds itself,
    qbo-api.md §2.6)."""
    if ctx.connection.deposit_account_id:
        return str(ctx.connection.deposit_account_id)

    def read() -> str:
        for account in ctx.client.query_all("Account", f"Name = {quote('Undeposited Funds')}"):
            return str(account.get("Id", ""))
        return ""

    return str(realm_facts.get(ctx, realm_facts.UNDEPOSITED, read))


def _payment_method_id(ctx: engine.RunContext, method: str) -> str:
    """The realm's PaymentMethod for the app's method, by name ("" when it has none)."""

    def read() -> dict[str, str]:
        names: dict[str, str] = {}
        for pm in ctx.client.query_all("PaymentMethod"):
            names.setdefault(str(pm.get("Name", "")).strip().casefold(), str(pm.get("Id", "")))
        return names

    # Kept between runs (sync/realm_facts.py); a refused PaymentMethodRef marks it stale.
    methods: dict[str, str] = realm_facts.get(ctx, realm_facts.PAYMENT_METHODS, read)
    for name in _METHOD_NAMES.get(method, ()):  # type: ignore[call-overload]
        if name in methods:
            return methods[name]
    return ""


# --------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Allocation:
    invoice_id: int
    number: str
    issue_date: date
    amount: Decimal


@dataclass
class _InvoiceLink:
    status: str
    qbo_id: str


@dataclass
class _Facts:
    """Everything read in bulk for the payments a round decides."""

    allocations: dict[int, list[_Allocation]] = field(default_factory=dict)
    invoice_links: dict[int, _InvoiceLink] = field(default_factory=dict)
    customers: dict[int, dict[str, str]] = field(default_factory=dict)
    account_names: dict[int, str] = field(default_factory=dict)


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _READ_CHUNK):
        yield values[start : start + _READ_CHUNK]


def _read_facts(connection: Connection, payments: Sequence[Payment]) -> _Facts:
    facts = _Facts()
    ids = sorted({p.pk for p in payments})
    for chunk in _chunks(ids):
        rows = PaymentAllocation.objects.filter(payment_id__in=chunk).values_list(
            "payment_id", "invoice_id", "invoice__number", "invoice__issue_date", "amount"
        )
        for payment_id, invoice_id, number, issue_date, amount in rows:
            facts.allocations.setdefault(payment_id, []).append(
                _Allocation(invoice_id=invoice_id, number=number, issue_date=issue_date, amount=amount)
            )
    invoice_ids = sorted({a.invoice_id for rows in facts.allocations.values() for a in rows})
    for chunk in _chunks(invoice_ids):
        for local_id, status, qbo_id in SyncLink.objects.filter(
            connection=connection, kind="invoice", local_id__in=chunk
        ).values_list("local_id", "status", "qbo_id"):
            facts.invoice_links[local_id] = _InvoiceLink(status=status, qbo_id=qbo_id)
    account_ids = sorted({p.account_id for p in payments})
    for chunk in _chunks(account_ids):
        # The bulk form of engine.dependency_ref(ctx, "customer", account_id).
        for local_id, qbo_id, qbo_name in (
            SyncLink.objects.filter(
                connection=connection, kind="customer", local_id__in=chunk, status=SyncStatus.SYNCED
            )
            .exclude(qbo_id="")
            .values_list("local_id", "qbo_id", "qbo_name")
        ):
            facts.customers[local_id] = {"value": qbo_id, "name": qbo_name}
        facts.account_names.update(ClientAccount.objects.filter(pk__in=chunk).values_list("pk", "name"))
    return facts


def _input_parts(payment: Payment, facts: _Facts) -> list[Any]:
    """What a decision about `payment` depends on: its own fields, its allocations and where each
    invoice it pays stands (so syncing a Skipped invoice again re-decides an Error)."""
    allocations = sorted(facts.allocations.get(payment.pk, []), key=lambda a: a.invoice_id)
    return [
        payment.account_id,
        payment.date.isoformat(),
        str(payment.amount),
        payment.reference,
        payment.method,
        payment.state,
        [
            [
                a.invoice_id,
                str(a.amount),
                (facts.invoice_links.get(a.invoice_id) or _InvoiceLink("", "")).status,
                (facts.invoice_links.get(a.invoice_id) or _InvoiceLink("", "")).qbo_id,
            ]
            for a in allocations
        ],
    ]


def _is_due(link: SyncLink, now: datetime) -> bool:
    return link.next_retry_at is None or link.next_retry_at <= now


def _next_request_id(ctx: engine.RunContext, link: SyncLink, operation: str) -> str:
    link.op_seq += 1
    return engine.request_id_for(str(ctx.connection.realm_id), KIND, link.local_id, operation, link.op_seq)


def _decision(link: SyncLink, operation: str, outcome: str, message: str) -> engine.DecisionRecord:
    return engine.DecisionRecord(link, {"operation": operation, "outcome": outcome, "message": message})


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(_CENTS, rounding=ROUND_HALF_UP):,.2f}"


def _join(numbers: Sequence[str]) -> str:
    if len(numbers) == 1:
        return numbers[0]
    return ", ".join(numbers[:-1]) + " and " + numbers[-1]


def _never_synced_message(connection: Connection, before_start: list[str], skipped: list[str]) -> str:
    parts: list[str] = []
    if before_start:
        start = connection.sync_start_date.isoformat() if connection.sync_start_date else ""
        what = "invoice" if len(before_start) == 1 else "invoices"
        verb = "is" if len(before_start) == 1 else "are"
        parts.append(
            f"This payment is applied to {what} {_join(before_start)}, which {verb} dated before the "
            f"QuickBooks sync start date ({start}) and so {verb} not sent to QuickBooks."
        )
    if skipped:
        what = "invoice" if len(skipped) == 1 else "invoices"
        verb = "is" if len(skipped) == 1 else "are"
        parts.append(
            f"This payment is applied to {what} {_join(skipped)}, which {verb} set not to sync "
            "with QuickBooks (Skipped)."
        )
    parts.append(
        "QuickBooks cannot apply the payment to an invoice it does not have, and the payment is "
        "not sent applied differently than in the app. Sync the invoice to QuickBooks from its "
        "page, or unapply it from this payment; then the payment goes."
    )
    return " ".join(parts)


def _cleared(link: SyncLink) -> bool:
    """Forget a wait or an Error of a record that no longer needs a write; True if it had one."""
    had = bool(link.error_message) or link.status in (SyncStatus.ERROR, SyncStatus.SYNCING)
    engine.clear_pending(link)
    engine.clear_error(link)
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.NOT_SYNCED
    return had


def plan_payments(ctx: engine.RunContext) -> list[engine.Op]:
    """Decide, for every payment that needs it: create, update, delete, wait, or Error.

    Cheap when nothing changed: only the payments changed since the last run and those whose
    links need work are read (a few columns; `engine.plan_scope`), and allocations and invoice
    links only for the payments being decided.
    """
    connection = ctx.connection
    payments = (
        Payment.objects.filter(firm_id=connection.firm_id)
        .only(
            "id",
            "account_id",
            "date",
            "amount",
            "method",
            "reference",
            "created_manually",
            "sync_to_quickbooks",
            "state",
            "updated_at",
        )
        .order_by("pk")
    )
    payments, links = engine.plan_scope(ctx, KIND, payments)

    todo: list[tuple[Payment, SyncLink | None]] = []
    in_error: list[tuple[Payment, SyncLink]] = []
    deletes: list[tuple[Payment, SyncLink]] = []
    decisions: list[engine.DecisionRecord] = []
    for payment in payments.iterator(chunk_size=2000):
        link = links.get(payment.pk)
        if (
            link is not None
            and link.status == SyncStatus.SKIPPED
            and link.qbo_id
            and not link.batch_request_id
        ):
            # "Unsync payment" (product.md §4) does what deleting it does: the payment leaves
            # QBO (its refunds and fee first: those kinds see the Skipped link). The Skipped
            # status is the flag; the link stays Skipped. A refused delete (error_kind set,
            # input_hash = the delete's) waits for a person instead of looping.
            if not (link.error_kind and link.input_hash == _DELETE_INPUT):
                deletes.append((payment, link))
            continue
        if link is not None and (
            link.batch_request_id
            or link.status == SyncStatus.SKIPPED
            or held_by_drift(link.status, link.error_kind)
        ):
            # In flight (the engine replays it), a person turned it off, or it changed in
            # QuickBooks and waits for a person's choice (sync/drift.py): nothing is planned.
            continue
        if payment.state == PaymentState.DELETED:
            if link is None or (link.status == SyncStatus.SYNCED and not link.qbo_id):
                continue  # never linked, or deleted in QuickBooks already
            if link.qbo_id:
                # A refused delete waits for a person (Retry clears input_hash), never loops.
                if not (link.status == SyncStatus.ERROR and link.input_hash == _DELETE_INPUT):
                    deletes.append((payment, link))
            elif (link.status != SyncStatus.NOT_SYNCED or link.error_message) and _cleared(link):
                message = "The payment was deleted in the app before it reached QuickBooks; nothing to send."
                decisions.append(_decision(link, OP_CHECK, Outcome.INFO, message))
            continue
        if link is None:
            if is_eligible(connection, payment):
                todo.append((payment, None))
            continue
        if link.status == SyncStatus.SYNCED:
            # Re-checked only when it changed since it was pushed (allocating bumps updated_at).
            changed = link.synced_at is None or payment.updated_at > link.synced_at
            if link.qbo_id and (changed or not link.pushed_hash):
                todo.append((payment, link))
            continue
        if link.status == SyncStatus.ERROR:
            in_error.append((payment, link))
            continue
        if link.status == SyncStatus.SYNCING:
            if _is_due(link, ctx.now):
                todo.append((payment, link))
            continue
        # Not synced: new, waiting, or released by a person (Sync / Retry).
        if link.qbo_id or is_eligible(connection, payment):
            todo.append((payment, link))
        elif link.error_message and _cleared(link):
            decisions.append(
                _decision(link, OP_CHECK, Outcome.INFO, "The payment is no longer set to sync; not sent.")
            )

    # Decided a page at a time (allocations, invoice links and accounts read per page), and no
    # further once a round's worth of writes is planned (`engine.plan_full`): the rest is
    # decided next round, after these are in QBO.
    ops: list[engine.Op] = []
    candidates = [(p, link, False) for p, link in todo] + [(p, link, True) for p, link in in_error]
    for start in range(0, len(candidates), FACTS_PAGE):
        if engine.plan_full(ops):
            break
        page = candidates[start : start + FACTS_PAGE]
        facts = _read_facts(connection, [p for p, _, _ in page])
        # An Error is decided again only when what it was decided on changed (or a person
        # pressed Sync/Retry, which clears input_hash).
        page_todo = [
            (p, link)
            for p, link, errored in page
            if not errored or (link is not None and link.input_hash != input_hash(_input_parts(p, facts)))
        ]
        missing = [payment.pk for payment, link in page_todo if link is None]
        if missing:
            made = engine.insert_links(connection, KIND, missing)
            page_todo = [
                (payment, link if link is not None else made[payment.pk])
                for payment, link in page_todo
                if link is not None or _is_fresh(made.get(payment.pk))
            ]
        for payment, maybe_link in page_todo:
            assert maybe_link is not None
            op = _decide(ctx, payment, maybe_link, facts, decisions)
            if op is not None:
                ops.append(op)
    for _payment, link in deletes:
        link.input_hash = _DELETE_INPUT
        ops.append(
            engine.Op(
                link=link,
                operation="delete",
                entity=ENTITY,
                body={"Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0"},
                request_id=_next_request_id(ctx, link, "delete"),
                label=OP_DELETE,
            )
        )
    if decisions:
        engine.save_decisions(ctx, decisions)
        ctx.cache["recorded_without_write"] = ctx.cache.get("recorded_without_write", 0) + len(decisions)
    return ops


def _is_fresh(link: SyncLink | None) -> bool:
    return (
        link is not None
        and link.status == SyncStatus.NOT_SYNCED
        and not link.batch_request_id
        and not link.qbo_id
        and not link.pending_op
    )


def _decide(
    ctx: engine.RunContext,
    payment: Payment,
    link: SyncLink,
    facts: _Facts,
    decisions: list[engine.DecisionRecord],
) -> engine.Op | None:
    connection = ctx.connection
    parts_hash = input_hash(_input_parts(payment, facts))

    def wait(message: str) -> None:
        if engine.mark_waiting(link, message):
            link.last_attempt_at = ctx.now
            decisions.append(_decision(link, OP_WAIT, Outcome.INFO, message))

    customer_ref = facts.customers.get(payment.account_id)
    if customer_ref is None:
        name = facts.account_names.get(payment.account_id, "")
        wait(f"Waiting for the account “{name}” to be synced to QuickBooks.")
        return None

    lines: list[AppliedLine] = []
    before_start: list[str] = []
    skipped: list[str] = []
    in_error: list[str] = []
    waiting: list[str] = []
    start = connection.sync_start_date
    for alloc in sorted(facts.allocations.get(payment.pk, []), key=lambda a: (a.number, a.invoice_id)):
        inv = facts.invoice_links.get(alloc.invoice_id)
        if inv is not None and inv.status == SyncStatus.SYNCED and inv.qbo_id:
            lines.append(AppliedLine(amount=alloc.amount, qbo_invoice_id=inv.qbo_id))
        elif inv is not None and inv.status == SyncStatus.SKIPPED:
            skipped.append(alloc.number)
        elif start is not None and alloc.issue_date < start:
            before_start.append(alloc.number)
        elif inv is not None and inv.status == SyncStatus.ERROR:
            in_error.append(alloc.number)
        else:
            waiting.append(alloc.number)

    if before_start or skipped:
        message = _never_synced_message(connection, before_start, skipped)
        if not (link.status == SyncStatus.ERROR and link.error_message == message):
            engine.mark_error(link, error_kind=INVOICE_NOT_SYNCED, message=message)
            link.last_attempt_at = ctx.now
            decisions.append(_decision(link, OP_CHECK, Outcome.ERROR, message))
        link.input_hash = parts_hash
        return None
    if in_error:
        what = "invoice" if len(in_error) == 1 else "invoices"
        verb = "is" if len(in_error) == 1 else "are"
        wait(
            f"Waiting for {what} {_join(in_error)} to reach QuickBooks: it {verb} in Error in "
            "QuickBooks sync; fix it first."
            if len(in_error) == 1
            else f"Waiting for {what} {_join(in_error)} to reach QuickBooks: they {verb} in Error in "
            "QuickBooks sync; fix them first."
        )
        return None
    if waiting:
        what = "invoice" if len(waiting) == 1 else "invoices"
        wait(f"Waiting for {what} {_join(waiting)} to reach QuickBooks.")
        return None

    body = payment_body(
        PaymentFacts(
            payment_id=payment.pk,
            customer_ref=customer_ref,
            total=payment.amount,
            txn_date=payment.date,
            reference=payment.reference,
            lines=lines,
            deposit_account_id=_deposit_account_id(ctx),
            payment_method_id=_payment_method_id(ctx, payment.method),
        )
    )
    link.input_hash = parts_hash
    if link.qbo_id:
        if engine.unchanged_since_push(link, body):
            if link.status != SyncStatus.SYNCED:
                # Nothing to send: what QuickBooks has is what the app says (it waited, or an
                # edit was undone after a refusal).
                engine.clear_pending(link)
                engine.clear_error(link)
                link.status = SyncStatus.SYNCED
                link.synced_at = ctx.now
                decisions.append(
                    _decision(link, OP_CHECK, Outcome.SUCCESS, "Already up to date in QuickBooks.")
                )
            return None
        update = {**body, "Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0", "sparse": True}
        return engine.Op(
            link=link,
            operation="update",
            entity=ENTITY,
            body=update,
            request_id=_next_request_id(ctx, link, "update"),
            label=OP_UPDATE,
            note=cut_reference_note(body),
        )
    link.pending_op = "create"
    return engine.Op(
        link=link,
        operation="create",
        entity=ENTITY,
        body=body,
        request_id=_next_request_id(ctx, link, "create"),
        label=OP_CREATE,
        note=cut_reference_note(body),
    )


# --------------------------------------------------------------------------------------------
# Outcomes


def on_payment_success(ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
    if op.operation == "delete":
        engine.clear_pending(link)
        engine.clear_error(link)
        link.qbo_id = ""
        link.qbo_sync_token = ""
        link.qbo_name = ""
        link.pushed_hash = DELETED
        link.synced_at = ctx.now
        if link.status != SyncStatus.SKIPPED:
            link.status = SyncStatus.SYNCED
        return
    engine.mark_linked(link, entity, now=ctx.now)
    link.qbo_name = str(entity.get("PaymentRefNum") or "")[:500]
    link.pushed_hash = engine.hash_body(content_of(op.body))
    expected = unapplied_in(op.body)
    answered = entity.get("UnappliedAmt")
    got = Decimal(str(answered if answered is not None else 0)).quantize(_CENTS, rounding=ROUND_HALF_UP)
    if got != expected:
        # Written, but applied differently than in the app: the invoices' balances in QBO differ
        # from the app's. Not "up to date": a Retry sends the same lines again (pushed_hash empty).
        link.pushed_hash = ""
        engine.mark_error(
            link,
            error_kind=AMOUNT_MISMATCH,
            message=(
                f"QuickBooks applied this payment differently than the app: it leaves "
                f"{_money(got)} unapplied where the app leaves {_money(expected)}. An invoice it "
                "pays probably has a different balance in QuickBooks (a payment or change made "
                "there). Correct the invoice in QuickBooks or the payment in the app, then Retry."
            ),
            detail=f"UnappliedAmt={got} expected={expected} Id={link.qbo_id}",
        )
        ctx.count("payment.amount_mismatch")
        return


def customer_date_filter(body: dict[str, Any]) -> str | None:
    """The query filter of a create's customer and date (both filterable in QBO), or None when
    the body lacks either."""
    customer = str((body.get("CustomerRef") or {}).get("value", ""))
    txn_date = str(body.get("TxnDate", ""))
    if not customer or not txn_date:
        return None
    return f"CustomerRef = {quote(customer)} AND TxnDate = {quote(txn_date)}"


def unlinked_matches(
    ctx: engine.RunContext, op: engine.Op, where: str, is_mine: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """For a `find_existing`: QBO's records of the op's entity matching `where` that `is_mine`
    recognises (by the app's marker in PrivateNote) and that no other link of the op's kind holds
    already, the oldest (lowest Id) first. The marker is checked here, not in the query:
    PrivateNote is not filterable."""
    taken = set(
        SyncLink.objects.filter(connection=ctx.connection, kind=op.kind or op.link.kind)
        .exclude(pk=op.link.pk)
        .exclude(qbo_id="")
        .values_list("qbo_id", flat=True)
    )
    mine = [e for e in ctx.client.query_all(op.entity, where) if is_mine(e) and str(e.get("Id")) not in taken]
    return sorted(mine, key=lambda e: (len(str(e.get("Id"))), str(e.get("Id"))))


def find_existing_payment(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """Before a create whose earlier, unanswered send may have been written goes out again: the
    customer's payment on that date, with that total, whose PrivateNote carries this payment's
    marker and that no other payment of the app links to. Payments have no DocNumber, so the
    query is by customer and date and the rest is checked here."""
    where = customer_date_filter(op.body)
    if where is None:
        return None
    total = Decimal(str(op.body.get("TotalAmt", 0))).quantize(_CENTS)

    def is_mine(p: dict[str, Any]) -> bool:
        return (
            carries_marker(p.get("PrivateNote"), op.link.local_id)
            and Decimal(str(p.get("TotalAmt", 0))).quantize(_CENTS) == total
        )

    mine = unlinked_matches(ctx, op, where, is_mine)
    if len(mine) > 1:
        logger.warning(
            "qbo.payment.several_found",
            extra={
                "realm": ctx.connection.realm_id,
                "record": op.link.pk,
                "ids": [p.get("Id") for p in mine],
            },
        )
    return mine[0] if mine else None


def on_payment_rejected(
    ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
) -> engine.Rejection:
    if op.operation == "delete" and err.is_not_found:
        # Deleted in QuickBooks already (by a person there): the app's wish holds.
        return engine.Rejection(link_to={"Id": ""}, message="The payment was already deleted in QuickBooks.")
    return engine.Rejection(error_kind="rejected", message=_plain_fault(err, op))


def _plain_fault(err: RecordRejected, op: engine.Op) -> str:
    if isinstance(err, RequestRefused):
        return (
            f"QuickBooks refused the request (HTTP {err.status}) without saying why; nothing was "
            "written. This is not about the payment: use Retry later, and tell support if it happens again."
        )
    detail = err.detail or err.message
    if err.code == "6000":
        return (
            f"QuickBooks refused the payment: {detail}. Most often an invoice it pays no longer has "
            "that balance in QuickBooks (a payment or credit was applied to it there, or it was "
            "changed). Compare the invoice in QuickBooks with the app, correct the one that is "
            "wrong, then Retry."
        )
    if err.code in ("610", "2500"):
        return (
            "The customer or an invoice this payment refers to was deleted or made inactive in "
            "QuickBooks. Restore it there (or sync the invoice again), then Retry."
        )
    if err.code == "2050":
        where = f" ({err.element})" if err.element else ""
        return f"A value is longer than QuickBooks allows{where}. Shorten it on the payment, then Retry."
    if err.code == "6540":
        return (
            "This payment is part of a bank deposit in QuickBooks, which locks it. Remove it from "
            "the deposit in QuickBooks, then Retry."
        )
    if err.code == "5010":
        return "Someone changed this payment in QuickBooks at the same time. Retry to apply the change."
    if err.code == "6210":
        return (
            "The payment is dated in a period that is closed in QuickBooks (the books are closed "
            "before that date). Ask whoever keeps the books to reopen it, or change the date, then Retry."
        )
    return f"QuickBooks refused the payment ({err.message}): {detail}. Fix the payment, then Retry."


PAYMENT_KIND = engine.RecordKind(
    name=KIND,
    entity=ENTITY,
    order=40,
    plan=plan_payments,
    on_success=on_payment_success,
    on_rejected=on_payment_rejected,
    depends_on=("customer", "invoice"),
    find_existing=find_existing_payment,
)
engine.register(PAYMENT_KIND)
