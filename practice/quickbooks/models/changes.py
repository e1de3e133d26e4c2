"""What QBO told us changed on its side, and QBO's own totals per customer.

`ChangeNotice` is one change of one QBO entity, from a webhook delivery or a CDC sweep, kept
until the drift check has looked at it (`practice/quickbooks/sync/drift.py`). A notice is only
an identifier: whoever applies it reads the entity from QBO again, because notices arrive late,
twice or out of order (qbo-api.md §9.4). `dedupe_key` makes a repeated delivery a no-op.

`CustomerBalance` caches QBO's invoiced / paid / open amounts of one linked customer for the
reconciliation page, read in pages and marked stale when a notice touches that customer.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

__all__ = ["ChangeNotice", "CustomerBalance"]


class ChangeNotice(models.Model):
    """One change of one QBO entity (webhook or CDC), waiting for the drift check."""

    SOURCES = (("webhook", "webhook"), ("cdc", "cdc"))

    connection = models.ForeignKey(
        "quickbooks.Connection", on_delete=models.CASCADE, related_name="change_notices"
    )
    entity = models.CharField(max_length=32)  # QBO entity name: Customer, Invoice, Payment, ...
    entity_id = models.CharField(max_length=32)
    # Create, Update, Delete, Merge, Void, Emailed (webhooks); CDC gives Update or Delete.
    operation = models.CharField(max_length=16)
    deleted_id = models.CharField(max_length=32, blank=True)  # Merge: the record merged away
    changed_at = models.DateTimeField(null=True, blank=True)  # lastUpdated / CloudEvents time
    source = models.CharField(max_length=8, choices=SOURCES)
    # Unique per connection: the CloudEvents `id`, or entity|id|operation|lastUpdated (legacy, CDC).
    dedupe_key = models.CharField(max_length=200)
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "dedupe_key"], name="qbo_notice_once")]
        indexes = [models.Index(fields=["connection", "applied_at"], name="qbo_notice_pending")]

    def __str__(self) -> str:
        return f"{self.entity} {self.entity_id} {self.operation} ({self.source})"


class CustomerBalance(models.Model):
    """QBO's totals for one customer, as last read (reconciliation page cache)."""

    connection = models.ForeignKey(
        "quickbooks.Connection", on_delete=models.CASCADE, related_name="customer_balances"
    )
    qbo_customer_id = models.CharField(max_length=32)
    invoiced = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    paid = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    open = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    invoice_count = models.PositiveIntegerField(default=0)
    read_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=True)
    # The transactions the totals were summed from, as read (sync/balances.py): {"invoices":
    # [{"id", "doc", "date", "total", "balance", "token"}], "payments": [...], "refunds": [...]}.
    # The reconciliation page explains a difference from them (an invoice typed in QuickBooks by
    # hand, one changed there) without asking QBO again.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "qbo_customer_id"], name="qbo_balance_one_per_customer"
            )
        ]

    def __str__(self) -> str:
        return f"customer {self.qbo_customer_id}: open {self.open}"
