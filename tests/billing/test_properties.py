"""Property tests: money arithmetic and the allocation/refund invariants under random operations."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from practice.billing import selectors, services
from practice.billing.models import ZERO

from .conftest import DUE, TODAY

cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)
quantities = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(quantities, cents), min_size=1, max_size=5))
def test_invoice_total_is_the_sum_of_rounded_lines(firm, account, service, lines):
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=TODAY,
        due_date=DUE,
        lines=[{"service": service, "quantity": q, "rate": r} for q, r in lines],
    )
    expected = [(q * r).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for q, r in lines]
    assert [line.amount for line in invoice.lines.all()] == expected
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).total == sum(expected, ZERO)


operation = st.tuples(st.sampled_from(["allocate", "refund", "unallocate"]), st.integers(0, 2), cents)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=cents, invoice_totals=st.lists(cents, min_size=3, max_size=3), ops=st.lists(operation, max_size=12)
)
def test_money_never_over_applied(firm, account, service, amount, invoice_totals, ops):
    invoices = []
    for total in invoice_totals:
        inv = services.invoice_create(
            firm=firm,
            account=account,
            issue_date=TODAY,
            due_date=DUE,
            lines=[{"service": service, "quantity": "1", "rate": total}],
        )
        invoices.append(services.invoice_issue(invoice=inv))
    payment = services.payment_record(firm=firm, account=account, date=TODAY, amount=amount, method="cash")
    for op, index, value in ops:
        try:
            if op == "allocate":
                services.payment_allocate(payment=payment, invoice=invoices[index], amount=value)
            elif op == "refund":
                services.refund_record(payment=payment, date=TODAY, amount=value)
            else:
                allocation = payment.allocations.filter(invoice=invoices[index]).first()
                if allocation is not None:
                    services.payment_unallocate(allocation=allocation)
        except ValidationError:
            pass  # refused operations are fine; the invariants below must hold either way
        fresh = selectors.payment_get(firm=firm, pk=payment.pk)
        assert ZERO <= fresh.unapplied <= fresh.amount
        assert fresh.allocated + fresh.refunded <= fresh.amount
        for inv in invoices:
            got = selectors.invoice_get(firm=firm, pk=inv.pk)
            assert ZERO <= got.balance <= got.total
