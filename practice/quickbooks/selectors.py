"""Reads for account sync: statuses for lists (constant queries per page), counts, history.

Also installs the hooks that put the QuickBooks column, status filter and counts on the
accounts list and the sync panel on the account page (practice.common.hooks), so the clients
app never imports QBO internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import CharField, Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.translation import gettext as _

from practice.quickbooks.models import Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import STATUS_ORDER, SyncStatus, status_colour, status_label
from practice.quickbooks.sync.messages import error_text

if TYPE_CHECKING:
    from practice.clients.models import ClientAccount
    from practice.firms.models import Firm

KIND = "customer"
STATUS_PARAM = "qbo"


def connection_for(firm: Firm | None) -> Connection | None:
    if firm is None:
        return None
    return Connection.objects.filter(firm=firm).first()


def _request_connection(request: HttpRequest) -> Connection | None:
    # One query per request, however many hooks ask.
    if not hasattr(request, "_qbo_connection"):
        request._qbo_connection = connection_for(getattr(request, "firm", None))  # type: ignore[attr-defined]
    conn: Connection | None = request._qbo_connection  # type: ignore[attr-defined]
    return conn


# Where QBO's web app shows each entity: (path, name of the id parameter or "" for a list page).
QBO_PAGES: dict[str, tuple[str, str]] = {
    "customer": ("/app/customerdetail", "nameId"),
    "invoice": ("/app/invoice", "txnId"),
    "payment": ("/app/recvpayment", "txnId"),
    "item": ("/app/items", ""),
    "refund": ("/app/refundreceipt", "txnId"),
    "fee": ("/app/expense", "txnId"),
}


def qbo_url(connection: Connection | None, entity: str, qbo_id: str) -> str:
    """Where a person opens this QBO record (the local sandbox, Intuit's sandbox, or live).

    `entity` is "customer", "invoice", "payment", "refund" (RefundReceipt), "fee" (Purchase) or
    "item" (QBO has no page for one item: items open on the Products and Services list)."""
    if not qbo_id or entity not in QBO_PAGES:
        return ""
    path, id_param = QBO_PAGES[entity]
    env = (getattr(connection, "environment", "") or settings.QBO_ENVIRONMENT).strip()
    params: dict[str, str] = {id_param: str(qbo_id)} if id_param else {}
    if env == "production":
        base = "https://app.qbo.intuit.com"
    elif env == "sandbox":
        base = "https://app.sandbox.qbo.intuit.com"
    else:
        base = settings.QBO_SANDBOX_URL.rstrip("/")
        params["realmId"] = str(getattr(connection, "realm_id", ""))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def customer_url(connection: Connection | None, qbo_id: str) -> str:
    """Where a person opens this customer in QBO (the local sandbox, Intuit's sandbox, or live)."""
    return qbo_url(connection, "customer", qbo_id)


@dataclass
class StatusView:
    """Everything a badge and its tooltip need, computed once (templates stay dumb)."""

    status: str
    label: str
    colour: str
    tooltip: str
    qbo_id: str = ""
    qbo_name: str = ""
    qbo_url: str = ""
    next_retry_at: datetime | None = None
    error_code: str = ""
    candidates: list[dict[str, Any]] | None = None
    error_kind: str = ""
    link_id: int | None = None
    in_flight: bool = False
    paused: bool = False

    @property
    def is_syncing(self) -> bool:
        """Worth polling for: Syncing, and not paused by a connection that needs reconnecting."""
        return self.status == SyncStatus.SYNCING and not self.paused

    @property
    def inactive_candidate(self) -> dict[str, Any] | None:
        for c in self.candidates or []:
            if not c.get("active", True) and c.get("entity", "Customer") == "Customer":
                return c
        return None


def idle_account_ids(connection: Connection | None, account_ids: list[int]) -> set[int]:
    """Among `account_ids`, those the firm's rule leaves out: no invoice or payment while the
    setup says "accounts with invoices or payments" (one query; none when every account syncs)."""
    if connection is None or connection.account_scope == "all" or not account_ids:
        return set()
    from django.db.models import Exists

    from practice.billing.models import Invoice, Payment
    from practice.clients.models import ClientAccount

    has_invoice = Invoice.objects.filter(account=OuterRef("pk"))
    has_payment = Payment.objects.filter(account=OuterRef("pk"))
    return set(
        ClientAccount.objects.filter(pk__in=account_ids)
        .exclude(Exists(has_invoice) | Exists(has_payment))
        .values_list("pk", flat=True)
    )


def _not_synced_tooltip(link: SyncLink | None, idle: bool) -> str:
    if idle:
        return _(
            "Not synced: this account has no invoices or payments yet, and QuickBooks is set to sync "
            "only accounts with invoices or payments. Use “Sync now” on the Info tab to send it anyway."
        )
    if link is None or not link.qbo_id:
        return _(
            "Not linked to a QuickBooks customer yet; it is sent with the next sync, or use “Sync now” "
            "on the Info tab."
        )
    return _("Not synced; you can sync it from the Info tab.")


def status_view(
    link: SyncLink | None,
    connection: Connection | None,
    account_name: str = "",
    *,
    idle: bool | None = None,
) -> StatusView:
    """`idle` (accounts only): whether the firm's rule leaves this account out (says why when
    Not synced); None keeps the generic words."""
    status = link.status if link is not None else SyncStatus.NOT_SYNCED
    view = StatusView(status=status, label=status_label(status), colour=status_colour(status), tooltip="")
    if link is not None:
        view.qbo_id = link.qbo_id
        view.qbo_name = link.qbo_name
        view.qbo_url = customer_url(connection, link.qbo_id)
        view.next_retry_at = link.next_retry_at
        view.error_code = link.error_code
        view.candidates = list(link.candidates or [])
        view.error_kind = link.error_kind
        view.link_id = link.pk
        view.in_flight = bool(link.batch_request_id)
    if status == SyncStatus.SYNCED:
        view.tooltip = _("Linked to QuickBooks customer “%(name)s”.") % {"name": view.qbo_name}
    elif status == SyncStatus.NOT_SYNCED:
        if idle is None or connection is None or not connection.is_set_up:
            view.tooltip = _("Not synced; you can sync it from the Info tab.")
        else:
            view.tooltip = _not_synced_tooltip(link, idle)
    elif status == SyncStatus.SKIPPED:
        view.tooltip = _("Sync was turned off for this account; sync it again from the Info tab if needed.")
    elif status == SyncStatus.ERROR and link is not None:
        view.tooltip = error_text(
            link.error_kind, name=account_name, candidates=view.candidates or [], stored=link.error_message
        )
    elif status == SyncStatus.SYNCING:
        if connection is not None and not connection.is_connected:
            # Pushes wait while the connection needs reconnecting; nothing is lost.
            view.paused = True
            view.tooltip = _("Waiting until QuickBooks is reconnected; nothing is lost.")
            view.next_retry_at = None
        elif connection is not None and connection.is_paused:
            # A fault about the company or the app (the banner names it): every record waits.
            view.paused = True
            view.tooltip = _("Paused while QuickBooks refuses the company or this app; nothing is lost.")
            view.next_retry_at = connection.pause_retry_at
        elif view.next_retry_at:
            view.tooltip = _("Waiting to retry after a temporary QuickBooks problem.")
        else:
            view.tooltip = _("Being synced; this takes a moment.")
    return view


def links_by_account(connection: Connection | None, account_ids: list[int]) -> dict[int, SyncLink]:
    if connection is None or not account_ids:
        return {}
    qs = SyncLink.objects.filter(connection=connection, kind=KIND, local_id__in=account_ids)
    return {link.local_id: link for link in qs}


def account_status(*, firm: Firm, account: ClientAccount) -> StatusView:
    connection = connection_for(firm)
    link = links_by_account(connection, [account.pk]).get(account.pk)
    return status_view(link, connection, account.name, idle=_idle(connection, link, account.pk))


def _idle(connection: Connection | None, link: SyncLink | None, account_id: int) -> bool:
    """Whether one account is left out by the firm's rule (asked only when it is Not synced)."""
    if link is not None and link.status != SyncStatus.NOT_SYNCED:
        return False
    return account_id in idle_account_ids(connection, [account_id])


def annotate_status(qs: QuerySet[Any], connection: Connection | None) -> QuerySet[Any]:
    """Adds `qbo_status` to an accounts queryset (one correlated subquery, no extra query)."""
    if connection is None:
        return qs.annotate(qbo_status=Value(SyncStatus.NOT_SYNCED.value, output_field=CharField()))
    status = SyncLink.objects.filter(connection=connection, kind=KIND, local_id=OuterRef("pk")).values(
        "status"
    )[:1]
    return qs.annotate(
        qbo_status=Coalesce(Subquery(status, output_field=CharField()), Value(SyncStatus.NOT_SYNCED.value))
    )


def status_counts(qs: QuerySet[Any]) -> dict[str, int]:
    """{status: count} for an annotated accounts queryset, in one query."""
    rows = qs.order_by().values("qbo_status").annotate(n=Count("pk"))
    counts = {s: 0 for s in STATUS_ORDER}
    for row in rows:
        counts[row["qbo_status"]] = counts.get(row["qbo_status"], 0) + row["n"]
    return counts


def attempt_history(*, firm: Firm, account: ClientAccount, limit: int = 100) -> list[SyncAttempt]:
    return list(
        SyncAttempt.objects.filter(link__firm=firm, link__kind=KIND, link__local_id=account.pk).order_by(
            "-created_at", "-id"
        )[:limit]
    )


# --------------------------------------------------------------------------------------------
# Hooks on the clients pages


def _list_queryset(request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
    qs = annotate_status(qs, _request_connection(request))
    request._qbo_unfiltered = qs  # type: ignore[attr-defined]  # counts ignore the status filter
    wanted = request.GET.get(STATUS_PARAM, "")
    if wanted in SyncStatus.values:
        qs = qs.filter(qbo_status=wanted)
    return qs


def _list_context(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    connection = _request_connection(request)
    accounts = list(context.get("accounts") or [])
    links = links_by_account(connection, [a.pk for a in accounts])
    not_synced = [a.pk for a in accounts if a.pk not in links or links[a.pk].status == SyncStatus.NOT_SYNCED]
    idle = idle_account_ids(connection, not_synced)
    any_syncing = False
    for account in accounts:
        account.qbo = status_view(links.get(account.pk), connection, account.name, idle=account.pk in idle)
        any_syncing = any_syncing or account.qbo.is_syncing
    unfiltered = getattr(request, "_qbo_unfiltered", None)
    counts = status_counts(unfiltered) if unfiltered is not None else {}
    wanted = request.GET.get(STATUS_PARAM, "")
    return {
        "accounts": accounts,
        "qbo_connection": connection,
        "qbo_status_filter": wanted if wanted in SyncStatus.values else "",
        "qbo_status_counts": [
            {"status": s, "label": status_label(s), "colour": status_colour(s), "count": counts.get(s, 0)}
            for s in STATUS_ORDER
        ],
        "qbo_total": sum(counts.values()),
        "qbo_any_syncing": any_syncing,
        "qbo_page_ids": ",".join(str(a.pk) for a in accounts),
    }


def _detail_context(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    account = context.get("account")
    if account is None:
        return {}
    connection = _request_connection(request)
    link = links_by_account(connection, [account.pk]).get(account.pk)
    return {
        "qbo": status_view(link, connection, account.name, idle=_idle(connection, link, account.pk)),
        "qbo_connection": connection,
        "qbo_history": attempt_history(firm=request.firm, account=account),  # type: ignore[attr-defined]
    }


def install_hooks() -> None:
    from practice.common import hooks

    hooks.register_queryset("clients.account_list", _list_queryset)
    hooks.register_context("clients.account_list", _list_context)
    hooks.register_context("clients.account_detail", _detail_context)
