"""Per-entity rules: which operations exist, required fields, lengths, forbidden characters, references.

Values come from qbo-api.md §2 (REF-* field tables). Paths use `Line[].X.Y` to reach into line arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

NAME_LIST = "name"
TRANSACTION = "txn"
READ_ONLY = "readonly"
SINGLETON = "singleton"

PERSON_NAME_FIELDS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
# QBO forbids these in name fields (REF-customer business rules).
NAME_FORBIDDEN = (":", "\t", "\n")


@dataclass(frozen=True)
class EntitySpec:
    name: str
    kind: str
    id_space: str
    # Field used for name uniqueness, reference display names and default name-list ordering.
    name_field: str | None = None
    max_lengths: Mapping[str, int] = field(default_factory=dict)
    forbidden: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    docnumber: bool = False
    deletable: bool = False
    voidable: bool = False
    creatable: bool = True
    cdc: bool = True
    has_active: bool = False

    @property
    def path(self) -> str:
        return self.name.lower()


_PERSON_LENGTHS = {
    "DisplayName": 500,
    "Title": 16,
    "GivenName": 100,
    "MiddleName": 100,
    "FamilyName": 100,
    "Suffix": 16,
    "CompanyName": 100,
    "PrintOnCheckName": 110,
    "Notes": 2000,
    "PrimaryPhone.FreeFormNumber": 30,
    "AlternatePhone.FreeFormNumber": 30,
    "Mobile.FreeFormNumber": 30,
    "Fax.FreeFormNumber": 30,
    "WebAddr.URI": 1000,
    "ResaleNum": 16,
    "PrimaryEmailAddr.Address": 100,
}
_PERSON_FORBIDDEN = {f: NAME_FORBIDDEN for f in ("DisplayName", *PERSON_NAME_FIELDS, "PrintOnCheckName")}

_SALES_LINE_REFS = {
    "CustomerRef": ("Customer",),
    "ClassRef": ("Class",),
    "DepartmentRef": ("Department",),
    "SalesTermRef": ("Term",),
    "PaymentMethodRef": ("PaymentMethod",),
    "DepositToAccountRef": ("Account",),
    "Line[].SalesItemLineDetail.ItemRef": ("Item",),
    "Line[].SalesItemLineDetail.ClassRef": ("Class",),
    "Line[].SalesItemLineDetail.TaxCodeRef": ("TaxCode",),
    "TxnTaxDetail.TxnTaxCodeRef": ("TaxCode",),
}
_SALES_LENGTHS = {
    "DocNumber": 21,
    "PrivateNote": 4000,
    "CustomerMemo.value": 1000,
    "Line[].Description": 4000,
    "TrackingNum": 31,
    "PaymentRefNum": 100,
}

SPECS: dict[str, EntitySpec] = {}


def _add(spec: EntitySpec) -> None:
    SPECS[spec.name] = spec


_add(
    EntitySpec(
        "Customer",
        NAME_LIST,
        "name",
        "DisplayName",
        max_lengths=_PERSON_LENGTHS,
        forbidden=_PERSON_FORBIDDEN,
        refs={
            "ParentRef": ("Customer",),
            "CustomerTypeRef": ("CustomerType",),
            "SalesTermRef": ("Term",),
            "PaymentMethodRef": ("PaymentMethod",),
            "DefaultTaxCodeRef": ("TaxCode",),
        },
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Vendor",
        NAME_LIST,
        "name",
        "DisplayName",
        max_lengths={**_PERSON_LENGTHS, "AcctNum": 100, "TaxIdentifier": 20},
        forbidden=_PERSON_FORBIDDEN,
        refs={"TermRef": ("Term",), "APAccountRef": ("Account",)},
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Employee",
        NAME_LIST,
        "name",
        "DisplayName",
        max_lengths={**_PERSON_LENGTHS, "EmployeeNumber": 100, "SSN": 100},
        forbidden=_PERSON_FORBIDDEN,
        has_active=True,
    )
)
_add(EntitySpec("CustomerType", READ_ONLY, "CustomerType", "Name", creatable=False, has_active=True))
_add(
    EntitySpec(
        "Item",
        NAME_LIST,
        "Item",
        "Name",
        max_lengths={"Name": 100, "Description": 4000, "PurchaseDesc": 1000, "Sku": 100},
        forbidden={"Name": (":", "\t", "\n")},
        required=("Name", "Type"),
        refs={
            "IncomeAccountRef": ("Account",),
            "ExpenseAccountRef": ("Account",),
            "AssetAccountRef": ("Account",),
            "ParentRef": ("Item",),
            "ClassRef": ("Class",),
            "SalesTaxCodeRef": ("TaxCode",),
            "PurchaseTaxCodeRef": ("TaxCode",),
        },
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Account",
        NAME_LIST,
        "Account",
        "Name",
        max_lengths={"Name": 100, "AcctNum": 7, "Description": 100},
        forbidden={"Name": ('"', ":"), "AcctNum": (":",)},
        required=("Name",),
        refs={"ParentRef": ("Account",)},
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Class",
        NAME_LIST,
        "Class",
        "Name",
        max_lengths={"Name": 100},
        forbidden={"Name": NAME_FORBIDDEN},
        required=("Name",),
        refs={"ParentRef": ("Class",)},
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Department",
        NAME_LIST,
        "Department",
        "Name",
        max_lengths={"Name": 100},
        forbidden={"Name": NAME_FORBIDDEN},
        required=("Name",),
        refs={"ParentRef": ("Department",)},
        has_active=True,
    )
)
_add(
    EntitySpec(
        "Term",
        NAME_LIST,
        "Term",
        "Name",
        max_lengths={"Name": 31},
        forbidden={"Name": NAME_FORBIDDEN},
        required=("Name",),
        has_active=True,
    )
)
_add(
    EntitySpec(
        "PaymentMethod",
        NAME_LIST,
        "PaymentMethod",
        "Name",
        max_lengths={"Name": 31},
        forbidden={"Name": NAME_FORBIDDEN},
        required=("Name",),
        has_active=True,
    )
)
# TaxCode / TaxRate: QBO exposes query and read only (writes go through the TaxService endpoint).
_add(EntitySpec("TaxCode", READ_ONLY, "TaxCode", "Name", creatable=False, cdc=False, has_active=True))
_add(EntitySpec("TaxRate", READ_ONLY, "TaxRate", "Name", creatable=False, cdc=False, has_active=True))
_add(EntitySpec("TaxAgency", READ_ONLY, "TaxAgency", "DisplayName", creatable=False, cdc=False))
_add(
    EntitySpec(
        "Invoice",
        TRANSACTION,
        "txn",
        max_lengths=_SALES_LENGTHS,
        required=("Line", "CustomerRef"),
        refs=_SALES_LINE_REFS,
        docnumber=True,
        deletable=True,
        voidable=True,
    )
)
_add(
    EntitySpec(
        "CreditMemo",
        TRANSACTION,
        "txn",
        max_lengths=_SALES_LENGTHS,
        required=("Line", "CustomerRef"),
        refs=_SALES_LINE_REFS,
        docnumber=True,
        deletable=True,
    )
)
_add(
    EntitySpec(
        "RefundReceipt",
        TRANSACTION,
        "txn",
        max_lengths=_SALES_LENGTHS,
        required=("Line", "DepositToAccountRef"),
        refs=_SALES_LINE_REFS,
        docnumber=True,
        deletable=True,
        voidable=True,
    )
)
_add(
    EntitySpec(
        "SalesReceipt",
        TRANSACTION,
        "txn",
        max_lengths=_SALES_LENGTHS,
        required=("Line",),
        refs=_SALES_LINE_REFS,
        docnumber=True,
        deletable=True,
        voidable=True,
    )
)
_add(
    EntitySpec(
        "Estimate",
        TRANSACTION,
        "txn",
        max_lengths=_SALES_LENGTHS,
        required=("Line", "CustomerRef"),
        refs=_SALES_LINE_REFS,
        docnumber=True,
        deletable=True,
    )
)
_add(
    EntitySpec(
        "Payment",
        TRANSACTION,
        "txn",
        # No cap on PaymentRefNum: REF-payment documents none (card-processor ids run past 21).
        max_lengths={"PrivateNote": 4000},
        required=("TotalAmt", "CustomerRef"),
        refs={
            "CustomerRef": ("Customer",),
            "DepositToAccountRef": ("Account",),
            "PaymentMethodRef": ("PaymentMethod",),
            "ARAccountRef": ("Account",),
        },
        deletable=True,
        voidable=True,
    )
)
_add(
    EntitySpec(
        "Purchase",
        TRANSACTION,
        "txn",
        max_lengths={"DocNumber": 21, "PrivateNote": 4000, "Line[].Description": 4000},
        required=("PaymentType", "AccountRef", "Line"),
        refs={
            "AccountRef": ("Account",),
            "EntityRef": ("Customer", "Vendor", "Employee"),
            "DepartmentRef": ("Department",),
            "PaymentMethodRef": ("PaymentMethod",),
            "Line[].AccountBasedExpenseLineDetail.AccountRef": ("Account",),
            "Line[].AccountBasedExpenseLineDetail.CustomerRef": ("Customer",),
            "Line[].AccountBasedExpenseLineDetail.ClassRef": ("Class",),
            "Line[].AccountBasedExpenseLineDetail.TaxCodeRef": ("TaxCode",),
            "Line[].ItemBasedExpenseLineDetail.ItemRef": ("Item",),
            "Line[].ItemBasedExpenseLineDetail.CustomerRef": ("Customer",),
        },
        deletable=True,
    )
)
# Seeded from the sample company and kept readable/writable with the common rules only.
for _generic in (
    "Bill",
    "BillPayment",
    "Deposit",
    "JournalEntry",
    "PurchaseOrder",
    "Transfer",
    "VendorCredit",
):
    _add(
        EntitySpec(
            _generic,
            TRANSACTION,
            "txn",
            max_lengths={"DocNumber": 21, "PrivateNote": 4000},
            deletable=True,
            voidable=_generic == "BillPayment",
        )
    )
_add(EntitySpec("TimeActivity", TRANSACTION, "TimeActivity", deletable=True, cdc=False))
_add(
    EntitySpec(
        "CompanyInfo",
        SINGLETON,
        "CompanyInfo",
        "CompanyName",
        creatable=False,
        max_lengths={"CompanyName": 1024, "LegalName": 1024, "Email.Address": 100, "WebAddr.URI": 1000},
    )
)
_add(EntitySpec("Preferences", SINGLETON, "Preferences", creatable=False))

BY_PATH: dict[str, EntitySpec] = {s.path: s for s in SPECS.values()}
# Sales forms whose lines follow the Invoice line model (SubTotal line generated by the server).
SALES_FORMS = {"Invoice", "CreditMemo", "RefundReceipt", "SalesReceipt", "Estimate"}
PERSON_ENTITIES = ("Customer", "Vendor", "Employee")

ACCOUNT_CLASSIFICATION = {
    "Bank": ("Asset", "Checking"),
    "Accounts Receivable": ("Asset", "AccountsReceivable"),
    "Other Current Asset": ("Asset", "OtherCurrentAssets"),
    "Fixed Asset": ("Asset", "OtherFixedAssets"),
    "Other Asset": ("Asset", "OtherLongTermAssets"),
    "Accounts Payable": ("Liability", "AccountsPayable"),
    "Credit Card": ("Liability", "CreditCard"),
    "Other Current Liability": ("Liability", "OtherCurrentLiabilities"),
    "Long Term Liability": ("Liability", "OtherLongTermLiabilities"),
    "Equity": ("Equity", "OpeningBalanceEquity"),
    "Income": ("Revenue", "ServiceFeeIncome"),
    "Cost of Goods Sold": ("Expense", "SuppliesMaterialsCogs"),
    "Expense": ("Expense", "OtherMiscellaneousServiceCost"),
    "Other Income": ("Revenue", "OtherMiscellaneousIncome"),
    "Other Expense": ("Expense", "OtherMiscellaneousExpense"),
    "Non-Posting": ("Asset", "Estimates"),
}
SUBTYPE_TO_TYPE = {
    "Checking": "Bank",
    "Savings": "Bank",
    "MoneyMarket": "Bank",
    "CashOnHand": "Bank",
    "AccountsReceivable": "Accounts Receivable",
    "UndepositedFunds": "Other Current Asset",
    "OtherCurrentAssets": "Other Current Asset",
    "AccountsPayable": "Accounts Payable",
    "CreditCard": "Credit Card",
    "ServiceFeeIncome": "Income",
    "SalesOfProductIncome": "Income",
    "DiscountsRefundsGiven": "Income",
    "OtherPrimaryIncome": "Income",
    "BankCharges": "Expense",
    "OtherMiscellaneousServiceCost": "Expense",
    "AdvertisingPromotional": "Expense",
    "SuppliesMaterialsCogs": "Cost of Goods Sold",
    "OpeningBalanceEquity": "Equity",
    "RetainedEarnings": "Equity",
}
ITEM_TYPES = {
    "Inventory",
    "Service",
    "NonInventory",
    "Category",
    "Bundle",
    "Group",
    "Assembly",
    "Fixed Asset",
    "Other Charge",
    "Payment",
    "Subtotal",
    "Discount",
    "Tax",
    "Tax Group",
}
