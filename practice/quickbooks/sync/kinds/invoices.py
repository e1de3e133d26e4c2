"""The "invoice" record kind: the app's issued invoices as QBO Invoices, exactly once.

Eligible: issued (or void after having been pushed), dated on or after the connection's sync
start date, of an account whose customer is Synced (else the invoice waits, and says for which
account) and with every line's service Synced (likewise). Importing this module registers the
kind (order 30, after customers and services).

Never a second invoice: before creating a page of 30 or more invoices their numbers are looked
up in QBO with a few `DocNumber IN (...)` queries; one to the same customer for the same total is
linked, any other is an Error explaining the clash. A smaller page is sent as it is: QBO refuses
a number in use (6140), and that refusal is answered the same way, after one look-up of the
number. A
create whose outcome is unknown is looked for by DocNumber, or without custom transaction
numbers by customer, date and the PrivateNote marker naming the app's invoice.

Once pushed: edits are sparse updates (lines replaced whole), a void is a QBO void, an invoice
deleted from the app is deleted in QBO. Every push checks QBO's TotalAmt against the app's
total (less the sales tax QBO adds to taxable lines): a difference is an Error naming both.

A run with nothing to do reads only a few columns of the firm's invoices, never their lines:
an invoice is looked at in full only when it has no link, waits, is due for a retry, or
changed (`updated_at`) since it was pushed or decided.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch

from practice.billing.models import Invoice, InvoiceLine, InvoiceState
from practice.clients.models import ClientAccount
from practice.quickbooks.connection.client import quote
from practice.quickbooks.connection.errors import RecordRejected
from practice.quickbooks.models import SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus, held_by_drift
from practice.quickbooks.sync import engine, realm_facts
from practice.quickbooks.sync.kinds.matching import normalize
from practice.quickbooks.sync.kinds.services import plain_fault
from practice.quickbooks.sync.mappers.invoice import (
    InvoiceIn,
    LineIn,
    body_total,
    content,
    content_hash,
    input_hash,
    invoice_body,
    marker,
)

logger = logging.getLogger("practice.quickbooks.sync")

KIND = "invoice"
ENTITY = "Invoice"
PAGE = 200  # invoices loaded in full (with lines) at a time
NUMBERS_PER_QUERY = 200  # DocNumbers per `IN (...)` look-up
# Fewer new invoices than this in a page are sent without looking their numbers up first: QBO
# refuses a number in use with 6140 (qbo-api.md §2.5, §6), answered exactly as a clash found by
# the look-up (`on_invoice_rejected`), so the look-up only saves requests when clashes are many,
# as in a backfill into a company whose invoices were typed by hand. A page of 30 or more costs
# one query per 200 numbers; a smaller one, a query per clash (usually none: the run for a
# single new invoice no longer reads anything to send it).
LOOKUP_MIN_CREATES = 30
# pushed_hash markers of what was last done to a QBO invoice other than a content push.
VOIDED = "voided"
DELETED = "deleted"


# --------------------------------------------------------------------------------------------
# What the realm says (kept between runs, read at most once per run)


def preferences(ctx: engine.RunContext) -> dict[str, Any]:
    """The realm's Preferences, kept between runs (sync/realm_facts.py)."""
    prefs: dict[str, Any] = realm_facts.get(ctx, realm_facts.PREFERENCES, ctx.client.preferences)
    return prefs


def _pref(ctx: engine.RunContext, section: str, name: str) -> Any:
    value = preferences(ctx).get(section)
    return value.get(name) if isinstance(value, dict) else None


def custom_numbers(ctx: engine.RunContext) -> bool:
    return _pref(ctx, "SalesFormsPrefs", "CustomTxnNumbers") is True


def _names(ctx: engine.RunContext, entity: str) -> dict[str, str]:
    """Active Class or Department ids by normalised name (and full name), kept between runs
    (sync/realm_facts.py: a CDC or webhook change of the entity, or a refused reference, marks
    them stale)."""

    def read() -> dict[str, str]:
        found: dict[str, str] = {}
        for body in ctx.client.query_all(entity, "Active = true"):
            for k in ("FullyQualifiedName", "Name"):
                if body.get(k):
                    found.setdefault(normalize(str(body[k])), str(body.get("Id")))
        return found

    names: dict[str, str] = realm_facts.get(ctx, f"names:{entity}", read)
    return names


def _name_id(ctx: engine.RunContext, entity: str, name: str) -> str | None:
    """The id of the active Class or Department `name`, or None; when the kept names do not
    have it (created in QuickBooks and not reported yet?), the next run (a Retry) reads them."""
    found = _names(ctx, entity).get(normalize(name))
    if found is None:
        realm_facts.doubt(ctx, f"names:{entity}")
    return found


# --------------------------------------------------------------------------------------------
# References to records of other kinds (one query per kind and round, not one per invoice)


def _synced_refs(ctx: engine.RunContext, kind: str, local_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """QBO ids and names of the Synced records of `kind` among `local_ids` (a few queries of 500
    ids: the records a run decides, not the firm's)."""
    found: dict[int, tuple[str, str]] = {}
    for chunk in engine.chunks(local_ids):
        found.update(
            (local_id, (qbo_id, name))
            for local_id, qbo_id, name in SyncLink.objects.filter(
                connection=ctx.connection, kind=kind, status=SyncStatus.SYNCED, local_id__in=chunk
            )
            .exclude(qbo_id="")
            .values_list("local_id", "qbo_id", "qbo_name")
        )
    return found


def _next_request_id(ctx: engine.RunContext, link: SyncLink, operation: str) -> str:
    link.op_seq += 1
    return engine.request_id_for(str(ctx.connection.realm_id), KIND, link.local_id, operation, link.op_seq)


def _money(value: Decimal | float | str) -> str:
    return f"${Decimal(str(value)):,.2f}"


@dataclass
class Row:
    """The few columns of an invoice the cheap pass reads."""

    id: int
    state: str
    account_id: int
    issue_date: date
    updated_at: datetime


class Planner:
    def __init__(self, ctx: engine.RunContext) -> None:
        self.ctx = ctx
        self.connection = ctx.connection
        self.ops: list[engine.Op] = []
        self.decisions: list[engine.DecisionRecord] = []
        # What each invoice's history row says besides the outcome (a class not tracked, ...).
        self.notes: dict[int, str] = {}
        # Looked at in full and found unchanged: remembered as seen so that a later run does not
        # read them again (a payment allocation, say, touches the invoice but not its body).
        self.seen_synced: list[int] = []
        self.seen_error: list[int] = []

    # -- bookkeeping -----------------------------------------------------------------------

    def decide(self, link: SyncLink, operation: str, outcome: str, message: str) -> None:
        link.last_attempt_at = self.ctx.now
        self.decisions.append(
            engine.DecisionRecord(link, {"operation": operation, "outcome": outcome, "message": message})
        )
        self.ctx.cache["recorded_without_write"] = self.ctx.cache.get("recorded_without_write", 0) + 1

    def error(self, link: SyncLink, kind: str, message: str, operation: str = "check") -> None:
        engine.mark_error(link, error_kind=kind, message=message)
        self.decide(link, operation, Outcome.ERROR, message)
        self.ctx.count(f"invoice.{kind}")

    def wait(self, link: SyncLink, message: str) -> None:
        if engine.mark_waiting(link, message):
            self.decide(link, "wait", Outcome.INFO, message)

    # -- the plan --------------------------------------------------------------------------

    def eligible(self, row: Row) -> bool:
        start = self.connection.sync_start_date
        return row.state == InvoiceState.ISSUED and (start is None or row.issue_date >= start)

    def needs_look(self, row: Row, link: SyncLink | None) -> bool:
        if link is None:
            return self.eligible(row)
        if link.batch_request_id or link.status == SyncStatus.SKIPPED:
            return False
        if held_by_drift(link.status, link.error_kind):
            return False  # changed in QuickBooks: waits for "Push ours again" or "Accept" (drift.py)
        if link.qbo_id:
            if link.pushed_hash == DELETED:
                return False
            if link.status == SyncStatus.SYNCED:
                seen = link.synced_at
                return not link.pushed_hash or seen is None or row.updated_at > seen
            if link.status == SyncStatus.ERROR:
                return row.updated_at > link.updated_at
            if link.status == SyncStatus.SYNCING:
                return link.next_retry_at is None or link.next_retry_at <= self.ctx.now
            return True  # Not synced with an Id: held for its account, or a Retry
        if not self.eligible(row):
            # Waiting or failed, then voided or moved before the start date: stop showing why.
            return bool(link.error_message) or link.status != SyncStatus.NOT_SYNCED
        if link.status == SyncStatus.ERROR:
            return row.updated_at > link.updated_at or not link.input_hash
        if link.status == SyncStatus.SYNCING:
            return link.next_retry_at is None or link.next_retry_at <= self.ctx.now
        return True

    def plan(self) -> list[engine.Op]:
        connection = self.connection
        invoices, links = engine.plan_scope(
            self.ctx, KIND, Invoice.objects.filter(firm_id=connection.firm_id).order_by("pk")
        )
        rows = [
            Row(*values)
            for values in invoices.values_list(
                "pk", "state", "account_id", "issue_date", "updated_at"
            ).iterator(chunk_size=2000)
        ]
        todo = [row for row in rows if self.needs_look(row, links.get(row.id))]
        # Invoices deleted from the app (their links outlive them): one anti-join, not a walk.
        gone = (
            SyncLink.objects.filter(connection=connection, kind=KIND, batch_request_id="")
            .exclude(qbo_id="")
            .exclude(pushed_hash=DELETED)
            # Skipped: a person turned it off; Error: the delete was refused (Retry resends).
            .exclude(status__in=(SyncStatus.SKIPPED, SyncStatus.ERROR))
            .exclude(Exists(Invoice.objects.filter(pk=OuterRef("local_id"))))
        )
        for link in gone:
            self.ops.append(self.undo_op(link, "delete"))
        if todo:
            missing = [row.id for row in todo if row.id not in links]
            if missing:
                links.update(engine.insert_links(connection, KIND, missing))
            self.plan_rows(todo, links)
        engine.save_decisions(self.ctx, self.decisions)
        if self.seen_synced:
            SyncLink.objects.filter(pk__in=self.seen_synced, status=SyncStatus.SYNCED).update(
                synced_at=self.ctx.now
            )
        if self.seen_error:
            SyncLink.objects.filter(pk__in=self.seen_error, status=SyncStatus.ERROR).update(
                updated_at=self.ctx.now
            )
        return self.ops

    def plan_rows(self, todo: list[Row], links: dict[int, SyncLink]) -> None:
        customers = _synced_refs(self.ctx, "customer", (row.account_id for row in todo))
        full: list[Row] = []
        waiting_for: dict[int, list[SyncLink]] = {}
        for row in todo:
            link = links.get(row.id)
            if link is None:
                continue  # a person created it meanwhile: next round
            if row.state == InvoiceState.VOID and link.qbo_id:
                if link.pushed_hash != VOIDED:
                    self.ops.append(self.undo_op(link, "void"))
                continue
            if not link.qbo_id and not self.eligible(row):
                engine.clear_pending(link)
                engine.clear_error(link)
                link.status = SyncStatus.NOT_SYNCED
                self.decide(
                    link,
                    "sync",
                    Outcome.INFO,
                    "No longer to be sent (void, or dated before the sync start date).",
                )
                continue
            if row.account_id not in customers:
                waiting_for.setdefault(row.account_id, []).append(link)
                continue
            full.append(row)
        if waiting_for:
            names = dict(ClientAccount.objects.filter(pk__in=list(waiting_for)).values_list("pk", "name"))
            for account_id, held in waiting_for.items():
                name = names.get(account_id, account_id)
                message = f"Waiting for the account “{name}” to be synced to QuickBooks."
                for link in held:
                    self.wait(link, message)
        if not full:
            return
        services = _synced_refs(
            self.ctx,
            "service",
            InvoiceLine.objects.filter(invoice_id__in=[r.id for r in full]).values_list(
                "service_id", flat=True
            ),
        )
        for start in range(0, len(full), PAGE):
            if engine.plan_full(self.ops):
                break  # the rest next round, once these are in QBO
            self.plan_page(full[start : start + PAGE], links, customers, services)

    def plan_page(
        self,
        rows: list[Row],
        links: dict[int, SyncLink],
        customers: dict[int, tuple[str, str]],
        services: dict[int, tuple[str, str]],
    ) -> None:
        lines = Prefetch(
            "lines", queryset=InvoiceLine.objects.select_related("service").order_by("position", "id")
        )
        invoices = Invoice.objects.filter(pk__in=[r.id for r in rows]).prefetch_related(lines).order_by("pk")
        creates: list[tuple[Invoice, SyncLink, dict[str, Any]]] = []
        for invoice in invoices:
            link = links[invoice.pk]
            invoice_lines = list(invoice.lines.all())
            new_hash = input_hash(invoice, invoice_lines)
            if link.status == SyncStatus.ERROR and link.input_hash and link.input_hash == new_hash:
                self.seen_error.append(link.pk)
                continue  # nothing the decision depends on changed: still needs a person
            # A Retry clears input_hash: a linked invoice is then sent again and QBO's answer
            # checked (one Synced again after a Skip is only sent when its body changed).
            force = not link.input_hash and link.status != SyncStatus.SYNCED
            link.input_hash = new_hash
            unsynced = [ln.service for ln in invoice_lines if ln.service_id not in services]
            if unsynced:
                self.wait(link, f"Waiting for the service “{unsynced[0].name}” to be synced to QuickBooks.")
                continue
            body = self.body(invoice, invoice_lines, link, customers, services)
            if body is None:
                continue
            if link.qbo_id:
                if not force and link.pushed_hash == content_hash(body):
                    if link.status != SyncStatus.SYNCED:
                        engine.clear_error(link)
                        link.status = SyncStatus.SYNCED
                        self.decide(link, "sync", Outcome.INFO, "Up to date in QuickBooks.")
                    else:
                        self.seen_synced.append(link.pk)
                    continue
                self.ops.append(self.update_op(link, body))
            else:
                creates.append((invoice, link, body))
        if creates:
            self.plan_creates(creates, customers)

    def body(
        self,
        invoice: Invoice,
        invoice_lines: list[InvoiceLine],
        link: SyncLink,
        customers: dict[int, tuple[str, str]],
        services: dict[int, tuple[str, str]],
    ) -> dict[str, Any] | None:
        if not invoice_lines:
            self.error(link, "no_lines", "This invoice has no lines; QuickBooks needs at least one.")
            return None
        notes: list[str] = []
        class_id: str | None = None
        per_line = False
        if invoice.class_name:
            per_txn = _pref(self.ctx, "AccountingInfoPrefs", "ClassTrackingPerTxn") is True
            per_line = _pref(self.ctx, "AccountingInfoPrefs", "ClassTrackingPerTxnLine") is True
            if per_txn or per_line:
                class_id = _name_id(self.ctx, "Class", invoice.class_name)
                if class_id is None:
                    self.error(
                        link,
                        "unknown_class",
                        f"The class “{invoice.class_name}” does not exist in QuickBooks (or is inactive). "
                        "Create it in QuickBooks or correct the invoice's class, then Retry.",
                    )
                    return None
            else:
                notes.append(f"Class “{invoice.class_name}” not sent: QuickBooks does not track classes.")
        department_id: str | None = None
        if invoice.location_name:
            label = str(_pref(self.ctx, "AccountingInfoPrefs", "DepartmentTerminology") or "Location")
            if _pref(self.ctx, "AccountingInfoPrefs", "TrackDepartments") is True:
                department_id = _name_id(self.ctx, "Department", invoice.location_name)
                if department_id is None:
                    self.error(
                        link,
                        "unknown_location",
                        f"The {label.lower()} “{invoice.location_name}” does not exist in QuickBooks (or is "
                        "inactive). Create it in QuickBooks or correct the invoice's location, then Retry.",
                    )
                    return None
            else:
                notes.append(
                    f"Location “{invoice.location_name}” not sent: "
                    f"QuickBooks does not track {label.lower()}s."
                )
        link.desired_name = invoice.number
        self.notes[link.pk] = " ".join(notes)
        return invoice_body(
            InvoiceIn(
                local_id=invoice.pk,
                number=invoice.number,
                customer_id=customers[invoice.account_id][0],
                txn_date=invoice.issue_date.isoformat(),
                due_date=invoice.due_date.isoformat(),
                lines=[
                    LineIn(
                        item_id=services[ln.service_id][0],
                        description=ln.description,
                        quantity=ln.quantity,
                        rate=ln.rate,
                        amount=ln.amount,
                        taxable=bool(ln.service.taxable),
                    )
                    for ln in invoice_lines
                ],
                send_number=custom_numbers(self.ctx),
                class_id=class_id,
                class_per_line=per_line,
                department_id=department_id,
            )
        )

    # -- creates: never a second invoice ---------------------------------------------------

    def plan_creates(
        self, creates: list[tuple[Invoice, SyncLink, dict[str, Any]]], customers: dict[int, tuple[str, str]]
    ) -> None:
        found: dict[str, list[dict[str, Any]]] = {}
        # A "Push again" after a void in QuickBooks needs to know whether the number is its own
        # voided invoice's (it may then carry it too): looked up whatever the page's size.
        again = any(link.target_qbo_id for _invoice, link, _body in creates)
        if custom_numbers(self.ctx) and (len(creates) >= LOOKUP_MIN_CREATES or again):
            found = self.by_numbers([invoice.number for invoice, _link, _body in creates])
        linked = self.linked_ids(str(h.get("Id")) for holders in found.values() for h in holders)
        for invoice, link, body in creates:
            holders = found.get(normalize(invoice.number), [])
            options = ""
            if link.target_qbo_id:
                # "Push again" after a void in QuickBooks (actions.record_push_again): the voided
                # invoice, ours, keeps the number there; the new one may carry it too.
                mine = [h for h in holders if str(h.get("Id")) == link.target_qbo_id]
                holders = [h for h in holders if str(h.get("Id")) != link.target_qbo_id]
                options = "allowduplicatedocnumber" if mine else ""
            if holders:
                verdict = clash_verdict(self.ctx, invoice.number, body, holders, linked)
                if isinstance(verdict, dict):
                    engine.mark_linked(link, verdict, now=self.ctx.now)
                    link.qbo_name = invoice.number
                    link.pushed_hash = content_hash(body)
                    linked.add(str(verdict.get("Id")))
                    self.decide(
                        link,
                        "match_number",
                        Outcome.SUCCESS,
                        f"Linked to the existing QuickBooks invoice {invoice.number} "
                        f"(Id {verdict.get('Id')}): same customer, same total.",
                    )
                    self.ctx.count("invoice.linked_by_number")
                else:
                    self.error(link, "docnumber_clash", verdict, operation="match_number")
                continue
            op = engine.Op(
                link=link,
                operation="create",
                entity=ENTITY,
                body=body,
                request_id=_next_request_id(self.ctx, link, "create"),
                label="create_invoice",
                note=self.notes.get(link.pk, ""),
                options=options,
            )
            link.pending_op = "create"
            self.ops.append(op)

    def linked_ids(self, qbo_ids: Iterable[str]) -> set[str]:
        """Which of these QBO invoices an app invoice is linked to already."""
        return engine.linked_qbo_ids(self.connection, KIND, qbo_ids)

    def by_numbers(self, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        return invoices_by_number(self.ctx, numbers)

    # -- updates, voids, deletes -----------------------------------------------------------

    def update_op(self, link: SyncLink, body: dict[str, Any]) -> engine.Op:
        return engine.Op(
            link=link,
            operation="update",
            entity=ENTITY,
            body={"Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0", "sparse": True, **body},
            request_id=_next_request_id(self.ctx, link, "update"),
            label="update",
            note=self.notes.get(link.pk, ""),
        )

    def undo_op(self, link: SyncLink, operation: str) -> engine.Op:
        return engine.Op(
            link=link,
            operation=operation,
            entity=ENTITY,
            body={"Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0"},
            request_id=_next_request_id(self.ctx, link, operation),
            label=operation,
        )


def invoices_by_number(ctx: engine.RunContext, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """QBO invoices carrying any of `numbers`, by normalised number: one query per 200 numbers."""
    wanted = sorted({n for n in numbers if n})
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(wanted), NUMBERS_PER_QUERY):
        chunk = wanted[start : start + NUMBERS_PER_QUERY]
        position = 1
        while True:
            statement = (
                "SELECT Id, DocNumber, CustomerRef, TotalAmt, TxnTaxDetail, SyncToken, PrivateNote "  # noqa: S608
                f"FROM Invoice WHERE DocNumber IN ({', '.join(quote(n) for n in chunk)}) "
                f"STARTPOSITION {position} MAXRESULTS 1000"
            )
            page = ctx.client.query(statement).get(ENTITY) or []
            for body in page:
                found.setdefault(normalize(str(body.get("DocNumber", ""))), []).append(body)
            if len(page) < 1000:
                break
            position += len(page)
    return found


def _qbo_total_less_tax(entity: dict[str, Any]) -> tuple[Decimal, Decimal]:
    total = Decimal(str(entity.get("TotalAmt", 0))).quantize(Decimal("0.01"))
    tax_detail = entity.get("TxnTaxDetail")
    tax = Decimal(str(tax_detail.get("TotalTax", 0) if isinstance(tax_detail, dict) else 0)).quantize(
        Decimal("0.01")
    )
    return total, tax


def clash_verdict(
    ctx: engine.RunContext,
    number: str,
    body: dict[str, Any],
    holders: list[dict[str, Any]],
    linked: set[str],
) -> dict[str, Any] | str:
    """The QBO invoice to link (same customer, same total, not linked to another invoice), or
    the Error message explaining whose number it is."""
    want_total = body_total(body)
    customer_id = str((body.get("CustomerRef") or {}).get("value", ""))
    for holder in holders:
        total, tax = _qbo_total_less_tax(holder)
        same_customer = str((holder.get("CustomerRef") or {}).get("value", "")) == customer_id
        if same_customer and want_total in (total, total - tax) and str(holder.get("Id")) not in linked:
            return holder
    holder = holders[0]
    total, _tax = _qbo_total_less_tax(holder)
    who = _customer_name(ctx, holder)
    if str(holder.get("Id")) in linked:
        return (
            f"Invoice number {number} is already used in QuickBooks by another invoice of this app "
            f"(to “{who}” for {_money(total)}). Change this invoice's number, then it is sent again."
        )
    same = str((holder.get("CustomerRef") or {}).get("value", "")) == customer_id
    to_whom = "the same customer" if same else f"“{who}”"
    ours = f" This invoice is for {_money(want_total)}." if want_total != total else ""
    return (
        f"Invoice number {number} is already used in QuickBooks by an invoice to {to_whom} for "
        f"{_money(total)}.{ours} Change this invoice's number (a number QuickBooks does not use yet), "
        "or, if it is the same invoice, correct the QuickBooks one and use Retry."
    )


def _customer_name(ctx: engine.RunContext, holder: dict[str, Any]) -> str:
    ref = holder.get("CustomerRef") or {}
    if ref.get("name"):
        return str(ref["name"])
    link = (
        SyncLink.objects.filter(connection=ctx.connection, kind="customer", qbo_id=str(ref.get("value", "")))
        .exclude(qbo_name="")
        .first()
    )
    if link is not None:
        return link.qbo_name
    try:
        return str(
            ctx.client.read("Customer", str(ref.get("value", ""))).get("DisplayName") or "another customer"
        )
    except RecordRejected:
        return "another customer"


# --------------------------------------------------------------------------------------------
# The kind's callbacks


def plan_invoices(ctx: engine.RunContext) -> list[engine.Op]:
    return Planner(ctx).plan()


def on_invoice_success(ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
    if op.operation == "delete":
        engine.clear_pending(link)
        engine.clear_error(link)
        link.pushed_hash = DELETED
        link.qbo_sync_token = ""
        link.synced_at = ctx.now
        link.status = SyncStatus.NOT_SYNCED if link.status != SyncStatus.SKIPPED else link.status
        return
    engine.mark_linked(link, entity, now=ctx.now)
    link.qbo_name = str(entity.get("DocNumber") or link.desired_name or "")
    if op.operation == "void":
        link.pushed_hash = VOIDED
        return
    link.pushed_hash = content_hash(op.body)
    check_total(link, entity, op)


def check_total(link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
    """QBO's TotalAmt against the app's: equal, or equal once the sales tax QBO added to the
    app's taxable lines is taken off (said in history). Anything else is an Error."""
    want = body_total(op.body)
    total, tax = _qbo_total_less_tax(entity)
    taxable = any(
        (line.get("SalesItemLineDetail") or {}).get("TaxCodeRef", {}).get("value") == "TAX"
        for line in op.body.get("Line") or []
    )
    if total == want:
        return
    if taxable and tax and total - tax == want:
        op.note = " ".join(
            n for n in (op.note, f"QuickBooks added sales tax of {_money(tax)} (total {_money(total)}).") if n
        )
        return
    reason = (
        "QuickBooks added sales tax of " + _money(tax) + ": an item QuickBooks treats as taxable, or the "
        "customer's tax settings."
        if tax
        else "A line QuickBooks priced differently, or a discount or deposit set in QuickBooks."
    )
    engine.mark_error(
        link,
        error_kind="total_mismatch",
        message=(
            f"The invoice's total in QuickBooks is {_money(total)} but the app's is {_money(want)}. Likely "
            f"reason: {reason} Correct it in QuickBooks (or the app), then Retry."
        ),
    )


def find_existing_invoice(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """Before re-sending a create that may have been written under another key: the QBO invoice
    it made, by DocNumber, or without one by customer, date and the PrivateNote marker."""
    customer = str((op.body.get("CustomerRef") or {}).get("value", ""))
    number = str(op.body.get("DocNumber") or "")
    if number:
        candidates = invoices_by_number(ctx, [number]).get(normalize(number), [])
    else:
        where = f"CustomerRef = {quote(customer)} AND TxnDate = {quote(str(op.body.get('TxnDate', '')))}"
        candidates = list(ctx.client.query_all(ENTITY, where))
    note_marker = marker(op.link.local_id)
    want = body_total(op.body)
    elsewhere = set(
        SyncLink.objects.filter(connection=ctx.connection, kind=KIND)
        .exclude(pk=op.link.pk)
        .exclude(qbo_id="")
        .values_list("qbo_id", flat=True)
    )
    for body in candidates:
        total, tax = _qbo_total_less_tax(body)
        if (
            str((body.get("CustomerRef") or {}).get("value", "")) == customer
            and note_marker in str(body.get("PrivateNote") or "")
            and want in (total, total - tax)
            and str(body.get("Id")) not in elsewhere
        ):
            return body
    return None


def on_invoice_rejected(
    ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
) -> engine.Rejection:
    if err.is_duplicate_docnumber and op.operation == "create":
        number = str(op.body.get("DocNumber", ""))
        holders = invoices_by_number(ctx, [number]).get(normalize(number), [])
        linked = set(
            SyncLink.objects.filter(connection=ctx.connection, kind=KIND)
            .exclude(pk=link.pk)
            .exclude(qbo_id="")
            .values_list("qbo_id", flat=True)
        )
        if holders:
            # What `Planner.plan_creates` decides when its look-up finds the number (small pages
            # are sent without one): the same link, name, pushed hash, message and history row.
            verdict = clash_verdict(ctx, number, op.body, holders, linked)
            if isinstance(verdict, dict):
                ctx.count("invoice.linked_by_number")
                return engine.Rejection(
                    link_to=verdict,
                    message=f"Linked to the existing QuickBooks invoice {number} (Id {verdict.get('Id')}): "
                    "same customer, same total.",
                    operation="match_number",
                    qbo_name=number,
                    pushed_hash=content_hash(op.body),
                )
            ctx.count("invoice.docnumber_clash")
            return engine.Rejection(error_kind="docnumber_clash", message=verdict, operation="match_number")
        return engine.Rejection(
            error_kind="docnumber_clash",
            message=(
                f"QuickBooks says invoice number {number} is already used by another transaction. Change "
                "this invoice's number, then it is sent again."
            ),
        )
    if op.operation == "delete" and err.is_not_found:
        return engine.Rejection(
            error_kind="rejected",
            message="The invoice was deleted from the app, and it is already gone from QuickBooks.",
        )
    if op.operation == "void" and err.code == "6000":
        return engine.Rejection(
            error_kind="rejected",
            message=(
                f"QuickBooks refused to void the invoice: {err.detail or err.message}. Remove the payments "
                "applied to it in QuickBooks first (or ask whoever manages QuickBooks), then Retry."
            ),
        )
    return engine.Rejection(error_kind="rejected", message=plain_fault(err, what="the invoice"))


engine.register(
    engine.RecordKind(
        name=KIND,
        entity=ENTITY,
        order=30,
        plan=plan_invoices,
        on_success=on_invoice_success,
        on_rejected=on_invoice_rejected,
        depends_on=("customer", "service"),
        find_existing=find_existing_invoice,
    )
)


__all__ = ["KIND", "content", "plan_invoices"]
