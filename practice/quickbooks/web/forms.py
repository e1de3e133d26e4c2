"""The QuickBooks setup form: sync choices plus accounts read live from the QBO company."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from practice.quickbooks.models import AccountScope, Connection, UnmatchedCustomer

# Which QBO account types each choice may use (qbo-api.md §2.4).
INCOME_TYPES = {"Income", "Other Income"}
DEPOSIT_TYPES = {"Other Current Asset", "Bank"}
FEE_TYPES = {"Expense", "Other Expense", "Cost of Goods Sold"}


def _label(account: dict[str, Any]) -> str:
    return str(account.get("FullyQualifiedName") or account.get("Name") or account.get("Id"))


def _of_types(accounts: list[dict[str, Any]], types: set[str]) -> list[dict[str, Any]]:
    chosen = [a for a in accounts if a.get("AccountType") in types and a.get("Active", True) is not False]
    return sorted(chosen, key=lambda a: _label(a).lower())


def _by_name(accounts: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    wanted = name.strip().lower()
    return next((a for a in accounts if str(a.get("Name", "")).strip().lower() == wanted), None)


def default_income(accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """ "Services" if the company has it, else its first Income account (product.md §2)."""
    income = _of_types(accounts, INCOME_TYPES)
    return _by_name(income, "Services") or next((a for a in income if a.get("AccountType") == "Income"), None)


def default_deposit(accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Undeposited Funds (sub-type UndepositedFunds), where QBO itself puts received payments."""
    deposit = _of_types(accounts, DEPOSIT_TYPES)
    return next((a for a in deposit if a.get("AccountSubType") == "UndepositedFunds"), None) or _by_name(
        deposit, "Undeposited Funds"
    )


def default_fee(accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    fees = _of_types(accounts, FEE_TYPES)
    return next((a for a in fees if "fee" in str(a.get("Name", "")).lower()), None) or (
        fees[0] if fees else None
    )


class SetupForm(forms.Form):
    account_scope = forms.ChoiceField(
        label=_("Which accounts sync"), choices=AccountScope.choices, widget=forms.RadioSelect
    )
    sync_start_date = forms.DateField(
        label=_("Sync start date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Invoices and payments dated earlier are not pushed automatically."),
    )
    unmatched_customer = forms.ChoiceField(
        label=_("When no QuickBooks customer has the account's name"),
        choices=UnmatchedCustomer.choices,
        widget=forms.RadioSelect,
    )
    income_account = forms.ChoiceField(label=_("Income account for services"))
    deposit_account = forms.ChoiceField(label=_("Deposit payments to"))
    fees_enabled = forms.BooleanField(label=_("Record payment processing fees as expenses"), required=False)
    fee_account = forms.ChoiceField(label=_("Expense account for processing fees"), required=False)
    sync_manual_payments = forms.BooleanField(
        label=_("Sync manually created payments by default"),
        required=False,
        help_text=_("Each payment can override this."),
    )

    def __init__(
        self,
        *args: Any,
        connection: Connection,
        accounts: list[dict[str, Any]],
        actor: str = "",
        **kwargs: Any,
    ) -> None:
        self.connection = connection
        self.actor = actor
        self.accounts = {str(a.get("Id")): a for a in accounts if a.get("Id") is not None}
        income = _of_types(accounts, INCOME_TYPES)
        deposit = _of_types(accounts, DEPOSIT_TYPES)
        fees = _of_types(accounts, FEE_TYPES)

        def pick(current_id: str, fallback: dict[str, Any] | None, pool: list[dict[str, Any]]) -> str:
            ids = {str(a["Id"]) for a in pool}
            if current_id in ids:
                return current_id
            return str(fallback["Id"]) if fallback else ""

        kwargs.setdefault(
            "initial",
            {
                "account_scope": connection.account_scope,
                "sync_start_date": connection.sync_start_date,
                "unmatched_customer": connection.unmatched_customer,
                "income_account": pick(connection.income_account_id, default_income(accounts), income),
                "deposit_account": pick(connection.deposit_account_id, default_deposit(accounts), deposit),
                "fees_enabled": connection.fees_enabled,
                "fee_account": pick(connection.fee_account_id, default_fee(accounts), fees),
                "sync_manual_payments": connection.sync_manual_payments,
            },
        )
        super().__init__(*args, **kwargs)
        choices: dict[str, list[tuple[str, str]]] = {
            "income_account": [(str(a["Id"]), _label(a)) for a in income],
            "deposit_account": [(str(a["Id"]), _label(a)) for a in deposit],
            "fee_account": [("", "—")] + [(str(a["Id"]), _label(a)) for a in fees],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("fees_enabled") and not data.get("fee_account"):
            self.add_error("fee_account", _("Choose the expense account for processing fees."))
        return data

    def save(self) -> Connection:
        data = self.cleaned_data
        c = self.connection
        was_asking = c.unmatched_customer == "ask"
        c.account_scope = data["account_scope"]
        c.sync_start_date = data.get("sync_start_date")
        c.unmatched_customer = data["unmatched_customer"]
        for field in ("income_account", "deposit_account", "fee_account"):
            account_id = data.get(field) or ""
            setattr(c, f"{field}_id", account_id)
            setattr(c, f"{field}_name", _label(self.accounts[account_id])[:255] if account_id else "")
        c.fees_enabled = bool(data.get("fees_enabled"))
        c.sync_manual_payments = bool(data.get("sync_manual_payments"))
        # The first save only records the choices: syncing starts when the owner confirms the
        # preview (`setup_confirm`), since nothing may reach QBO before that (product.md §2).
        # Only the setup columns: a token refresh may be writing the same row right now.
        c.save(
            update_fields=[
                "account_scope",
                "sync_start_date",
                "unmatched_customer",
                "income_account_id",
                "income_account_name",
                "deposit_account_id",
                "deposit_account_name",
                "fee_account_id",
                "fee_account_name",
                "fees_enabled",
                "sync_manual_payments",
                "updated_at",
            ]
        )
        if was_asking and c.unmatched_customer != "ask" and c.is_set_up:
            # Accounts in Error because no customer had their name are now created.
            from practice.quickbooks.actions import accounts_replan_no_match

            accounts_replan_no_match(connection=c, actor=self.actor)
        return c
