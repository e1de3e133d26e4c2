from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from practice.billing import selectors, services
from practice.billing.models import (
    BillingHistory,
    Invoice,
    InvoiceState,
    Payment,
    PaymentState,
    money,
)
from practice.common import events

from .conftest import DUE, TODAY

D = Decimal


def errors_of(exc_info) -> dict:
    return exc_info.value.message_dict


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "rate", "expected"),
    [("1", "10.00", "10.00"), ("1.5", "33.33", "50.00"), ("0.25", "0.10", "0.03"), ("3", "0.335", None)],
)
def test_line_amount_is_quantity_times_rate_rounded_half_up(firm, account, service, quantity, rate, expected):
    if expected is None:
        # Rates with more than 2 decimal places are refused, not silently rounded.
        with pytest.raises(ValidationError) as exc:
            services.invoice_create(
                firm=firm,
                account=account,
                issue_date=TODAY,
                due_date=DUE,
                lines=[{"service": service, "quantity": quantity, "rate": rate}],
            )
        assert "lines-0-rate" in errors_of(exc)
        return
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[{"service": service, "quantity": quantity, "rate": rate}],
    )
    line = invoice.lines.get()
    assert line.amount == D(expected)
    assert isinstance(line.amount, Decimal)


def test_money_rounds_half_up():
    assert money(D("0.125")) == D("0.13")
    assert money(D("0.135")) == D("0.14")
    assert money(D("2.675")) == D("2.68")


def test_floats_are_not_trusted(firm, account, service):
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[{"service": service, "quantity": 3, "rate": 0.1}],  # type: ignore[dict-item]
    )
    assert invoice.lines.get().amount == D("0.30")


def test_blank_rate_takes_the_service_rate(firm, account, service):
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[{"service": service.pk, "quantity": "2", "rate": ""}],
    )
    assert invoice.lines.get().amount == D("200.00")


# --- services ----------------------------------------------------------------------------------


def test_service_create_update_archive(firm, service):
    assert service.rate == D("100.00")
    services.service_update(service=service, name="Monthly bookkeeping", rate="120.50", description="d")
    service.refresh_from_db()
    assert (service.name, service.rate) == ("Monthly bookkeeping", D("120.50"))
    services.service_archive(service=service)
    assert not selectors.service_list(firm=firm).exists()
    assert selectors.service_list(firm=firm, include_archived=True).count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "", "rate": "1"}, "name"),
        ({"name": "Bookkeeping", "rate": "1"}, "name"),  # duplicate, case-insensitive
        ({"name": "a:b", "rate": "1"}, "name"),
        ({"name": "X", "rate": "-1"}, "rate"),
        ({"name": "X", "rate": "abc"}, "rate"),
        ({"name": "X", "rate": "1.234"}, "rate"),
        ({"name": "X", "rate": "1", "income_account_name": "a" * 101}, "income_account_name"),
        ({"name": "X\x00", "rate": "1"}, "name"),
    ],
)
def test_service_bad_input_names_the_field(firm, service, kwargs, field):
    with pytest.raises(ValidationError) as exc:
        services.service_create(firm=firm, **kwargs)
    assert field in errors_of(exc)


def test_service_names_unique_per_firm_only(firm, other_firm, service):
    services.service_create(firm=other_firm, name="Bookkeeping", rate="1")


# --- invoice numbers ---------------------------------------------------------------------------


def test_numbers_are_assigned_per_firm(firm, other_firm, make_invoice, other_account, service):
    assert make_invoice().number == "INV-0001"
    assert make_invoice().number == "INV-0002"
    make_invoice(number="INV-0010")
    assert make_invoice().number == "INV-0011"
    other_service = services.service_create(firm=other_firm, name="S", rate="1")
    other = services.invoice_create(
        firm=other_firm,
        account=other_account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[{"service": other_service, "quantity": "1", "rate": "1"}],
    )
    assert other.number == "INV-0001"


def test_number_unique_per_firm_case_insensitive(make_invoice):
    make_invoice(number="A-1")
    with pytest.raises(ValidationError) as exc:
        make_invoice(number="a-1")
    assert "number" in errors_of(exc)


def test_number_limited_to_21_characters(make_invoice):
    assert make_invoice(number="X" * 21).number == "X" * 21
    with pytest.raises(ValidationError) as exc:
        make_invoice(number="X" * 22)
    assert "number" in errors_of(exc)


def test_same_number_in_two_firms(firm, other_firm, make_invoice, other_account):
    make_invoice(number="2026-1")
    s = services.service_create(firm=other_firm, name="S", rate="1")
    services.invoice_create(
        firm=other_firm,
        account=other_account,
        issue_date=TODAY,
        due_date=DUE,
        number="2026-1",
        lines=[{"service": s, "quantity": "1", "rate": "1"}],
    )


# --- invoice life cycle ------------------------------------------------------------------------


def test_invoice_totals_and_balance(firm, account, service, service2):
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[
            {"service": service, "quantity": "1.5", "rate": "100.00"},
            {"service": service2, "quantity": "1", "rate": "", "description": "Form 1040"},
        ],
    )
    assert invoice.total == D("400.00")
    assert invoice.balance == D("400.00")
    listed = selectors.invoice_list(firm=firm).get()
    assert (listed.total, listed.paid, listed.balance) == (D("400.00"), D("0.00"), D("400.00"))


def test_invoice_account_must_belong_to_the_firm(firm, other_account, service):
    with pytest.raises(ValidationError) as exc:
        services.invoice_create(
            firm=firm,
            account=other_account,
            issue_date=TODAY,
            due_date=DUE,
            lines=[{"service": service, "quantity": "1", "rate": "1"}],
        )
    assert "account" in errors_of(exc)
    assert not Invoice.objects.exists()


def test_invoice_line_service_must_belong_to_the_firm(firm, other_firm, account):
    foreign = services.service_create(firm=other_firm, name="Foreign", rate="1")
    with pytest.raises(ValidationError) as exc:
        services.invoice_create(
            firm=firm,
            account=account,
            issue_date=TODAY,
            due_date=DUE,
            lines=[{"service": foreign.pk, "quantity": "1", "rate": "1"}],
        )
    assert "lines-0-service" in errors_of(exc)


def test_due_date_not_before_issue_date(firm, account):
    with pytest.raises(ValidationError) as exc:
        services.invoice_create(firm=firm, account=account, issue_date=DUE, due_date=TODAY)
    assert "due_date" in errors_of(exc)


def test_only_drafts_are_edited(firm, account, service, draft, invoice):
    updated = services.invoice_update(
        invoice=draft,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        memo="Thanks",
        lines=[{"service": service, "quantity": "2", "rate": "10"}],
    )
    assert updated.number == draft.number
    assert updated.total == D("20.00")
    with pytest.raises(ValidationError) as exc:
        services.invoice_update(invoice=invoice, account=account, issue_date=TODAY, due_date=DUE, lines=[])
    assert NON_FIELD_ERRORS in errors_of(exc)


def test_issue_needs_a_line(firm, account):
    empty = services.invoice_create(firm=firm, account=account, issue_date=TODAY, due_date=DUE)
    with pytest.raises(ValidationError) as exc:
        services.invoice_issue(invoice=empty)
    assert "lines" in errors_of(exc)


def test_void_keeps_the_invoice_with_history(invoice):
    voided = services.invoice_void(invoice=invoice, reason="Billed twice")
    assert voided.state == InvoiceState.VOID
    assert voided.balance == D("0.00")
    assert voided.lines.count() == 1
    assert BillingHistory.objects.filter(invoice=invoice, action="voided", note="Billed twice").exists()
    with pytest.raises(ValidationError):
        services.invoice_void(invoice=invoice)


def test_cannot_void_with_payments_applied(firm, account, invoice):
    payment = services.payment_record(
        firm=firm, account=account, date=TODAY, amount="50", method="check", allocations=[(invoice, "50")]
    )
    with pytest.raises(ValidationError) as exc:
        services.invoice_void(invoice=invoice)
    assert NON_FIELD_ERRORS in errors_of(exc)
    services.payment_unallocate(allocation=payment.allocations.get())
    assert services.invoice_void(invoice=invoice).state == InvoiceState.VOID
    payment = selectors.payment_get(firm=firm, pk=payment.pk)
    assert payment.unapplied == D("50.00")


# --- payments ----------------------------------------------------------------------------------


def test_payment_with_allocations_updates_balances(firm, account, invoice, make_invoice):
    second = make_invoice("200.00")
    payment = services.payment_record(
        firm=firm,
        account=account,
        date=TODAY,
        amount="400.00",
        method="ach",
        reference="ACH-1",
        processing_fee="3.50",
        allocations=[(invoice, "300.00"), (second.pk, "50.00")],
    )
    payment = selectors.payment_get(firm=firm, pk=payment.pk)
    assert (payment.allocated, payment.refunded, payment.unapplied) == (D("350.00"), D("0.00"), D("50.00"))
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).balance == D("0.00")
    assert selectors.invoice_get(firm=firm, pk=second.pk).balance == D("150.00")
    assert [i.pk for i in selectors.open_invoices(firm=firm, account=account)] == [second.pk]
    balance = selectors.account_balance(firm=firm, account=account)
    assert (balance.invoiced, balance.paid, balance.outstanding, balance.credit) == (
        D("500.00"),
        D("350.00"),
        D("150.00"),
        D("50.00"),
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "x"}, "amount"),
        ({"method": "bitcoin"}, "method"),
        ({"date": "2026-13-01"}, "date"),
        ({"processing_fee": "200"}, "processing_fee"),
        ({"account": None}, "account"),
        ({"reference": "r" * 101}, "reference"),
    ],
)
def test_payment_bad_input_names_the_field(firm, account, kwargs, field):
    base = {"firm": firm, "account": account, "date": TODAY, "amount": "100", "method": "cash"}
    with pytest.raises(ValidationError) as exc:
        services.payment_record(**{**base, **kwargs})
    assert field in errors_of(exc)
    assert not Payment.objects.exists()


def test_allocation_limits(firm, account, account2, invoice, draft, make_invoice):
    payment = services.payment_record(firm=firm, account=account, date=TODAY, amount="100", method="cash")
    # more than the payment
    with pytest.raises(ValidationError) as exc:
        services.payment_allocate(payment=payment, invoice=invoice, amount="100.01")
    assert "invoice" in errors_of(exc)
    # to a draft
    with pytest.raises(ValidationError):
        services.payment_allocate(payment=payment, invoice=draft, amount="10")
    # another account's invoice
    foreign = make_invoice("10.00", acct=account2)
    with pytest.raises(ValidationError):
        services.payment_allocate(payment=payment, invoice=foreign, amount="5")
    # zero / negative
    with pytest.raises(ValidationError) as exc:
        services.payment_allocate(payment=payment, invoice=invoice, amount="0")
    assert "amount" in errors_of(exc)
    services.payment_allocate(payment=payment, invoice=invoice, amount="60")
    services.payment_allocate(payment=payment, invoice=invoice, amount="40")
    assert payment.allocations.get().amount == D("100.00")  # one row per invoice
    with pytest.raises(ValidationError):
        services.payment_allocate(payment=payment, invoice=invoice, amount="0.01")


def test_allocation_cannot_exceed_invoice_balance(firm, account, invoice):
    p1 = services.payment_record(firm=firm, account=account, date=TODAY, amount="500", method="cash")
    with pytest.raises(ValidationError) as exc:
        services.payment_allocate(payment=p1, invoice=invoice, amount="300.01")
    assert "invoice" in errors_of(exc)
    with pytest.raises(ValidationError) as exc:
        services.payment_record(
            firm=firm,
            account=account,
            date=TODAY,
            amount="500",
            method="cash",
            allocations=[(invoice, "301")],
        )
    assert f"allocation-{invoice.pk}" in errors_of(exc)
    with pytest.raises(ValidationError) as exc:
        services.payment_record(
            firm=firm, account=account, date=TODAY, amount="10", method="cash", allocations=[(invoice, "11")]
        )
    assert "allocations" in errors_of(exc)
    assert Payment.objects.count() == 1


def test_refund_limits(firm, account, invoice):
    payment = services.payment_record(
        firm=firm, account=account, date=TODAY, amount="400", method="card", allocations=[(invoice, "300")]
    )
    with pytest.raises(ValidationError) as exc:
        services.refund_record(payment=payment, date=TODAY, amount="100.01")
    assert "amount" in errors_of(exc)
    services.refund_record(payment=payment, date=TODAY, amount="60", reason="Overpaid")
    services.refund_record(payment=payment, date=TODAY, amount="40")
    with pytest.raises(ValidationError):
        services.refund_record(payment=payment, date=TODAY, amount="0.01")
    # and the refunded money cannot be applied any more
    invoice2 = services.invoice_issue(
        invoice=services.invoice_create(
            firm=firm,
            account=account,
            issue_date=TODAY,
            due_date=DUE,
            lines=[{"service": invoice.lines.get().service, "quantity": "1", "rate": "5"}],
        )
    )
    with pytest.raises(ValidationError):
        services.payment_allocate(payment=payment, invoice=invoice2, amount="1")
    payment = selectors.payment_get(firm=firm, pk=payment.pk)
    assert payment.unapplied == D("0.00")


def test_refund_bad_date(firm, account):
    payment = services.payment_record(firm=firm, account=account, date=TODAY, amount="10", method="cash")
    with pytest.raises(ValidationError) as exc:
        services.refund_record(payment=payment, date="2020-01-01", amount="1")
    assert "date" in errors_of(exc)


def test_payment_delete_is_a_state_change(firm, account, invoice):
    payment = services.payment_record(
        firm=firm, account=account, date=TODAY, amount="300", method="check", allocations=[(invoice, "300")]
    )
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).balance == D("0.00")
    services.payment_delete(payment=payment, reason="Bounced")
    payment.refresh_from_db()
    assert payment.state == PaymentState.DELETED
    assert payment.allocations.count() == 1  # kept for history
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).balance == D("300.00")
    with pytest.raises(ValidationError):
        services.payment_delete(payment=payment)
    with pytest.raises(ValidationError):
        services.refund_record(payment=payment, date=TODAY, amount="1")
    # the invoice can now be voided: the deleted payment no longer counts
    services.invoice_void(invoice=invoice)


def test_account_ids_with_billing(firm, account, account2, other_firm, other_account):
    from practice.clients.models import ClientAccount

    third = ClientAccount.objects.create(firm=firm, name="Third")
    services.payment_record(firm=firm, account=account2, date=TODAY, amount="1", method="cash")
    assert selectors.account_ids_with_billing(firm=firm) == {account2.pk}
    services.invoice_create(firm=firm, account=third, issue_date=TODAY, due_date=DUE)
    assert selectors.account_ids_with_billing(firm=firm) == {account2.pk, third.pk}
    assert selectors.account_ids_with_billing(firm=other_firm) == set()


# --- events ------------------------------------------------------------------------------------


def test_writes_notify_subscribers_on_commit(firm, account, service, django_capture_on_commit_callbacks):
    seen: list[tuple[str, int]] = []

    def callback(*, firm, kind, obj_id, **extra):
        seen.append((kind, obj_id))

    events.subscribe(callback)
    events.subscribe(callback)  # idempotent
    try:
        with django_capture_on_commit_callbacks(execute=True):
            invoice = services.invoice_create(
                firm=firm,
                account=account,
                issue_date=TODAY,
                due_date=DUE,
                lines=[{"service": service, "quantity": "1", "rate": "10"}],
            )
            services.invoice_issue(invoice=invoice)
            payment = services.payment_record(
                firm=firm,
                account=account,
                date=TODAY,
                amount="20",
                method="cash",
                allocations=[(invoice, "10")],
            )
            refund = services.refund_record(payment=payment, date=TODAY, amount="5")
    finally:
        events.unsubscribe(callback)
    assert seen == [
        ("invoice", invoice.pk),
        ("invoice", invoice.pk),
        ("payment", payment.pk),
        ("refund", refund.pk),
    ]


def test_failed_write_notifies_nobody(firm, account, django_capture_on_commit_callbacks):
    seen: list = []

    def callback(**kw):
        seen.append(kw)

    events.subscribe(callback)
    try:
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(ValidationError),
        ):
            services.payment_record(firm=firm, account=account, date=TODAY, amount="0", method="cash")
        assert callbacks == []
    finally:
        events.unsubscribe(callback)
    assert seen == []
