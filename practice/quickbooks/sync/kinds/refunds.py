"""The "refund" and "fee" record kinds (issue 11 item 1): the app's refunds -> QBO RefundReceipts,
payments' processing fees -> QBO Purchases (expenses).

Both hang off a payment and share one planner (`_plan_children`):
- a refund / fee goes when its payment is eligible (see kinds/payments.py `is_eligible`) and
  waits (Not synced, with a message) until the payment is Synced;
- a fee goes only while the connection's "record processing fees" is on (turning it off later
  leaves the expenses already in QuickBooks alone) and the payment has a fee > 0;
- when the payment is deleted in the app, or a person chose "Unsync" for it (its link is
  Skipped: the payment kind deletes it in QBO), its refunds and fee are deleted in QuickBooks,
  and made again when the payment is synced again; the engine sends deletes in reverse
  dependency order, so they go before the payment's own delete;
- Synced records are re-checked only when they changed since they were pushed.

Money model (qbo-api.md §2.6, §2.8): a RefundReceipt is a sales form of its own. It does not
change the Payment's `UnappliedAmt`, so the payment kind compares UnappliedAmt with amount −
allocations (never minus refunds), and it does not post to Accounts Receivable.

Refund lines are on a "Refunds" Service item (matched by name, else created once per realm with
the connection's income account) rather than on an invoice's service: what is refunded is the
unapplied credit, which was never income of any one service.

The fee kind's `local_id` is the Payment's pk (links are keyed by kind, so it shares ids with the
payment kind). Importing this module registers both kinds (order 50 and 60).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Q

from practice.billing.models import Payment, PaymentState, Refund
from practice.quickbooks.connection.client import quote
from practice.quickbooks.connection.errors import RecordRejected
from practice.quickbooks.models import SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus, held_by_drift
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds.payments import (
    _cleared,
    _decision,
    _deposit_account_id,
    _is_due,
    _money,
    _plain_fault,
    customer_date_filter,
    is_eligible,
    unlinked_matches,
)
from practice.quickbooks.sync.mappers.payment import content_of, input_hash
from practice.quickbooks.sync.mappers.refund import (
    REFUNDS_ITEM,
    FeeFacts,
    RefundFacts,
    carries,
    fee_body,
    fee_marker,
    refund_body,
    refund_marker,
)

OP_CREATE_REFUND = "create_refund"
OP_CREATE_FEE = "create_fee"
OP_UPDATE = "update"
OP_DELETE = "delete"
OP_WAIT = "wait"
OP_CHECK = "check"
DELETED = "deleted"
NEEDS_SETTING = "needs_setting"
_DELETE_INPUT = input_hash(["deleted"])


@dataclass
class _Child:
    """One refund or fee as the shared planner sees it."""

    local_id: int
    payment: Payment
    updated_at: datetime
    wanted: bool  # should exist in QBO (False: delete it there if it is)
    amount: Decimal
    txn_date: date
    reason: str = ""


# --------------------------------------------------------------------------------------------
# Realm look-ups (once per run)


def _account(ctx: engine.RunContext, account_id: str) -> dict[str, Any]:
    key = f"refund.account.{account_id}"
    if key not in ctx.cache:
        found: dict[str, Any] = {}
        if account_id:
            for acc in ctx.client.query_all("Account", f"Id = {quote(account_id)}"):
                found = dict(acc)
        ctx.cache[key] = found
    return dict(ctx.cache[key])


def _refunds_item_id(ctx: engine.RunContext) -> str:
    """The realm's "Refunds" Service item, created once (deterministic requestid) when missing;
    "" when it is missing and the connection has no income account to create it with."""
    if "refund.item" not in ctx.cache:
        found = ""
        for item in ctx.client.query_all("Item", f"Name = {quote(REFUNDS_ITEM)}"):
            found = str(item.get("Id", ""))
            break
        if not found and ctx.connection.income_account_id:
            body = {
                "Name": REFUNDS_ITEM,
                "Type": "Service",
                "IncomeAccountRef": {"value": str(ctx.connection.income_account_id)},
                "Description": "Money returned to clients (Practice refunds)",
            }
            rid = engine.request_id_for(str(ctx.connection.realm_id), "refund", 0, "item", 1)
            try:
                found = str(ctx.client.create("Item", body, request_id=rid).get("Id", ""))
            except RecordRejected:
                found = ""  # e.g. an inactive item of that name: the refunds say what to do

        ctx.cache["refund.item"] = found
    return str(ctx.cache["refund.item"])


# --------------------------------------------------------------------------------------------
# The shared planner


def _plan_children(
    ctx: engine.RunContext,
    kind: str,
    entity: str,
    children: list[_Child],
    build: Callable[[engine.RunContext, _Child, SyncLink, dict[str, str]], dict[str, Any] | str],
    create_label: str,
    links: dict[int, SyncLink],
) -> list[engine.Op]:
    connection = ctx.connection
    payment_links = {
        link.local_id: link
        for link in SyncLink.objects.filter(
            connection=connection, kind="payment", local_id__in=sorted({c.payment.pk for c in children})
        )
    }
    decisions: list[engine.DecisionRecord] = []
    todo: list[tuple[_Child, SyncLink | None]] = []
    ops: list[engine.Op] = []

    def next_rid(link: SyncLink, operation: str) -> str:
        link.op_seq += 1
        return engine.request_id_for(str(connection.realm_id), kind, link.local_id, operation, link.op_seq)

    for child in children:
        link = links.get(child.local_id)
        payment_link = payment_links.get(child.payment.pk)
        if payment_link is not None and payment_link.status == SyncStatus.SKIPPED:
            child.wanted = False  # "Unsync payment": out of QBO with its payment
        if link is not None and (
            link.batch_request_id
            or link.status == SyncStatus.SKIPPED
            or held_by_drift(link.status, link.error_kind)  # changed in QuickBooks (drift.py)
        ):
            continue
        if not child.wanted:
            if link is None or (link.status == SyncStatus.SYNCED and not link.qbo_id):
                continue
            if link.qbo_id:
                if not (link.status == SyncStatus.ERROR and link.input_hash == _DELETE_INPUT):
                    link.input_hash = _DELETE_INPUT
                    ops.append(
                        engine.Op(
                            link=link,
                            operation="delete",
                            entity=entity,
                            body={"Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0"},
                            request_id=next_rid(link, "delete"),
                            label=OP_DELETE,
                        )
                    )
            elif (link.status != SyncStatus.NOT_SYNCED or link.error_message) and _cleared(link):
                decisions.append(
                    _decision(link, OP_CHECK, Outcome.INFO, "No longer to be sent; nothing to send.")
                )
            continue
        if link is None:
            if is_eligible(connection, child.payment):
                todo.append((child, None))
            continue
        if link.status == SyncStatus.SYNCED and not link.qbo_id and link.pushed_hash == DELETED:
            # Deleted with its payment's Unsync; the payment is synced again: so is this.
            if is_eligible(connection, child.payment):
                todo.append((child, link))
            continue
        if link.status == SyncStatus.SYNCED:
            changed = link.synced_at is None or child.updated_at > link.synced_at
            if link.qbo_id and (changed or not link.pushed_hash):
                todo.append((child, link))
            continue
        if link.status == SyncStatus.ERROR:
            parts = _parts(child, payment_links.get(child.payment.pk))
            if link.input_hash != input_hash(parts):
                todo.append((child, link))
            continue
        if link.status == SyncStatus.SYNCING:
            if _is_due(link, ctx.now):
                todo.append((child, link))
            continue
        if link.qbo_id or is_eligible(connection, child.payment):
            todo.append((child, link))
        elif link.error_message and _cleared(link):
            decisions.append(
                _decision(link, OP_CHECK, Outcome.INFO, "The payment is no longer set to sync; not sent.")
            )

    missing = [c.local_id for c, link in todo if link is None]
    made = engine.insert_links(connection, kind, missing) if missing else {}
    for child, maybe_link in todo:
        link = maybe_link if maybe_link is not None else made.get(child.local_id)
        if link is None:
            continue  # another run made it meanwhile; the next round decides it
        parts_hash = input_hash(_parts(child, payment_links.get(child.payment.pk)))
        payment_ref = engine.dependency_ref(ctx, "payment", child.payment.pk)
        customer_ref = engine.dependency_ref(ctx, "customer", child.payment.account_id)
        if payment_ref is None or customer_ref is None:
            message = (
                f"Waiting for the payment of {child.payment.date.isoformat()} "
                f"({_money(child.payment.amount)}) to reach QuickBooks."
            )
            if engine.mark_waiting(link, message):
                link.last_attempt_at = ctx.now
                decisions.append(_decision(link, OP_WAIT, Outcome.INFO, message))
            continue
        built = build(ctx, child, link, customer_ref)
        link.input_hash = parts_hash
        if isinstance(built, str):
            if not (link.status == SyncStatus.ERROR and link.error_message == built):
                engine.mark_error(link, error_kind=NEEDS_SETTING, message=built)
                link.last_attempt_at = ctx.now
                decisions.append(_decision(link, OP_CHECK, Outcome.ERROR, built))
            continue
        body = built
        if link.qbo_id:
            if engine.unchanged_since_push(link, body):
                if link.status != SyncStatus.SYNCED:
                    engine.clear_pending(link)
                    engine.clear_error(link)
                    link.status = SyncStatus.SYNCED
                    link.synced_at = ctx.now
                    decisions.append(
                        _decision(link, OP_CHECK, Outcome.SUCCESS, "Already up to date in QuickBooks.")
                    )
                elif link.synced_at is None or child.updated_at > link.synced_at:
                    link.synced_at = ctx.now  # seen: not re-read every run
                    engine.bulk_save_links([link], ["synced_at", "input_hash"])
                continue
            update = {**body, "Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0", "sparse": True}
            ops.append(
                engine.Op(
                    link=link,
                    operation="update",
                    entity=entity,
                    body=update,
                    request_id=next_rid(link, "update"),
                    label=OP_UPDATE,
                )
            )
            continue
        link.pending_op = "create"
        ops.append(
            engine.Op(
                link=link,
                operation="create",
                entity=entity,
                body=body,
                request_id=next_rid(link, "create"),
                label=create_label,
            )
        )
    if decisions:
        engine.save_decisions(ctx, decisions)
        ctx.cache["recorded_without_write"] = ctx.cache.get("recorded_without_write", 0) + len(decisions)
    return ops


def _parts(child: _Child, payment_link: SyncLink | None) -> list[Any]:
    return [
        child.payment.pk,
        str(child.amount),
        child.txn_date.isoformat(),
        child.reason,
        child.payment.reference,
        (payment_link.status, payment_link.qbo_id) if payment_link is not None else ("", ""),
    ]


_PAYMENT_FIELDS = (
    "id",
    "account_id",
    "date",
    "amount",
    "reference",
    "processing_fee",
    "created_manually",
    "sync_to_quickbooks",
    "state",
    "updated_at",
)


# --------------------------------------------------------------------------------------------
# Refunds


def _payment_changed(ctx: engine.RunContext, payment_path: str) -> Q | None:
    """Refunds and fees follow their payment: one whose payment, or the payment's link (an
    "Unsync payment"), changed since the last plan is looked at again."""
    if ctx.since is None:
        return None
    touched = SyncLink.objects.filter(connection=ctx.connection, kind="payment", updated_at__gte=ctx.since)
    return Q(**{f"{payment_path}updated_at__gte": ctx.since}) | Q(
        **{f"{payment_path}pk__in": touched.values("local_id")}
    )


def plan_refunds(ctx: engine.RunContext) -> list[engine.Op]:
    refunds = (
        Refund.objects.filter(firm_id=ctx.connection.firm_id)
        .select_related("payment")
        .only("id", "date", "amount", "reason", "updated_at", *(f"payment__{f}" for f in _PAYMENT_FIELDS))
        .order_by("pk")
    )
    refunds, links = engine.plan_scope(
        ctx, "refund", refunds, also_changed=_payment_changed(ctx, "payment__")
    )
    children = [
        _Child(
            local_id=r.pk,
            payment=r.payment,
            updated_at=max(r.updated_at, r.payment.updated_at),
            wanted=r.payment.state == PaymentState.RECORDED,
            amount=r.amount,
            txn_date=r.date,
            reason=r.reason,
        )
        for r in refunds
    ]
    return _plan_children(ctx, "refund", "RefundReceipt", children, _build_refund, OP_CREATE_REFUND, links)


def _build_refund(
    ctx: engine.RunContext, child: _Child, link: SyncLink, customer_ref: dict[str, str]
) -> dict[str, Any] | str:
    account_id = _deposit_account_id(ctx)
    account = _account(ctx, account_id)
    if account.get("AccountType") not in ("Bank", "Other Current Asset"):
        return (
            "QuickBooks pays a refund out of a bank account (or Undeposited Funds), and the account "
            "set for payments in the QuickBooks settings is neither. Choose a bank account under "
            "“Deposit payments to”, then Retry."
        )
    item_id = _refunds_item_id(ctx)
    if not item_id and ctx.connection.income_account_id:
        return (
            "QuickBooks records a refund on an item, and the item “Refunds” could not be made in "
            "QuickBooks (a product or service of that name may be inactive there). Make it active "
            "in QuickBooks, then Retry."
        )
    if not item_id:
        return (
            "QuickBooks records a refund on an item, and the item “Refunds” could not be made "
            "because no income account is chosen. Choose the service income account in the "
            "QuickBooks settings, then Retry."
        )
    return refund_body(
        RefundFacts(
            refund_id=child.local_id,
            customer_id=customer_ref["value"],
            total=child.amount,
            txn_date=child.txn_date,
            reason=child.reason,
            item_id=item_id,
            account_id=account_id,
            account_is_bank=account.get("AccountType") == "Bank",
            reference=child.payment.reference,
        )
    )


def on_child_success(ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
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
    link.pushed_hash = engine.hash_body(content_of(op.body))


def find_existing_refund(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """The customer's refund receipt on that date whose PrivateNote carries this refund's marker
    and that no other refund of the app links to (as `find_existing_payment`)."""
    where = customer_date_filter(op.body)
    if where is None:
        return None
    marker = refund_marker(op.link.local_id)
    mine = unlinked_matches(ctx, op, where, lambda e: carries(e.get("PrivateNote"), marker))
    return mine[0] if mine else None


def find_existing_fee(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """The expense on that date whose PrivateNote carries this fee's marker (an expense has no
    customer to narrow the query by) and that no other fee of the app links to."""
    txn_date = str(op.body.get("TxnDate", ""))
    if not txn_date:
        return None
    marker = fee_marker(op.link.local_id)
    mine = unlinked_matches(
        ctx, op, f"TxnDate = {quote(txn_date)}", lambda e: carries(e.get("PrivateNote"), marker)
    )
    return mine[0] if mine else None


def _rejected(
    what: str,
) -> Callable[[engine.RunContext, SyncLink, RecordRejected, engine.Op], engine.Rejection]:
    def on_rejected(
        ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
    ) -> engine.Rejection:
        if op.operation == "delete" and err.is_not_found:
            return engine.Rejection(
                link_to={"Id": ""}, message=f"The {what} was already deleted in QuickBooks."
            )
        return engine.Rejection(
            error_kind="rejected", message=_plain_fault(err, op).replace("the payment", f"the {what}")
        )

    return on_rejected


REFUND_KIND = engine.RecordKind(
    name="refund",
    entity="RefundReceipt",
    order=50,
    plan=plan_refunds,
    on_success=on_child_success,
    on_rejected=_rejected("refund"),
    depends_on=("customer", "payment"),
    find_existing=find_existing_refund,
)
engine.register(REFUND_KIND)


# --------------------------------------------------------------------------------------------
# Processing fees


def plan_fees(ctx: engine.RunContext) -> list[engine.Op]:
    connection = ctx.connection
    # Payments with a fee, and payments whose fee was pushed (a deleted payment, a fee set to 0).
    pushed = set(
        SyncLink.objects.filter(connection=connection, kind="fee")
        .exclude(qbo_id="")
        .values_list("local_id", flat=True)
    )
    payments = Payment.objects.filter(firm_id=connection.firm_id).only(*_PAYMENT_FIELDS).order_by("pk")
    if not connection.fees_enabled:
        payments = payments.filter(pk__in=sorted(pushed))
    payments, links = engine.plan_scope(ctx, "fee", payments, also_changed=_payment_changed(ctx, ""))
    children = [
        _Child(
            local_id=p.pk,
            payment=p,
            updated_at=p.updated_at,
            # With the setting off, expenses already in QuickBooks are left alone (not deleted):
            # only a deleted payment or a fee set to 0 removes one.
            wanted=p.state == PaymentState.RECORDED and p.processing_fee > 0,
            amount=p.processing_fee,
            txn_date=p.date,
        )
        for p in payments.iterator(chunk_size=2000)
        if p.processing_fee > 0 or p.pk in pushed
    ]
    if not connection.fees_enabled:
        # Only removals: a deleted payment, a fee set to 0, or a payment a person unsynced.
        skipped = set(
            SyncLink.objects.filter(
                connection=connection, kind="payment", status=SyncStatus.SKIPPED, local_id__in=sorted(pushed)
            ).values_list("local_id", flat=True)
        )
        children = [c for c in children if not c.wanted or c.local_id in skipped]
    return _plan_children(ctx, "fee", "Purchase", children, _build_fee, OP_CREATE_FEE, links)


def _build_fee(
    ctx: engine.RunContext, child: _Child, link: SyncLink, customer_ref: dict[str, str]
) -> dict[str, Any] | str:
    if not ctx.connection.fee_account_id:
        return (
            "Processing fees are on, but no expense account is chosen for them. Choose the "
            "processing fee account in the QuickBooks settings, then Retry."
        )
    account_id = _deposit_account_id(ctx)
    account_type = _account(ctx, account_id).get("AccountType")
    payment_type = {"Bank": "Cash", "Credit Card": "CreditCard"}.get(str(account_type))
    if payment_type is None:
        return (
            "QuickBooks records a processing fee as an expense paid from a bank account, and "
            "payments are deposited to an account that is not one (such as Undeposited Funds). "
            "Choose a bank account under “Deposit payments to” in the QuickBooks settings, then Retry."
        )
    return fee_body(
        FeeFacts(
            payment_id=child.local_id,
            fee=child.amount,
            txn_date=child.txn_date,
            account_id=account_id,
            payment_type=payment_type,
            fee_account_id=str(ctx.connection.fee_account_id),
            reference=child.payment.reference,
        )
    )


FEE_KIND = engine.RecordKind(
    name="fee",
    entity="Purchase",
    order=60,
    plan=plan_fees,
    on_success=on_child_success,
    on_rejected=_rejected("processing fee"),
    depends_on=("customer", "payment"),
    find_existing=find_existing_fee,
)
engine.register(FEE_KIND)
