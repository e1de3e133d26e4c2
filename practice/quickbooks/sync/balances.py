"""QBO's side of the reconciliation page: each linked customer's invoiced, paid and open amounts,
read from QuickBooks in pages and cached in `CustomerBalance`.

What is read, per customer (docs/reconciliation.md explains the choice):

- invoiced = sum of `TotalAmt` of the customer's invoices (a voided QBO invoice has TotalAmt 0);
- open = sum of their `Balance`;
- paid = sum of `TotalAmt` of the customer's payments, less the `TotalAmt` of its refund
  receipts (the app's "paid" is payments less refunds, and refunds become RefundReceipts).

Not `Customer.Balance`: QBO nets credit memos and unapplied payments into it, so it cannot be
set beside the app's invoice balances, and it names no invoice, while the page must say which
invoice explains a difference. Each transaction's Id, number, date, amounts and SyncToken are kept
in `CustomerBalance.detail` for that.

The reads are `SELECT * FROM Invoice WHERE CustomerRef IN (...)` (then Payment, RefundReceipt)
for up to `CUSTOMERS_PER_QUERY` customers at a time, paged `STARTPOSITION`/`MAXRESULTS` at most
1,000 rows per page (qbo-api.md §3.2): a firm with 2,000 linked customers and 10,000 invoices
costs about 20 queries, never one per customer.

A row is re-read when it is missing, `stale` (the drift check marks customers QBO changed) or
older than `QBO_RECONCILE_MAX_AGE_SECONDS`; "Refresh from QuickBooks" re-reads all of them. This
runs as a background task (`refresh_customer_balances`): against Intuit a large firm's read takes
longer than a web request should wait, and the page must never call QBO while it renders.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_tasks import task

from practice.quickbooks.connection.client import QBOClient, quote
from practice.quickbooks.models import Connection, CustomerBalance, SyncLink
from practice.quickbooks.statuses import SyncStatus

logger = logging.getLogger("practice.quickbooks.balances")

# Customer ids per `CustomerRef IN (...)`: keeps a statement far below QBO's URL/statement limits.
CUSTOMERS_PER_QUERY = 100
PAGE_SIZE = 1000  # QBO's MAXRESULTS ceiling
CENTS = Decimal("0.01")
# Linked customers: the account is Synced (or was, and sync was turned off: Skipped) with a QBO Id.
LINKED_STATUSES = (SyncStatus.SYNCED, SyncStatus.SKIPPED)


def money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENTS)


def max_age() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "QBO_RECONCILE_MAX_AGE_SECONDS", 3600)))


def linked_customers(connection: Connection) -> dict[int, str]:
    """{account id: QBO customer Id} of the connection's linked customers."""
    links = SyncLink.objects.filter(
        connection=connection, kind="customer", status__in=LINKED_STATUSES
    ).exclude(qbo_id="")
    return dict(links.values_list("local_id", "qbo_id"))


def customers_due(connection: Connection, *, force: bool = False) -> list[str]:
    """QBO customer Ids whose figures must be read again (all of them when `force`)."""
    linked = sorted(set(linked_customers(connection).values()), key=_id_key)
    if force:
        return linked
    fresh = set(
        CustomerBalance.objects.filter(
            connection=connection, stale=False, read_at__gte=timezone.now() - max_age()
        ).values_list("qbo_customer_id", flat=True)
    )
    return [c for c in linked if c not in fresh]


def _id_key(qbo_id: str) -> tuple[int, str]:
    return (int(qbo_id), "") if qbo_id.isdigit() else (0, qbo_id)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read(
    client: QBOClient, entity: str, customer_ids: Iterable[str], page_size: int
) -> list[dict[str, Any]]:
    where = "CustomerRef IN (" + ", ".join(quote(c) for c in customer_ids) + ")"
    return list(client.query_all(entity, where, page_size=page_size))


def _customer_of(txn: dict[str, Any]) -> str:
    return str((txn.get("CustomerRef") or {}).get("value", ""))


def _created(txn: dict[str, Any]) -> str:
    """When the transaction was made in QBO (MetaData.CreateTime, ISO 8601 with offset)."""
    return str((txn.get("MetaData") or {}).get("CreateTime", "") or "")


def refresh_balances(
    connection_id: int, *, force: bool = False, page_size: int = PAGE_SIZE, only: Iterable[str] | None = None
) -> int:
    """Read QBO's figures of the customers that need it; returns how many customers were read.

    `only` limits the read to those QBO customer Ids (tests, and a single customer's row).
    """
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None or not connection.is_connected or not connection.realm_id:
        return 0
    due = customers_due(connection, force=force or only is not None)
    if only is not None:
        wanted = set(only)
        due = [c for c in due if c in wanted]
    if not due:
        return 0
    client = QBOClient(connection)
    for chunk in _chunks(due, CUSTOMERS_PER_QUERY):
        # Clear `stale` *before* reading: a change QBO reports while we read marks the row stale
        # again, and that mark survives the write below (which never touches `stale`).
        for qbo_id in chunk:
            CustomerBalance.objects.get_or_create(connection=connection, qbo_customer_id=qbo_id)
        CustomerBalance.objects.filter(connection=connection, qbo_customer_id__in=chunk).update(stale=False)
        found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for invoice in _read(client, "Invoice", chunk, page_size):
            found[_customer_of(invoice)]["invoices"].append(
                {
                    "id": str(invoice.get("Id", "")),
                    "doc": str(invoice.get("DocNumber", "") or ""),
                    "date": str(invoice.get("TxnDate", "") or ""),
                    "total": str(money(invoice.get("TotalAmt"))),
                    "balance": str(money(invoice.get("Balance"))),
                    "token": str(invoice.get("SyncToken", "")),
                    "created": _created(invoice),
                }
            )
        for kind, entity in (("payments", "Payment"), ("refunds", "RefundReceipt")):
            for txn in _read(client, entity, chunk, page_size):
                found[_customer_of(txn)][kind].append(
                    {
                        "id": str(txn.get("Id", "")),
                        "date": str(txn.get("TxnDate", "") or ""),
                        "total": str(money(txn.get("TotalAmt"))),
                        "token": str(txn.get("SyncToken", "")),
                        "created": _created(txn),
                    }
                )
        read_at = timezone.now()
        for qbo_id in chunk:
            txns = found.get(qbo_id, {})
            invoices = txns.get("invoices", [])
            payments = txns.get("payments", [])
            refunds = txns.get("refunds", [])
            CustomerBalance.objects.filter(connection=connection, qbo_customer_id=qbo_id).update(
                invoiced=sum((Decimal(i["total"]) for i in invoices), Decimal("0.00")),
                open=sum((Decimal(i["balance"]) for i in invoices), Decimal("0.00")),
                paid=sum((Decimal(p["total"]) for p in payments), Decimal("0.00"))
                - sum((Decimal(r["total"]) for r in refunds), Decimal("0.00")),
                invoice_count=len(invoices),
                read_at=read_at,
                detail={"invoices": invoices, "payments": payments, "refunds": refunds},
            )
    logger.info("qbo.balances.read", extra={"connection": connection_id, "customers": len(due)})
    return len(due)


def needs_refresh(connection: Connection) -> bool:
    return bool(customers_due(connection))


@task()
def refresh_customer_balances(connection_id: int, force: bool = False) -> int:
    """Background body of "Refresh from QuickBooks" and of a page load that found old figures."""
    return refresh_balances(connection_id, force=force)
