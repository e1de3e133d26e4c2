"""The reconciliation page's rows (issue 16 item 5): per linked customer, the app's invoiced, paid
and open amounts beside QBO's, the differences, and why, where the app knows.

The app's figures (docs/reconciliation.md):
- invoiced = totals of the account's *issued* invoices, whatever their date (drafts are not
  bills yet; void invoices owe nothing, as in QBO, where a voided invoice's total is 0). Invoices
  dated before the sync start date count too: they are part of what the client was billed, and
  the row says that they are not in QuickBooks and why;
- paid = the account's recorded (not deleted) payments, less their refunds;
- open = invoiced less what recorded payments applied to those invoices.

QBO's figures come from `CustomerBalance` (sync/balances.py), never from QBO while the page
renders.

A firm usually connects a QuickBooks company it has used for years: the customer the account
links to already has invoices and payments typed in QuickBooks. Those make a difference that is
right, and that would otherwise come back every month end. A row whose whole difference is such
history (QBO transactions not made by the app and created before the account was linked) is
`history_only`: listed under its own filter, apart from the differences to look at.

All rows are computed with a fixed number of queries (sorting by the largest difference needs
them all); the explanations only for the rows shown (or exported), a few more queries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import DecimalField, Max, Min, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from practice.quickbooks.billing_status import ineligible_reason
from practice.quickbooks.history_text import translate
from practice.quickbooks.models import Connection, CustomerBalance, SyncAttempt, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus
from practice.quickbooks.sync.balances import linked_customers

if TYPE_CHECKING:
    from practice.firms.models import Firm

ZERO = Decimal("0.00")
MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=14, decimal_places=2)
FIGURES = ("invoiced", "paid", "open")
# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"), also
# after a tab or carriage return that some spreadsheets skip.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Figures:
    invoiced: Decimal = ZERO
    paid: Decimal = ZERO
    open: Decimal = ZERO

    def get(self, name: str) -> Decimal:
        value: Decimal = getattr(self, name)
        return value


@dataclass
class Row:
    """One linked customer on the page."""

    account_id: int
    name: str
    qbo_id: str
    status: str  # the account's link status (synced or skipped)
    app: Figures
    qbo: Figures | None  # None: not read from QuickBooks yet
    read_at: datetime | None = None
    stale: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    explanations: list[str] = field(default_factory=list)
    explained: bool = True
    linked_at: datetime | None = None  # when the account was linked to this customer
    history_only: bool = False  # the whole difference is QBO history from before the link

    def diff(self, name: str) -> Decimal:
        """QuickBooks minus the app (positive: QuickBooks has more)."""
        if self.qbo is None:
            return ZERO
        return self.qbo.get(name) - self.app.get(name)

    @property
    def differences(self) -> dict[str, Decimal]:
        return {name: self.diff(name) for name in FIGURES}

    @property
    def difference(self) -> Decimal:
        """The largest of the three differences, in absolute value (the page's sort key)."""
        return max(abs(d) for d in self.differences.values())

    @property
    def differs(self) -> bool:
        return self.difference != ZERO

    @property
    def needs_look(self) -> bool:
        """A difference someone should look at (not only QuickBooks history from before linking)."""
        return self.differs and not self.history_only

    @property
    def state(self) -> str:
        """For the CSV: "not read", "match", "history" or "difference"."""
        if self.qbo is None:
            return "not read"
        if not self.differs:
            return "match"
        return "history" if self.history_only else "difference"

    @property
    def diff_invoiced(self) -> Decimal:
        return self.diff("invoiced")

    @property
    def diff_paid(self) -> Decimal:
        return self.diff("paid")

    @property
    def diff_open(self) -> Decimal:
        return self.diff("open")


def _by_account(qs: Any, key: str, amount: str = "amount") -> dict[int, Decimal]:
    return {row[key]: _money(row["s"]) for row in qs.values(key).annotate(s=Sum(amount)).order_by()}


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def app_figures(firm: Firm, account_ids: list[int]) -> dict[int, Figures]:
    """The app's figures of these accounts: four grouped queries, whatever their number."""
    from practice.billing.models import InvoiceLine, Payment, PaymentAllocation, Refund

    invoiced = _by_account(
        InvoiceLine.objects.filter(firm=firm, invoice__state="issued", invoice__account_id__in=account_ids),
        "invoice__account_id",
    )
    applied = _by_account(
        PaymentAllocation.objects.filter(
            firm=firm,
            invoice__state="issued",
            payment__state="recorded",
            invoice__account_id__in=account_ids,
        ),
        "invoice__account_id",
    )
    received = _by_account(
        Payment.objects.filter(firm=firm, state="recorded", account_id__in=account_ids), "account_id"
    )
    refunded = _by_account(
        Refund.objects.filter(firm=firm, payment__state="recorded", payment__account_id__in=account_ids),
        "payment__account_id",
    )
    return {
        pk: Figures(
            invoiced=invoiced.get(pk, ZERO),
            paid=received.get(pk, ZERO) - refunded.get(pk, ZERO),
            open=invoiced.get(pk, ZERO) - applied.get(pk, ZERO),
        )
        for pk in account_ids
    }


def all_rows(*, firm: Firm, connection: Connection | None) -> list[Row]:
    """Every linked customer of the firm's connection, largest difference first, then by name."""
    from practice.clients.models import ClientAccount

    if connection is None or connection.firm_id != firm.pk:
        return []
    linked = linked_customers(connection)
    links = {
        link.local_id: link
        for link in SyncLink.objects.filter(connection=connection, kind="customer", local_id__in=list(linked))
    }
    names = dict(ClientAccount.objects.filter(firm=firm, pk__in=list(linked)).values_list("pk", "name"))
    figures = app_figures(firm, list(names))
    balances = {
        b.qbo_customer_id: b
        for b in CustomerBalance.objects.filter(
            connection=connection, qbo_customer_id__in=set(linked.values())
        )
    }
    linked_at = _linked_at(list(links.values()))
    ours = _our_qbo_ids(connection)
    rows = []
    for account_id, name in names.items():
        qbo_id = linked[account_id]
        balance = balances.get(qbo_id)
        read = balance is not None and balance.read_at is not None
        rows.append(
            Row(
                account_id=account_id,
                name=name,
                qbo_id=qbo_id,
                status=links[account_id].status,
                app=figures[account_id],
                qbo=Figures(balance.invoiced, balance.paid, balance.open) if read and balance else None,
                read_at=balance.read_at if balance else None,
                stale=bool(balance.stale) if balance else True,
                detail=dict(balance.detail or {}) if read and balance else {},
                linked_at=linked_at.get(links[account_id].pk) or links[account_id].created_at,
            )
        )
    _mark_pushed_since_read(connection, rows)
    for row in rows:
        row.history_only = row.differs and _history_explains(row, ours)
    rows.sort(key=lambda r: (not r.needs_look, -r.difference, r.name.casefold(), r.account_id))
    return rows


def _mark_pushed_since_read(connection: Connection, rows: list[Row]) -> None:
    """The app's own pushes change QBO's figures too, and QBO tells no one: a row whose account
    had an invoice, payment or refund written to QBO after its figures were read is stale (marked
    in the cache, so the page's background read takes it)."""
    from practice.billing.models import Invoice, Payment, Refund

    read = {r.account_id: r.read_at for r in rows if r.read_at is not None and not r.stale}
    if not read:
        return
    last: dict[int, datetime] = {}
    for kind, model, account in (
        ("invoice", Invoice, "account_id"),
        ("payment", Payment, "account_id"),
        ("refund", Refund, "payment__account_id"),
    ):
        owner = model.objects.filter(pk=OuterRef("local_id")).values(account)[:1]
        pushed = (
            SyncLink.objects.filter(connection=connection, kind=kind, synced_at__isnull=False)
            .annotate(account=Subquery(owner))
            .filter(account__in=list(read))
            .values("account")
            .annotate(last=Max("synced_at"))
            .order_by()
        )
        for p in pushed:
            if p["account"] not in last or p["last"] > last[p["account"]]:
                last[p["account"]] = p["last"]
    stale = [
        r for r in rows if r.account_id in last and r.read_at is not None and last[r.account_id] > r.read_at
    ]
    for row in stale:
        row.stale = True
    if stale:
        CustomerBalance.objects.filter(
            connection=connection, qbo_customer_id__in=[r.qbo_id for r in stale]
        ).update(stale=True)


def _linked_at(links: list[SyncLink]) -> dict[int, datetime]:
    """{customer link id: when it was first linked to its current QBO customer} (one query)."""
    first: dict[int, datetime] = {}
    wanted = {link.pk: link.qbo_id for link in links}
    attempts = (
        SyncAttempt.objects.filter(link_id__in=list(wanted), outcome=Outcome.SUCCESS)
        .exclude(qbo_id="")
        .values("link_id", "qbo_id")
        .annotate(first=Min("created_at"))
        .order_by()
    )
    for a in attempts:
        if wanted.get(a["link_id"]) == a["qbo_id"]:
            first[a["link_id"]] = a["first"]
    return first


def _our_qbo_ids(connection: Connection) -> dict[str, set[str]]:
    """QBO Ids of the invoices, payments and refund receipts the app's records are linked to."""
    out: dict[str, set[str]] = {"invoices": set(), "payments": set(), "refunds": set()}
    kinds = {"invoice": "invoices", "payment": "payments", "refund": "refunds"}
    qs = SyncLink.objects.filter(connection=connection, kind__in=list(kinds)).exclude(qbo_id="")
    for kind, qbo_id in qs.values_list("kind", "qbo_id"):
        out[kinds[kind]].add(qbo_id)
    return out


def _before(txn: dict[str, Any], when: datetime | None) -> bool:
    """Was this QBO transaction created before `when` (the account's link)?"""
    if when is None or not txn.get("created"):
        return False
    try:
        created = datetime.fromisoformat(str(txn["created"]))
    except ValueError:
        return False
    return created.tzinfo is not None and created < when


def _history_explains(row: Row, ours: dict[str, set[str]]) -> bool:
    """Does QBO history from before the link (not made by the app) account for the whole difference?"""
    if row.qbo is None:
        return False
    history = {
        k: [t for t in row.detail.get(k, []) if t["id"] not in ours[k] and _before(t, row.linked_at)]
        for k in ("invoices", "payments", "refunds")
    }
    if not any(history.values()):
        return False
    invoiced = row.qbo.invoiced - sum((Decimal(t["total"]) for t in history["invoices"]), ZERO)
    open_ = row.qbo.open - sum((Decimal(t["balance"]) for t in history["invoices"]), ZERO)
    paid = (
        row.qbo.paid
        - sum((Decimal(t["total"]) for t in history["payments"]), ZERO)
        + sum((Decimal(t["total"]) for t in history["refunds"]), ZERO)
    )
    return (invoiced, paid, open_) == (row.app.invoiced, row.app.paid, row.app.open)


# --------------------------------------------------------------------------------------------
# Explanations


def _amount(value: Decimal | str) -> str:
    return f"${Decimal(value):,.2f}"


def _day(value: Any) -> str:
    return date_format(value, "Y-m-d") if value else ""


def _annotated_invoices(firm: Firm, account_ids: list[int]) -> list[Any]:
    from practice.billing.models import Invoice, InvoiceLine, PaymentAllocation

    def summed(qs: Any) -> Coalesce:
        s = qs.order_by().annotate(_g=Value(1)).values("_g").annotate(s=Sum("amount")).values("s")
        return Coalesce(Subquery(s, output_field=MONEY), Value(ZERO), output_field=MONEY)

    return list(
        Invoice.objects.filter(firm=firm, account_id__in=account_ids, state__in=("issued", "void"))
        .annotate(
            total_amount=summed(InvoiceLine.objects.filter(invoice=OuterRef("pk"))),
            allocated_amount=summed(
                PaymentAllocation.objects.filter(invoice=OuterRef("pk"), payment__state="recorded")
            ),
        )
        .order_by("issue_date", "id")
    )


def _why_not_in_qbo(link: SyncLink | None, row: Row) -> str:
    """Why an app record is not (or not yet) in QuickBooks, or "" when nothing says so."""
    if link is not None and link.status == SyncStatus.ERROR:
        return _("in Error: %(why)s") % {"why": translate(link.error_message) or _("QuickBooks refused it")}
    if row.status == SyncStatus.SKIPPED:
        return _("not sent: sync is turned off for this account (Skipped)")
    if link is not None and link.status == SyncStatus.SKIPPED:
        return _("not sent: sync was turned off for it")
    if link is not None and link.status == SyncStatus.SYNCING:
        return _("on its way to QuickBooks (waiting to retry)")
    if link is not None and link.error_message:
        return _("not in QuickBooks yet: %(why)s") % {"why": translate(link.error_message)}
    return _("not in QuickBooks yet; it is sent with the next sync")


def explain(rows: list[Row], *, firm: Firm, connection: Connection) -> None:
    """Fill `explanations` and `explained` of the rows that differ (a few queries for all)."""
    from practice.billing.models import Payment, Refund

    todo = [r for r in rows if r.differs]
    if not todo:
        return
    ids = [r.account_id for r in todo]
    invoices = _annotated_invoices(firm, ids)
    payments = list(
        Payment.objects.filter(firm=firm, account_id__in=ids)
        .prefetch_related("allocations")
        .annotate(refunded_amount=Coalesce(Sum("refunds__amount"), Value(ZERO), output_field=MONEY))
    )
    refunds = list(Refund.objects.filter(firm=firm, payment__account_id__in=ids).select_related("payment"))

    def links(kind: str, pks: list[int]) -> dict[int, SyncLink]:
        qs = SyncLink.objects.filter(connection=connection, kind=kind, local_id__in=pks)
        return {link.local_id: link for link in qs}

    inv_links = links("invoice", [i.pk for i in invoices])
    pay_links = links("payment", [p.pk for p in payments])
    ref_links = links("refund", [r.pk for r in refunds])
    # QBO transactions the app made: any link of this connection holding their Id.
    qbo_ids: dict[str, set[str]] = {"invoices": set(), "payments": set(), "refunds": set()}
    for row in todo:
        for kind in qbo_ids:
            qbo_ids[kind].update(t["id"] for t in row.detail.get(kind, []))
    ours = {
        kind: set(
            SyncLink.objects.filter(
                connection=connection, kind=link_kind, qbo_id__in=qbo_ids[kind]
            ).values_list("qbo_id", flat=True)
        )
        for kind, link_kind in (("invoices", "invoice"), ("payments", "payment"), ("refunds", "refund"))
    }
    per_account: dict[int, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for inv in invoices:
        per_account[inv.account_id]["invoices"].append(inv)
    for pay in payments:
        per_account[pay.account_id]["payments"].append(pay)
    for ref in refunds:
        per_account[ref.payment.account_id]["refunds"].append(ref)

    for row in todo:
        if row.qbo is None:
            continue
        mine = per_account[row.account_id]
        said: list[str] = []
        unexplained: list[str] = []
        qbo_inv = {t["id"]: t for t in row.detail.get("invoices", [])}
        qbo_pay = {t["id"]: t for t in row.detail.get("payments", [])}
        qbo_ref = {t["id"]: t for t in row.detail.get("refunds", [])}
        missing_payment_for: set[int] = set()  # invoices a payment not in QBO was applied to

        for pay in mine["payments"]:
            link = pay_links.get(pay.pk)
            theirs = qbo_pay.get(link.qbo_id) if link and link.qbo_id else None
            label = _("Payment of %(date)s (%(amount)s)") % {
                "date": _day(pay.date),
                "amount": _amount(pay.amount),
            }
            if pay.state == "deleted":
                if theirs is not None:
                    said.append(
                        _("%(what)s was deleted here; QuickBooks still has it (%(why)s).")
                        % {"what": label, "why": _why_not_in_qbo(link, row)}
                    )
                continue
            if theirs is None:
                reason = ineligible_reason("payment", pay, connection) if not (link and link.qbo_id) else ""
                if link and link.qbo_id and _sent_after_read(link, row):
                    said.append(_sent_text(label))
                elif link and link.qbo_id:
                    said.append(
                        _("%(what)s is linked to a QuickBooks payment that is not there any more.")
                        % {"what": label}
                    )
                else:
                    said.append(
                        _sentence(
                            _("%(what)s: %(why)s")
                            % {"what": label, "why": reason or _why_not_in_qbo(link, row)}
                        )
                    )
                missing_payment_for.update(a.invoice_id for a in pay.allocations.all())
                continue
            if Decimal(theirs["total"]) != pay.amount:
                said.append(
                    _changed(label, link, theirs["token"], _amount(theirs["total"]), _amount(pay.amount))
                )
                if not _token_moved(link, theirs["token"]):
                    unexplained.append(label)

        for inv in mine["invoices"]:
            link = inv_links.get(inv.pk)
            theirs = qbo_inv.get(link.qbo_id) if link and link.qbo_id else None
            label = _("Invoice %(number)s (%(amount)s)") % {
                "number": inv.number,
                "amount": _amount(inv.total),
            }
            if inv.state == "void":
                if theirs is not None and Decimal(theirs["total"]) != ZERO:
                    said.append(
                        _("%(what)s was voided here; QuickBooks still has it at %(amount)s (%(why)s).")
                        % {
                            "what": label,
                            "amount": _amount(theirs["total"]),
                            "why": _why_not_in_qbo(link, row),
                        }
                    )
                continue
            if theirs is None:
                if link and link.qbo_id and _sent_after_read(link, row):
                    said.append(_sent_text(label))
                    continue
                if link and link.qbo_id:
                    said.append(
                        _("%(what)s is linked to a QuickBooks invoice that is not there any more.")
                        % {"what": label}
                    )
                    continue
                reason = ineligible_reason("invoice", inv, connection)
                said.append(
                    _sentence(
                        _("%(what)s: %(why)s") % {"what": label, "why": reason or _why_not_in_qbo(link, row)}
                    )
                )
                continue
            total, balance = Decimal(theirs["total"]), Decimal(theirs["balance"])
            if total != inv.total or balance != inv.balance:
                if _token_moved(link, theirs["token"]) or total != inv.total:
                    said.append(
                        _changed(
                            label,
                            link,
                            theirs["token"],
                            _("%(total)s, open %(open)s")
                            % {"total": _amount(total), "open": _amount(balance)},
                            _("%(total)s, open %(open)s")
                            % {"total": _amount(inv.total), "open": _amount(inv.balance)},
                        )
                    )
                    if not _token_moved(link, theirs["token"]):
                        unexplained.append(label)
                elif inv.pk not in missing_payment_for and not _hand_payments(qbo_pay, ours["payments"]):
                    said.append(
                        _("%(what)s: open %(theirs)s in QuickBooks, %(ours)s here.")
                        % {"what": label, "theirs": _amount(balance), "ours": _amount(inv.balance)}
                    )
                    unexplained.append(label)

        for ref in mine["refunds"]:
            link = ref_links.get(ref.pk)
            theirs = qbo_ref.get(link.qbo_id) if link and link.qbo_id else None
            if ref.payment.state == "deleted" or theirs is not None:
                continue
            label = _("Refund of %(date)s (%(amount)s)") % {
                "date": _day(ref.date),
                "amount": _amount(ref.amount),
            }
            said.append(
                _sentence(_("%(what)s: %(why)s") % {"what": label, "why": _why_not_in_qbo(link, row)})
            )

        for t in row.detail.get("invoices", []):
            if t["id"] not in ours["invoices"]:
                said.append(
                    (
                        _(
                            "Created in QuickBooks by hand before this account was linked: "
                            "invoice %(number)s %(amount)s (open %(open)s)."
                        )
                        if _before(t, row.linked_at)
                        else _(
                            "Created in QuickBooks by hand: invoice %(number)s %(amount)s (open %(open)s)."
                        )
                    )
                    % {
                        "number": t["doc"] or _("without a number (Id %(id)s)") % {"id": t["id"]},
                        "amount": _amount(t["total"]),
                        "open": _amount(t["balance"]),
                    }
                )
        for t in _hand_payments(qbo_pay, ours["payments"]):
            if Decimal(t["total"]) == ZERO:
                continue  # an empty payment moves no figure
            said.append(
                (
                    _(
                        "Created in QuickBooks by hand before this account was linked: "
                        "payment of %(date)s %(amount)s."
                    )
                    if _before(t, row.linked_at)
                    else _("Created in QuickBooks by hand: payment of %(date)s %(amount)s.")
                )
                % {"date": t["date"], "amount": _amount(t["total"])}
            )
        for t in row.detail.get("refunds", []):
            if t["id"] not in ours["refunds"]:
                said.append(
                    (
                        _(
                            "Created in QuickBooks by hand before this account was linked: "
                            "refund of %(date)s %(amount)s."
                        )
                        if _before(t, row.linked_at)
                        else _("Created in QuickBooks by hand: refund of %(date)s %(amount)s.")
                    )
                    % {"date": t["date"], "amount": _amount(t["total"])}
                )
        if not said:
            said.append(_("No known reason: compare this customer's transactions in QuickBooks."))
            unexplained.append(row.name)
        row.explanations = said
        row.explained = not unexplained


def _sent_after_read(link: SyncLink, row: Row) -> bool:
    return bool(link.synced_at and row.read_at and link.synced_at > row.read_at)


def _sent_text(label: str) -> str:
    return _("%(what)s was sent to QuickBooks after these figures were read; they are being read again.") % {
        "what": label
    }


def _sentence(text: str) -> str:
    """Ends with a full stop (the reasons come from several places, some without one)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _token_moved(link: SyncLink | None, token: str) -> bool:
    return bool(link and link.qbo_sync_token and token and token != link.qbo_sync_token)


def _changed(label: str, link: SyncLink | None, token: str, theirs: str, ours: str) -> str:
    if _token_moved(link, token):
        return _("%(what)s was changed in QuickBooks: %(theirs)s there, %(ours)s here.") % {
            "what": label,
            "theirs": theirs,
            "ours": ours,
        }
    if link is not None and link.status != SyncStatus.SYNCED:
        return _("%(what)s has changes not sent to QuickBooks yet: %(theirs)s there, %(ours)s here.") % {
            "what": label,
            "theirs": theirs,
            "ours": ours,
        }
    return _("%(what)s differs: %(theirs)s in QuickBooks, %(ours)s here.") % {
        "what": label,
        "theirs": theirs,
        "ours": ours,
    }


def _hand_payments(qbo_pay: dict[str, dict[str, Any]], ours: set[str]) -> list[dict[str, Any]]:
    return [t for t in qbo_pay.values() if t["id"] not in ours]


# --------------------------------------------------------------------------------------------
# CSV


CSV_HEADER = (
    "account",
    "state",
    "quickbooks_customer_id",
    "app_invoiced",
    "quickbooks_invoiced",
    "app_paid",
    "quickbooks_paid",
    "app_open",
    "quickbooks_open",
    "difference",
    "explanation",
    "read_at",
)


def csv_safe(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs: formula starters get a leading '."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_rows(rows: list[Row]) -> list[list[str]]:
    out: list[list[str]] = [list(CSV_HEADER)]
    for r in rows:
        q = r.qbo
        out.append(
            [
                csv_safe(r.name),
                r.state,
                r.qbo_id,
                str(r.app.invoiced),
                str(q.invoiced) if q else "",
                str(r.app.paid),
                str(q.paid) if q else "",
                str(r.app.open),
                str(q.open) if q else "",
                str(r.difference) if q else "",
                csv_safe(" ".join(r.explanations)),
                r.read_at.isoformat() if r.read_at else "",
            ]
        )
    return out
