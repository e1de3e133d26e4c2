"""QuickBooks statuses of services, invoices and payments for people: badges with their reason,
the list column, status filter and counts, the detail panel, and whether "Sync" may be pressed.

Installs the hooks the billing pages call ("billing.service_list", "billing.invoice_list",
"billing.payment_list" and their "…_detail" twins; practice.common.hooks), so billing never
imports QuickBooks internals. Lists stay at a fixed number of queries: the statuses of the
record and of its account are annotated on the queryset, and the links of one page are read in
one query.

A record with no link (or a Not synced one without a waiting message) explains itself from the
record: a draft, a date before the sync start date, an account that is not synced, a manual
payment whose sync is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db.models import CharField, Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from practice.quickbooks import selectors
from practice.quickbooks.models import Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import (
    DRIFT_FIX_LABELS,
    DRIFT_FIXES,
    STATUS_ORDER,
    SyncStatus,
    status_colour,
    status_label,
)

if TYPE_CHECKING:
    from practice.firms.models import Firm

BILLING_KINDS = ("service", "invoice", "payment")
# The QBO entity each kind becomes (for "Open in QuickBooks", selectors.qbo_url).
QBO_ENTITY = {"service": "item", "invoice": "invoice", "payment": "payment"}
STATUS_PARAM = "qbo"


@dataclass
class Eligibility:
    """Whether a person may ask to sync the record now, and if not, why (in words)."""

    ok: bool
    reason: str = ""


def _model(kind: str) -> Any:
    from practice.billing.models import Invoice, Payment, Service

    return {"service": Service, "invoice": Invoice, "payment": Payment}[kind]


def record_get(*, firm: Firm, kind: str, pk: Any) -> Any:
    """The firm's record of `kind` with its account, or None (other firms' ids are not found)."""
    if kind not in BILLING_KINDS:
        return None
    qs = _model(kind).objects.filter(firm=firm, pk=pk)
    if kind != "service":
        qs = qs.select_related("account")
    return qs.first()


def record_label(kind: str, record: Any) -> str:
    if kind == "service":
        return _("service “%(name)s”") % {"name": record.name}
    if kind == "invoice":
        return _("invoice %(number)s") % {"number": record.number}
    return _("payment of %(date)s") % {"date": date_format(record.date, "Y-m-d")}


def _payment_sync_on(payment: Any, connection: Connection | None) -> bool:
    """Manual payments follow their own switch, or the QuickBooks setting when it is unset."""
    if not payment.created_manually:
        return True
    if payment.sync_to_quickbooks is not None:
        return bool(payment.sync_to_quickbooks)
    return bool(connection.sync_manual_payments) if connection is not None else True


def _before_start(record_date: date | None, connection: Connection | None) -> bool:
    start = getattr(connection, "sync_start_date", None)
    return bool(start and record_date and record_date < start)


def ineligible_reason(kind: str, record: Any, connection: Connection | None) -> str:
    """Why this record is never sent (nothing to do with its account), or ""."""
    start = getattr(connection, "sync_start_date", None)
    shown = date_format(start, "Y-m-d") if start else ""
    if kind == "service":
        return _("Archived services are not sent to QuickBooks.") if record.archived else ""
    if kind == "invoice":
        if record.state == "draft":
            return _("Sent to QuickBooks when it is issued.")
        if record.state == "void":
            return _("Voided before it reached QuickBooks; nothing is sent.")
        if _before_start(record.issue_date, connection):
            return _(
                "Dated before the QuickBooks sync start date (%(date)s), so it is not sent to QuickBooks."
            ) % {"date": shown}
        return ""
    if record.state == "deleted":
        return _("Deleted before it reached QuickBooks; nothing is sent.")
    if _before_start(record.date, connection):
        return _(
            "Dated before the QuickBooks sync start date (%(date)s), so it is not sent to QuickBooks."
        ) % {"date": shown}
    if not _payment_sync_on(record, connection):
        if record.sync_to_quickbooks is False:
            return _("Sync to QuickBooks is turned off for this payment.")
        return _(
            "Payments recorded by hand are not sent to QuickBooks (QuickBooks settings); "
            "turn sync on for this payment to send it."
        )
    return ""


def waiting_for_account(account_name: str) -> str:
    return _("Waiting for the account “%(name)s” to be synced to QuickBooks.") % {"name": account_name}


def sync_eligibility(
    kind: str, record: Any, connection: Connection | None, *, account_status: str | None, linked: bool
) -> Eligibility:
    """May "Sync to QuickBooks" / "Retry" be pressed now? (The actions check the same.)"""
    if connection is None or not connection.realm_id:
        return Eligibility(False, _("QuickBooks is not connected."))
    if not linked:  # a record already in QBO can always be re-sent (edits, void, delete)
        reason = ineligible_reason(kind, record, connection)
        if reason:
            return Eligibility(False, reason)
    if kind != "service" and account_status != SyncStatus.SYNCED:
        return Eligibility(
            False,
            _("The account “%(name)s” is not synced to QuickBooks. Sync the account first.")
            % {"name": record.account.name},
        )
    return Eligibility(True)


def record_status_view(
    kind: str,
    record: Any,
    link: SyncLink | None,
    connection: Connection | None,
    *,
    account_status: str | None,
) -> selectors.StatusView:
    """Badge, colour and tooltip of one billing record (the account's vocabulary and colours)."""
    view = selectors.status_view(link, connection, "")
    view.qbo_url = selectors.qbo_url(connection, QBO_ENTITY[kind], link.qbo_id) if link else ""
    status = view.status
    label = record_label(kind, record)
    if status == SyncStatus.SYNCED:
        if kind == "service":
            view.tooltip = _("Linked to the QuickBooks item “%(name)s”.") % {
                "name": view.qbo_name or record.name
            }
        elif kind == "invoice":
            view.tooltip = _("In QuickBooks as invoice %(number)s.") % {"number": record.number}
        else:
            view.tooltip = _("In QuickBooks as a payment received (QBO Id %(id)s).") % {"id": view.qbo_id}
    elif status == SyncStatus.SKIPPED:
        view.tooltip = _("Sync was turned off for %(what)s; sync it again from its page if needed.") % {
            "what": label
        }
    elif status == SyncStatus.ERROR and link is not None:
        view.tooltip = link.error_message or _(
            "QuickBooks refused %(what)s. Open it to see what happened, then retry."
        ) % {"what": label}
    elif status == SyncStatus.NOT_SYNCED:
        if link is not None and link.error_message:
            view.tooltip = link.error_message  # why it waits, set by the engine
        else:
            reason = "" if (link and link.qbo_id) else ineligible_reason(kind, record, connection)
            if reason:
                view.tooltip = reason
            elif kind != "service" and account_status != SyncStatus.SYNCED:
                view.tooltip = waiting_for_account(record.account.name)
            else:
                view.tooltip = _("Not in QuickBooks yet; it is sent with the next sync.")
    return view


# --------------------------------------------------------------------------------------------
# Lists


def links_for(connection: Connection | None, kind: str, ids: list[int]) -> dict[int, SyncLink]:
    if connection is None or not ids:
        return {}
    qs = SyncLink.objects.filter(connection=connection, kind=kind, local_id__in=ids)
    return {link.local_id: link for link in qs}


def _status_subquery(connection: Connection, kind: str, ref: str) -> Coalesce:
    status = SyncLink.objects.filter(connection=connection, kind=kind, local_id=OuterRef(ref)).values(
        "status"
    )[:1]
    return Coalesce(Subquery(status, output_field=CharField()), Value(SyncStatus.NOT_SYNCED.value))


def annotate_status(qs: QuerySet[Any], connection: Connection | None, kind: str) -> QuerySet[Any]:
    """Adds `qbo_status` (and for invoices and payments `qbo_account_status`): no query per row."""
    if connection is None:
        none = Value(SyncStatus.NOT_SYNCED.value, output_field=CharField())
        qs = qs.annotate(qbo_status=none)
        return qs if kind == "service" else qs.annotate(qbo_account_status=none)
    qs = qs.annotate(qbo_status=_status_subquery(connection, kind, "pk"))
    if kind != "service":
        qs = qs.annotate(qbo_account_status=_status_subquery(connection, "customer", "account_id"))
    return qs


def status_counts(qs: QuerySet[Any]) -> dict[str, int]:
    """{status: count} for an annotated list queryset, in one query (distinct: a search across
    allocations joins rows)."""
    rows = qs.order_by().values("qbo_status").annotate(n=Count("pk", distinct=True))
    counts = {s: 0 for s in STATUS_ORDER}
    for row in rows:
        counts[row["qbo_status"]] = counts.get(row["qbo_status"], 0) + row["n"]
    return counts


def _list_queryset(kind: str) -> Any:
    def hook(request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        qs = annotate_status(qs, selectors._request_connection(request), kind)
        request._qbo_unfiltered = qs  # type: ignore[attr-defined]  # counts ignore the status filter
        wanted = request.GET.get(STATUS_PARAM, "")
        if wanted in SyncStatus.values:
            qs = qs.filter(qbo_status=wanted)
        return qs

    return hook


def _list_context(kind: str) -> Any:
    def hook(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
        connection = selectors._request_connection(request)
        if connection is None:
            return {"qbo_connection": None}
        page = context.get("page")
        records = list(page.object_list) if page is not None else []
        links = links_for(connection, kind, [r.pk for r in records])
        for record in records:
            record.qbo = record_status_view(
                kind,
                record,
                links.get(record.pk),
                connection,
                account_status=getattr(record, "qbo_account_status", None),
            )
        if page is not None:
            page.object_list = records
        unfiltered = getattr(request, "_qbo_unfiltered", None)
        counts = status_counts(unfiltered) if unfiltered is not None else {}
        wanted = request.GET.get(STATUS_PARAM, "")
        return {
            "qbo_connection": connection,
            "qbo_status_filter": wanted if wanted in SyncStatus.values else "",
            "qbo_status_counts": [
                {"status": s, "label": status_label(s), "colour": status_colour(s), "count": counts.get(s, 0)}
                for s in STATUS_ORDER
            ],
            "qbo_total": sum(counts.values()),
        }

    return hook


# --------------------------------------------------------------------------------------------
# Detail pages


def attempt_history(*, firm: Firm, kind: str, local_id: int, limit: int = 100) -> list[SyncAttempt]:
    return list(
        SyncAttempt.objects.filter(link__firm=firm, link__kind=kind, link__local_id=local_id).order_by(
            "-created_at", "-id"
        )[:limit]
    )


def account_status(connection: Connection | None, account_id: int) -> str:
    link = selectors.links_by_account(connection, [account_id]).get(account_id)
    return link.status if link is not None else SyncStatus.NOT_SYNCED


def panel_context(*, firm: Firm, kind: str, record: Any, connection: Connection | None) -> dict[str, Any]:
    """What quickbooks/partials/record_sync_panel.html needs (the detail hooks and the views)."""
    if connection is None:
        return {"qbo_connection": None}
    link = links_for(connection, kind, [record.pk]).get(record.pk)
    acct_status = account_status(connection, record.account_id) if kind != "service" else None
    view = record_status_view(kind, record, link, connection, account_status=acct_status)
    eligibility = sync_eligibility(
        kind, record, connection, account_status=acct_status, linked=bool(link and link.qbo_id)
    )
    fixes = DRIFT_FIXES.get(view.error_kind, ()) if view.status == SyncStatus.ERROR else ()
    if fixes:
        menu_action = ""  # changed in QuickBooks: its own fixes, never a blind Retry
    elif view.status == SyncStatus.ERROR or (view.status == SyncStatus.SYNCING and view.next_retry_at):
        menu_action = "retry"
    elif view.status in (SyncStatus.NOT_SYNCED, SyncStatus.SKIPPED):
        menu_action = "sync"
    else:
        menu_action = ""
    extra = _payment_children(record, connection) if kind == "payment" else {}
    return {
        **extra,
        "qbo": view,
        "qbo_menu_action": menu_action,
        "qbo_drift_fixes": [(action, DRIFT_FIX_LABELS[action]) for action in fixes],
        "qbo_link": link,
        "qbo_kind": kind,
        "qbo_record": record,
        "qbo_connection": connection,
        "qbo_can_sync": eligibility.ok,
        "qbo_sync_blocked": eligibility.reason,
        "qbo_history": attempt_history(firm=firm, kind=kind, local_id=record.pk),
    }


def _child_view(kind: str, link: SyncLink | None, connection: Connection) -> selectors.StatusView:
    view = selectors.status_view(link, connection, "")
    view.qbo_url = selectors.qbo_url(connection, kind, link.qbo_id) if link else ""
    if view.status == SyncStatus.SYNCED and link is not None and link.qbo_id:
        view.tooltip = (
            _("In QuickBooks as a refund receipt (QBO Id %(id)s).")
            if kind == "refund"
            else _("In QuickBooks as an expense for the processing fee (QBO Id %(id)s).")
        ) % {"id": link.qbo_id}
    elif view.status == SyncStatus.SYNCED:
        view.tooltip = _("Deleted in QuickBooks with its payment.")
    elif view.status in (SyncStatus.ERROR, SyncStatus.NOT_SYNCED) and link is not None and link.error_message:
        view.tooltip = link.error_message
    elif view.status == SyncStatus.NOT_SYNCED:
        view.tooltip = _("Sent to QuickBooks with its payment.")
    return view


def _payment_children(payment: Any, connection: Connection) -> dict[str, Any]:
    """The payment page's refunds (`qbo_refunds`: [(refund id, status)]) and processing fee
    (`qbo_fee`: status, or None when there is no fee) in QuickBooks: two queries."""
    refund_ids = list(payment.refunds.values_list("pk", flat=True))
    links = links_for(connection, "refund", refund_ids)
    fee = None
    if payment.processing_fee > 0:
        fee = _child_view("fee", links_for(connection, "fee", [payment.pk]).get(payment.pk), connection)
    return {
        "qbo_refunds": [(pk, _child_view("refund", links.get(pk), connection)) for pk in refund_ids],
        "qbo_fee": fee,
    }


def _detail_context(kind: str) -> Any:
    def hook(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
        record = context.get(kind)
        if record is None:
            return {}
        return panel_context(
            firm=request.firm,  # type: ignore[attr-defined]
            kind=kind,
            record=record,
            connection=selectors._request_connection(request),
        )

    return hook


_HOOKS: dict[str, Any] = {}


def install_hooks() -> None:
    from practice.common import hooks

    for kind in BILLING_KINDS:
        # One function object per hook name, so a second ready() does not register twice.
        if kind not in _HOOKS:
            _HOOKS[kind] = (_list_queryset(kind), _list_context(kind), _detail_context(kind))
        qs_hook, ctx_hook, detail_hook = _HOOKS[kind]
        hooks.register_queryset(f"billing.{kind}_list", qs_hook)
        hooks.register_context(f"billing.{kind}_list", ctx_hook)
        hooks.register_context(f"billing.{kind}_detail", detail_hook)
