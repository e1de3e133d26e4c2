"""Clients > Accounts: the list and the account page (Info tab). Thin: parse, call, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms.models import model_to_dict
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from practice.clients.forms import AccountForm
from practice.clients.selectors import account_get
from practice.clients.selectors import account_list as select_accounts
from practice.clients.services import EDITABLE_FIELDS
from practice.clients.services import account_archive as archive
from practice.clients.services import account_create as create
from practice.clients.services import account_unarchive as unarchive
from practice.clients.services import account_update as update
from practice.common import hooks
from practice.common.permissions import manager_required, member_required

PAGE_SIZE = 25
PAGE_SIZES = (25, 50, 100)  # ?per_page= on the accounts list (anything else: PAGE_SIZE)


@member_required
@require_http_methods(["GET", "HEAD"])
def account_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")[:200]
    show_archived = request.GET.get("archived") == "1"
    accounts = select_accounts(firm=request.firm, search=search, include_archived=show_archived)  # type: ignore[attr-defined]
    accounts = hooks.apply_queryset("clients.account_list", request, accounts)
    wanted = request.GET.get("per_page", "")
    per_page = int(wanted) if wanted in {str(n) for n in PAGE_SIZES} else PAGE_SIZE
    page_obj = Paginator(accounts, per_page).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "page_obj": page_obj,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "accounts": page_obj.object_list,
        "search": search,
        "show_archived": show_archived,
    }
    context = hooks.apply_context("clients.account_list", request, context)
    # htmx search and paging swap only the table, so the search box keeps focus. A history
    # restore (Back after htmx pushed the URL, with htmx's cache empty) needs the whole page.
    htmx = getattr(request, "htmx", None)
    partial = (
        htmx is not None
        and bool(htmx)
        and htmx.target == "account-table"
        and not htmx.history_restore_request
    )
    template = "clients/partials/account_table.html" if partial else "clients/account_list.html"
    return render(request, template, context)


@member_required
@require_http_methods(["GET", "HEAD"])
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = account_get(firm=request.firm, pk=pk)  # type: ignore[attr-defined]
    context = hooks.apply_context("clients.account_detail", request, {"account": account, "tab": "info"})
    return render(request, "clients/account_detail.html", context)


def _form_errors_from(form: AccountForm, error: ValidationError) -> None:
    # Service errors are keyed by field; show them next to the field they name.
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_create(request: HttpRequest) -> HttpResponse:
    form = AccountForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                account = create(firm=request.firm, **form.cleaned_data)  # type: ignore[attr-defined]
            except ValidationError as e:
                _form_errors_from(form, e)
            else:
                messages.success(request, _("Account created."))
                return redirect("clients:account_detail", pk=account.pk)
        return render(request, "clients/account_form.html", {"form": form}, status=400)
    return render(request, "clients/account_form.html", {"form": form})


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    account = account_get(firm=request.firm, pk=pk)  # type: ignore[attr-defined]
    # `initial`, not `instance`: a ModelForm writes input onto its instance while validating,
    # and the page must keep showing the saved account when the input is rejected.
    form = AccountForm(request.POST or None, initial=model_to_dict(account, fields=EDITABLE_FIELDS))
    if request.method == "POST":
        if form.is_valid():
            try:
                update(account=account, **form.cleaned_data)
            except ValidationError as e:
                _form_errors_from(form, e)
            else:
                messages.success(request, _("Account saved."))
                return redirect("clients:account_detail", pk=account.pk)
        return render(request, "clients/account_form.html", {"form": form, "account": account}, status=400)
    return render(request, "clients/account_form.html", {"form": form, "account": account})


@manager_required
@require_POST
def account_archive(request: HttpRequest, pk: int) -> HttpResponse:
    account = archive(account=account_get(firm=request.firm, pk=pk))  # type: ignore[attr-defined]
    messages.success(request, _("“%(name)s” was archived.") % {"name": account.name})
    return redirect("clients:account_detail", pk=account.pk)


@manager_required
@require_POST
def account_unarchive(request: HttpRequest, pk: int) -> HttpResponse:
    account = unarchive(account=account_get(firm=request.firm, pk=pk))  # type: ignore[attr-defined]
    messages.success(request, _("“%(name)s” was restored.") % {"name": account.name})
    return redirect("clients:account_detail", pk=account.pk)
