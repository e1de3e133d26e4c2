"""Demo data: a firm with members, 50 client accounts and a realistic billing history.

The account names are fixed on purpose: against the local QBO sandbox company they produce a
realistic mix of exact matches, near matches (spacing, case, accents, "&"), names QBO rejects
(":"), and accounts with no billing that stay "Not synced". The QuickBooks app and its tests
import `DEMO_ACCOUNT_NAMES` and `NO_BILLING_ACCOUNT_NAMES`; keep the spelling exactly.

Everything is created through the billing services, so the demo obeys the same rules as the UI.
"""

from __future__ import annotations

import datetime
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from practice.billing import services
from practice.billing.models import Invoice, Payment, PaymentMethod, Refund, Service, money
from practice.clients.models import AccountKind, ClientAccount
from practice.firms.models import Firm, Membership, Role, User
from practice.firms.services import firm_create, member_add

DEMO_FIRM_NAME = "Demo Accounting LLP"
DEMO_PASSWORD = "demo-password-1"
DEMO_OWNER_EMAIL = "owner@demo.test"
DEMO_MEMBERS = [
    ("admin@demo.test", Role.ADMIN, "Alex Admin"),
    ("employee@demo.test", Role.EMPLOYEE, "Emma Employee"),
]
DEMO_EMAILS = [DEMO_OWNER_EMAIL] + [email for email, _role, _name in DEMO_MEMBERS]

DEMO_ACCOUNT_NAMES: list[str] = [
    "Amy's Bird Sanctuary",
    "Bill's Windsurf Shop",
    "Cool Cars",
    "Dukes Basketball Camp",
    "Freeman Sporting Goods",
    "Geeta Kalapatapu",
    "Jeff's Jalopies",
    "John Melton",
    "Kate Whelan",
    "Mark Cho",
    "Paulsen Medical Supplies",
    "Red Rock Diner",
    "Sushi by Katsuyuki",
    "Travis Waldron",
    "Weiskopf Consulting",
    "  Rago  Travel agency",  # leading and doubled spaces on purpose (whitespace-insensitive match)
    "KOOKIES BY KATHY",  # case differs from the QBO customer
    "Gevelber  Photography",  # two spaces
    "video games by dan",
    "Pyes Cakes",
    "Rondonuwu Fruit & Vegi",
    "Diego Rodríguez",
    "Barnett Design LLC",
    "Books by Bessie",
    "Hicks Hardware",
    "Emily Platt",
    "Sonnenschein Family Store",
    "Harbor Dental Group",
    "Wedding Planning by Whitney",
    "Smith: Tax Client",  # ':' is refused by QBO in DisplayName
    "Alvarez Family Trust",
    "Brightline Dental",
    "Carter & Sons Plumbing",
    "Delgado Landscaping",
    "Evergreen Yoga Studio",
    "Foster Legal PLLC",
    "Greenfield Bakery",
    "Hoffman Auto Repair",
    "Iris Chen",
    "Jacob Brennan",
    "Kimura Architecture",
    "Lakeside Veterinary Clinic",
    "Marisol Ortega",
    "Northwind Traders",
    "Oakridge Property Management",
    "Patel Pharmacy",
    "Quinn & Walsh CPAs",
    "Riverside Florist",
    "Summit Fitness",
    "Tanaka Family",
]
# No invoices or payments: "Not synced" under the default rule (accounts with billing only).
NO_BILLING_ACCOUNT_NAMES: list[str] = [
    "Northwind Traders",
    "Oakridge Property Management",
    "Patel Pharmacy",
    "Quinn & Walsh CPAs",
    "Riverside Florist",
    "Summit Fitness",
    "Tanaka Family",
]
_INDIVIDUALS = {
    "Geeta Kalapatapu",
    "John Melton",
    "Kate Whelan",
    "Mark Cho",
    "Travis Waldron",
    "Diego Rodríguez",
    "Emily Platt",
    "Iris Chen",
    "Jacob Brennan",
    "Marisol Ortega",
    "Tanaka Family",
    "Alvarez Family Trust",
    "Smith: Tax Client",
}

# The demo's deliberate billing problem (issue 10): the sandbox company already holds an invoice
# with this account's first invoice number, under another customer and for another total
# (`practice.quickbooks.demo.seed`). The invoice kind makes it an Error ("docnumber_clash"; the fix
# is to change the number), and the account's partial payment on that invoice waits for it.
DOCNUMBER_CLASH_ACCOUNT = "Bill's Windsurf Shop"
# Classes and locations the demo invoices use: the sandbox company is given them, as the firm's
# own QuickBooks company would have them (QBO tracks classes per line and locations there).
DEMO_CLASS_NAMES = ("Tax",)
DEMO_LOCATION_NAMES = ("Downtown office",)

DEMO_SERVICES: list[tuple[str, str, str]] = [
    ("Bookkeeping", "125.00", "Monthly bookkeeping and bank reconciliation"),
    ("Tax preparation", "450.00", "Federal and state income tax returns"),
    ("Payroll", "95.00", "Payroll runs, filings and year-end forms"),
    ("Advisory", "180.00", "Business advisory, per hour"),
    ("Audit support", "160.00", "Preparing schedules and answering auditor requests, per hour"),
    ("Sales tax filing", "75.00", "Sales and use tax returns"),
]

_STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lakeview Blvd", "Hill St"]
_CITIES = [
    ("Mountain View", "CA", "94043"),
    ("Bayshore", "CA", "94326"),
    ("Middlefield", "CA", "94482"),
    ("Palo Alto", "CA", "94303"),
    ("San Jose", "CA", "95110"),
    ("Sunnyvale", "CA", "94086"),
]


@dataclass(frozen=True)
class SeedResult:
    firm: Firm
    accounts: int
    services: int
    invoices: int
    payments: int
    refunds: int


def demo_firm() -> Firm | None:
    return Firm.objects.filter(name=DEMO_FIRM_NAME).order_by("id").first()


def docnumber_clash_invoice(firm: Firm) -> Invoice | None:
    """The demo invoice whose number the sandbox company already uses for another customer."""
    return (
        Invoice.objects.filter(firm=firm, account__name=DOCNUMBER_CLASH_ACCOUNT, state="issued")
        .order_by("issue_date", "id")
        .first()
    )


def _slug(name: str) -> str:
    """An ASCII e-mail local part: accents folded, punctuation-only words ("&") dropped."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = ("".join(ch for ch in word.lower() if ch.isalnum()) for word in ascii_name.split())
    return ".".join(w for w in words if w)


@transaction.atomic
def demo_reset() -> None:
    """Remove the demo firm (everything hangs off it) and the demo users."""
    for firm in Firm.objects.filter(name=DEMO_FIRM_NAME):
        firm.delete()
    Membership.objects.filter(user__email__in=DEMO_EMAILS).delete()
    User.objects.filter(email__in=DEMO_EMAILS).delete()


@transaction.atomic
def demo_seed(*, today: datetime.date | None = None) -> SeedResult:
    """Create the demo firm. Call only when `demo_firm()` is None (the command checks)."""
    today = today or timezone.localdate()
    firm = firm_create(
        name=DEMO_FIRM_NAME,
        owner_email=DEMO_OWNER_EMAIL,
        owner_password=DEMO_PASSWORD,
        owner_name="Olivia Owner",
    )
    for email, role, full_name in DEMO_MEMBERS:
        member_add(firm=firm, email=email, password=DEMO_PASSWORD, role=role, full_name=full_name)
    owner = User.objects.get(email=DEMO_OWNER_EMAIL)

    accounts: list[ClientAccount] = []
    for i, name in enumerate(DEMO_ACCOUNT_NAMES):
        city, region, postal = _CITIES[i % len(_CITIES)]
        accounts.append(
            ClientAccount(
                firm=firm,
                name=name,
                kind=AccountKind.INDIVIDUAL if name in _INDIVIDUALS else AccountKind.COMPANY,
                email=f"{_slug(name)}@example.com",
                phone=f"(650) 555-{1000 + i * 37:04d}",
                address_line1=f"{100 + i * 17} {_STREETS[i % len(_STREETS)]}",
                city=city,
                region=region,
                postal_code=postal,
                country="USA",
            )
        )
    ClientAccount.objects.bulk_create(accounts)
    accounts = list(ClientAccount.objects.filter(firm=firm).order_by("id"))

    catalogue = [
        services.service_create(firm=firm, name=name, rate=rate, description=description, actor=owner)
        for name, rate, description in DEMO_SERVICES
    ]
    billed = [a for a in accounts if a.name not in NO_BILLING_ACCOUNT_NAMES]
    for i, account in enumerate(billed):
        _seed_account(firm=firm, account=account, index=i, services_=catalogue, today=today, actor=owner)

    return SeedResult(
        firm=firm,
        accounts=ClientAccount.objects.filter(firm=firm).count(),
        services=Service.objects.filter(firm=firm).count(),
        invoices=Invoice.objects.filter(firm=firm).count(),
        payments=Payment.objects.filter(firm=firm).count(),
        refunds=Refund.objects.filter(firm=firm).count(),
    )


def _lines(index: int, services_: list[Service], count: int) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for n in range(count):
        service = services_[(index + n * 2) % len(services_)]
        hourly = service.name in {"Advisory", "Audit support"}
        quantity = Decimal("1.5") + Decimal(index % 4) if hourly else Decimal(1)
        lines.append(
            {
                "service": service,
                "description": service.description,
                "quantity": quantity,
                "rate": service.rate,
            }
        )
    return lines


def _invoice(
    *,
    firm: Firm,
    account: ClientAccount,
    index: int,
    services_: list[Service],
    issued_on: datetime.date,
    lines: int,
    issue: bool,
    actor: User,
    memo: str = "",
) -> Invoice:
    invoice = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=issued_on,
        due_date=issued_on + datetime.timedelta(days=30),
        lines=_lines(index, services_, lines),
        class_name=DEMO_CLASS_NAMES[0] if index % 5 == 0 else "",
        location_name=DEMO_LOCATION_NAMES[0] if index % 7 == 0 else "",
        memo=memo,
        actor=actor,
    )
    if issue:
        invoice = services.invoice_issue(invoice=invoice, actor=actor)
    return invoice


def _pay(
    *,
    firm: Firm,
    account: ClientAccount,
    index: int,
    on: datetime.date,
    amount: Decimal,
    allocations: list[tuple[Invoice, Decimal]],
    actor: User,
) -> Payment:
    method = [PaymentMethod.CHECK, PaymentMethod.ACH, PaymentMethod.CARD, PaymentMethod.CASH][index % 4]
    # Card and ACH payments arrive through the online-payment integration; checks and cash are
    # typed in by staff, which is what "created manually" means for the QBO setting.
    online = method in {PaymentMethod.CARD, PaymentMethod.ACH}
    fee = (
        money(amount * Decimal("0.029") + Decimal("0.30"))
        if method == PaymentMethod.CARD
        else Decimal("0.00")
    )
    return services.payment_record(
        firm=firm,
        account=account,
        date=on,
        amount=amount,
        method=method,
        reference=f"{method.upper()}-{1000 + index}" if method != PaymentMethod.CASH else "",
        processing_fee=fee,
        created_manually=not online,
        allocations=allocations,
        actor=actor,
    )


def _seed_account(
    *,
    firm: Firm,
    account: ClientAccount,
    index: int,
    services_: list[Service],
    today: datetime.date,
    actor: User,
) -> None:
    """One of six billing patterns per account, so the lists show every state."""

    def invoice(issued_on: datetime.date, lines: int, *, issue: bool = True, memo: str = "") -> Invoice:
        return _invoice(
            firm=firm,
            account=account,
            index=index,
            services_=services_,
            issued_on=issued_on,
            lines=lines,
            issue=issue,
            actor=actor,
            memo=memo,
        )

    def pay(
        on: datetime.date, amount: Decimal, allocations: list[tuple[Invoice, Decimal]], n: int = 0
    ) -> Payment:
        return _pay(
            firm=firm,
            account=account,
            index=index + n,
            on=on,
            amount=amount,
            allocations=allocations,
            actor=actor,
        )

    start = today - datetime.timedelta(days=150 - index * 2)
    paid_on = start + datetime.timedelta(days=12)
    first = invoice(start, 1 + index % 3)
    pattern = index % 6
    if pattern == 0:  # paid in full
        pay(paid_on, first.total, [(first, first.total)])
    elif pattern == 1:  # partly paid (for DOCNUMBER_CLASH_ACCOUNT: the payment that waits)
        part = money(first.total / 2)
        pay(paid_on, part, [(first, part)])
    elif pattern == 2:  # unpaid, and a draft being prepared
        invoice(today - datetime.timedelta(days=2), 2, issue=False, memo="Draft for review")
    elif pattern == 3:  # two invoices paid by one overpayment: the extra stays as credit
        second = invoice(start + datetime.timedelta(days=30), 1)
        amount = first.total + second.total + Decimal("100.00")
        pay(start + datetime.timedelta(days=40), amount, [(first, first.total), (second, second.total)])
    elif pattern == 4:  # paid, plus a retainer paid in advance (unapplied)
        pay(paid_on, first.total, [(first, first.total)])
        retainer = pay(today - datetime.timedelta(days=5), Decimal("500.00"), [], n=1)
        if index == 4:  # one refund: part of the retainer went back to the client
            services.refund_record(
                payment=retainer,
                date=today - datetime.timedelta(days=1),
                amount="200.00",
                reason="Engagement scope reduced",
                actor=actor,
            )
    # pattern 5: issued and unpaid (overdue by now)
    if index == 7:  # one void invoice, billed by mistake
        wrong = invoice(start + datetime.timedelta(days=3), 1)
        services.invoice_void(invoice=wrong, reason="Billed to the wrong client", actor=actor)
