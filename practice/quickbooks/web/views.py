"""Settings > Integrations > QuickBooks: connect, callback, setup, disconnect, start over.

Owner only: connect, callback, disconnect, start over. Owner or admin: the settings page and
the setup choices. Every failure on the way (denial, a forged or stale `state`, a reused code,
QBO down, bad credentials) lands back on the settings page with a message in plain words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from practice.common.permissions import manager_required, owner_required
from practice.quickbooks.connection import oauth
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.connection.errors import QBOError, ReauthRequired, Retriable
from practice.quickbooks.models import Connection, ConnectionStatus
from practice.quickbooks.web.forms import SetupForm

log = logging.getLogger("practice.quickbooks.views")

# Realm ids are numeric strings at Intuit; accept a conservative superset.
_REALM_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

View = Callable[..., HttpResponse]


def _settings_redirect() -> HttpResponseRedirect:
    return redirect("quickbooks:settings")


def _never_500(view: View) -> View:
    """Unexpected failures in the OAuth round trip become a message, not an error page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (PermissionDenied, Http404):
            raise  # answers Django renders itself (403/404), not failures
        except Exception:
            # The traceback holds no tokens: they live only in locals of oauth/client frames,
            # which logging does not print.
            firm = getattr(request, "firm", None)
            log.exception("qbo.view.failed view=%s firm=%s", view.__name__, firm.pk if firm else None)
            messages.error(request, _("Something went wrong while talking to QuickBooks. Please try again."))
            return _settings_redirect()

    return wrapped


def _connection(request: HttpRequest) -> Connection | None:
    return Connection.objects.filter(firm=request.firm).first()  # type: ignore[attr-defined]


@manager_required
@require_GET
def settings_page(request: HttpRequest) -> HttpResponse:
    connection = _connection(request)
    try:
        env = oauth.environment()
        env_name, configured = env.name, env.is_configured
    except QBOError:
        env_name, configured = "", False
    return render(
        request,
        "quickbooks/settings.html",
        {
            "connection": connection,
            "statuses": ConnectionStatus,
            "environment_name": env_name,
            "configured": configured,
            # Connected in another environment (e.g. the local sandbox, before going live).
            "environment_changed": bool(
                connection and connection.environment and env_name and connection.environment != env_name
            ),
            "can_connect": request.membership.role == "owner",  # type: ignore[attr-defined]
        },
    )


@owner_required
@require_POST
@_never_500
def connect(request: HttpRequest) -> HttpResponse:
    """Start (or restart, for Reconnect) the authorization-code flow."""
    try:
        url = oauth.authorization_url(request, firm=request.firm)  # type: ignore[attr-defined]
    except Retriable:
        messages.error(
            request, _("QuickBooks sign-in cannot be reached right now. Please try again in a few minutes.")
        )
        return _settings_redirect()
    except QBOError:
        messages.error(request, _("QuickBooks is not set up on this server yet. Ask your administrator."))
        return _settings_redirect()
    # The target comes from the environment's discovery document (configuration), never from
    # request input, so this is not an open redirect.
    return HttpResponseRedirect(url)


def _connected_elsewhere_message(company: str) -> str:
    # The other firm is not named: it is another customer of this app.
    return _(
        "%(company)s is already connected to another firm in this app, and a QuickBooks company can "
        "be connected to only one firm (both would push into the same books, and either one's "
        "Disconnect would cut off the other). The owner of the other firm must disconnect it there "
        "first. Nothing was changed."
    ) % {"company": company}


@owner_required
@require_GET
@_never_500
def callback(request: HttpRequest) -> HttpResponse:
    """Intuit redirects here with `code`, `state` and `realmId` (or `error`)."""
    firm = request.firm  # type: ignore[attr-defined]
    try:
        stored = oauth.consume_state(request, firm=firm, state=request.GET.get("state"))
    except oauth.StateMismatch as exc:
        log.warning("qbo.connect.state_mismatch firm=%s reason=%s", firm.pk, exc.code or "mismatch")
        if exc.code == "no_flow":
            # Usually the browser came back to another address of this app (localhost vs
            # 127.0.0.1) than the one it left from, so the session cookie is not there.
            text = _(
                "We could not verify that QuickBooks sign-in: it was not started from this browser "
                "session. Open the app at the address registered with QuickBooks and connect again. "
                "Nothing was changed."
            )
        else:
            text = _(
                "We could not verify that QuickBooks sign-in. Nothing was changed; please connect again."
            )
        messages.error(request, text)
        return _settings_redirect()

    error = request.GET.get("error")
    if error:
        # Only a plain error code goes to the log: the parameter is attacker-controlled text.
        log.info("qbo.connect.denied firm=%s error=%s", firm.pk, re.sub(r"[^a-z_]", "", error)[:40])
        if error == "access_denied":
            messages.warning(request, _("QuickBooks was not connected: the connection was cancelled."))
        else:
            messages.error(
                request, _("QuickBooks did not allow the connection. Nothing was changed; please try again.")
            )
        return _settings_redirect()

    code = request.GET.get("code", "")
    realm_id = request.GET.get("realmId", "")
    if not code or not _REALM_ID.match(realm_id):
        messages.error(
            request, _("QuickBooks sent an incomplete answer. Nothing was changed; please connect again.")
        )
        return _settings_redirect()

    env = oauth.environment(stored.get("environment") or None)
    try:
        token_set = oauth.exchange_code(code, env=env)
    except ReauthRequired:
        messages.error(
            request,
            _("That QuickBooks sign-in has expired or was already used. Please connect again."),
        )
        return _settings_redirect()
    except Retriable:
        messages.error(request, _("QuickBooks could not be reached. Please try again in a few minutes."))
        return _settings_redirect()
    except QBOError as exc:
        log.warning("qbo.connect.exchange_failed firm=%s code=%s", firm.pk, exc.code)
        messages.error(
            request,
            _(
                "QuickBooks refused this app's credentials. "
                "Ask your administrator to check the QuickBooks keys."
            ),
        )
        return _settings_redirect()

    # `realmId` is a plain query parameter anyone can edit; the token is what Intuit issued for
    # the company actually signed in to. Reading that company's CompanyInfo with the new token
    # proves they belong together (issue 12). Until it is proven nothing is stored, and nothing
    # is revoked: the token may well be for the company this firm is connected to now, and
    # revoking it would end that live connection's access.
    try:
        info = QBOClient(
            oauth.transient_connection(firm=firm, realm_id=realm_id, token_set=token_set, env=env)
        ).company_info()
    except ReauthRequired:
        log.warning("qbo.connect.realm_mismatch firm=%s", firm.pk)
        messages.error(
            request,
            _(
                "QuickBooks' answer did not match the company that was signed in to, so it was not "
                "accepted. Nothing was changed; please connect again."
            ),
        )
        return _settings_redirect()
    except QBOError as exc:
        log.warning(
            "qbo.connect.companyinfo_failed firm=%s realm=%s error=%s", firm.pk, realm_id, type(exc).__name__
        )
        messages.error(
            request,
            _(
                "QuickBooks could not be reached to confirm the company. Nothing was changed; please "
                "connect again in a few minutes."
            ),
        )
        return _settings_redirect()
    company_name = str(info.get("CompanyName") or info.get("LegalName") or "")

    try:
        connection, needs_confirmation = oauth.connection_connect(
            firm=firm,
            user=request.user,  # type: ignore[arg-type]
            realm_id=realm_id,
            company_name=company_name,
            token_set=token_set,
            env=env,
        )
    except oauth.CompanyConnectedElsewhere:
        messages.error(request, _connected_elsewhere_message(company_name or realm_id))
        return _settings_redirect()
    if needs_confirmation:
        return redirect("quickbooks:start_over")
    messages.success(
        request, _("Connected to %(company)s.") % {"company": connection.company_name or realm_id}
    )
    if not connection.is_set_up:
        return redirect("quickbooks:setup")
    return _settings_redirect()


@manager_required
@require_http_methods(["GET", "POST"])
@_never_500
def setup(request: HttpRequest) -> HttpResponse:
    """The setup choices; the account lists are read live from the QBO company."""
    connection = _connection(request)
    if connection is None or not connection.is_connected:
        messages.error(request, _("Connect QuickBooks first; the setup needs the company's accounts."))
        return _settings_redirect()
    try:
        accounts = list(QBOClient(connection).query_all("Account"))
    except ReauthRequired:
        messages.error(request, _("QuickBooks needs to be reconnected before the setup can be changed."))
        return _settings_redirect()
    except QBOError as exc:
        log.warning("qbo.setup.accounts_failed connection=%s error=%s", connection.pk, type(exc).__name__)
        messages.error(
            request, _("We could not read the accounts from QuickBooks. Please try again in a minute.")
        )
        return _settings_redirect()
    form = SetupForm(
        request.POST or None,
        connection=connection,
        accounts=accounts,
        actor=str(getattr(request.user, "email", "") or ""),
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        log.info("qbo.setup.saved connection=%s by=%s", connection.pk, request.user.pk)
        if not connection.is_set_up:
            return redirect("quickbooks:setup_confirm")
        messages.success(request, _("QuickBooks settings saved."))
        return _settings_redirect()
    return render(request, "quickbooks/setup.html", {"connection": connection, "form": form})


@manager_required
@require_http_methods(["GET", "POST"])
@_never_500
def setup_confirm(request: HttpRequest) -> HttpResponse:
    """Before the first push: the saved choices and a preview of what the first sync will do
    (read live, nothing written). Syncing starts only when the owner confirms (product.md §2)."""
    is_owner = request.membership.role == "owner"  # type: ignore[attr-defined]
    if request.method == "POST" and not is_owner:
        raise PermissionDenied
    connection = _connection(request)
    if connection is None or not connection.is_connected:
        messages.error(request, _("Connect QuickBooks first."))
        return _settings_redirect()
    if connection.is_set_up:
        return _settings_redirect()
    if not connection.income_account_id:
        return redirect("quickbooks:setup")
    if request.method == "POST":
        # A real save (not .update()), so listeners of Connection's post_save start the sync.
        connection.setup_completed_at = timezone.now()
        connection.save(update_fields=["setup_completed_at", "updated_at"])
        log.info("qbo.setup.confirmed connection=%s by=%s", connection.pk, request.user.pk)
        messages.success(request, _("QuickBooks syncing has started."))
        return _settings_redirect()
    return render(
        request,
        "quickbooks/setup_confirm.html",
        {"connection": connection, "can_confirm": is_owner},
    )


@manager_required
@require_POST
@_never_500
def check(request: HttpRequest) -> HttpResponse:
    """Ask QBO whether the connection still works (e.g. after a disconnect made in QuickBooks,
    which Intuit does not push to apps); refreshes the company name on the way."""
    connection = _connection(request)
    if connection is None or not connection.is_connected:
        messages.info(request, _("QuickBooks is not connected."))
        return _settings_redirect()
    try:
        info = QBOClient(connection).company_info()
    except ReauthRequired:
        messages.error(
            request, _("QuickBooks no longer accepts this connection. The owner needs to reconnect.")
        )
        return _settings_redirect()
    except QBOError as exc:
        log.warning("qbo.check.failed connection=%s error=%s", connection.pk, type(exc).__name__)
        messages.warning(request, _("QuickBooks could not be reached. Please try again in a few minutes."))
        return _settings_redirect()
    name = str(info.get("CompanyName") or "")[:255]
    if name and name != connection.company_name:
        connection.company_name = name
        connection.save(update_fields=["company_name", "updated_at"])
    messages.success(
        request, _("The connection to %(company)s works.") % {"company": name or connection.realm_id}
    )
    return _settings_redirect()


@owner_required
@require_POST
@_never_500
def disconnect(request: HttpRequest) -> HttpResponse:
    connection = _connection(request)
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        messages.info(request, _("QuickBooks is not connected."))
        return _settings_redirect()
    revoked = oauth.connection_disconnect(connection=connection)
    if revoked:
        messages.success(
            request, _("QuickBooks is disconnected. Links and history are kept; reconnect any time.")
        )
    else:
        messages.warning(
            request,
            _(
                "QuickBooks is disconnected here, but QuickBooks could not be told. "
                "You can also remove the app in QuickBooks under Apps."
            ),
        )
    return _settings_redirect()


@owner_required
@require_http_methods(["GET", "POST"])
@_never_500
def start_over(request: HttpRequest) -> HttpResponse:
    """Another company was chosen while links to the current one exist: confirm or cancel."""
    connection = _connection(request)
    if connection is None or not connection.has_pending_company:
        return _settings_redirect()
    if request.method == "POST":
        if request.POST.get("action") == "confirm":
            try:
                oauth.connection_start_over(connection=connection, user=request.user)  # type: ignore[arg-type]
            except oauth.CompanyConnectedElsewhere:
                company = connection.pending_company_name or connection.pending_realm_id
                oauth.connection_start_over_cancel(connection=connection)
                messages.error(request, _connected_elsewhere_message(company))
                return _settings_redirect()
            messages.success(
                request,
                _("Connected to %(company)s. Links to the previous company were cleared.")
                % {"company": connection.company_name or connection.realm_id},
            )
            return redirect("quickbooks:setup")
        oauth.connection_start_over_cancel(connection=connection)
        messages.info(
            request, _("Kept the connection to %(company)s.") % {"company": connection.company_name}
        )
        return _settings_redirect()
    links = connection.sync_links.count() if hasattr(connection, "sync_links") else 0
    return render(request, "quickbooks/settings_start_over.html", {"connection": connection, "links": links})
