"""Read-only admin for operators: billing rows are changed only through services.py, which
enforces the money rules and notifies QuickBooks sync; the admin must not bypass that."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from practice.billing.models import (
    BillingHistory,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    Refund,
    Service,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("service", "description", "quantity", "rate", "amount")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Service)
class ServiceAdmin(ReadOnlyAdmin):
    list_display = ("name", "firm", "rate", "archived")
    list_filter = ("archived",)
    search_fields = ("name",)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("number", "firm", "account", "issue_date", "state")
    list_filter = ("state",)
    search_fields = ("number", "account__name")
    inlines = [InvoiceLineInline]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("date", "firm", "account", "amount", "method", "state")
    list_filter = ("state", "method")
    search_fields = ("reference", "account__name")


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(ReadOnlyAdmin):
    list_display = ("payment", "invoice", "amount")


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("payment", "date", "amount", "reason")


@admin.register(BillingHistory)
class BillingHistoryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "firm", "action", "actor", "invoice", "payment", "service", "amount")
    list_filter = ("action",)
