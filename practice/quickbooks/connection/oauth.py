"""OAuth 2.0 with Intuit (or the local sandbox): environments, authorize URL + state, code
exchange, the single-flight token refresh, revoke, and the connection's lifecycle.

Endpoints always come from the chosen environment's discovery document (qbo-api.md §8.1), so
moving from the bundled sandbox to Intuit's sandbox or production is configuration only.
The protocol pieces (authorize URI, token request body) are Authlib's; the HTTP goes through
the one pooled httpx client of `practice.quickbooks.connection.http`.

Token handling rules (qbo-api.md §8.4, BLOG-TOK): refresh only when needed (shortly before
expiry, or once after a 401); one refresher per connection across threads *and processes*;
persist the rotated refresh token before the new access token is used; `invalid_grant` means
the owner has to reconnect, never a retry loop. Tokens are never logged, never put in URLs
and never sent to the browser.

Do not call these functions inside `transaction.atomic()`: the refresh relies on its UPDATEs
committing at once so other processes see the new tokens.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from practice.quickbooks.connection import tokens
from practice.quickbooks.connection.errors import CompanyUnavailable, QBOError, ReauthRequired, Retriable
from practice.quickbooks.connection.http import http_timeout, shared_http
from practice.quickbooks.models import Connection, ConnectionStatus, SyncLink

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

    from practice.firms.models import Firm

log = logging.getLogger("practice.quickbooks.oauth")

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
SESSION_KEY = "qbo_oauth"
# An authorize round trip longer than this is abandoned (the state is refused).
STATE_MAX_AGE_SECONDS = 15 * 60
# Refresh when less than this is left of the access token (BLOG-TOK suggests ~5 min).
DEFAULT_REFRESH_MARGIN_SECONDS = 300
# How long a refresher may hold the cross-process claim (longer than the HTTP timeout).
REFRESH_CLAIM_SECONDS = 30

# Development credentials for the bundled sandbox; `local_sandbox.prepare()` registers them.
LOCAL_CLIENT_ID = "practice-local-dev"
LOCAL_CLIENT_SECRET = "practice-local-dev-secret-not-for-production"

# Intuit's published addresses (qbo-api.md §1.1, §8.1). Sandbox and production share OAuth.
_INTUIT = {
    "production": (
        "https://quickbooks.api.intuit.com",
        "https://developer.api.intuit.com/.well-known/openid_configuration",
    ),
    "sandbox": (
        "https://sandbox-quickbooks.api.intuit.com",
        "https://developer.api.intuit.com/.well-known/openid_sandbox_configuration",
    ),
}
ENVIRONMENTS = ("sandbox-local", "sandbox", "production")


# --------------------------------------------------------------------------------------------
# Environments


@dataclass(frozen=True)
class Environment:
    """Where QBO lives for this deployment and the app's credentials there."""

    name: str
    api_base: str
    discovery_url: str
    client_id: str
    client_secret: str
    redirect_uri: str

    @property
    def is_configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.redirect_uri)


def environment(name: str | None = None) -> Environment:
    """The environment from settings (QBO_ENVIRONMENT unless `name` is given)."""
    name = name or getattr(settings, "QBO_ENVIRONMENT", "sandbox-local") or "sandbox-local"
    client_id = getattr(settings, "QBO_CLIENT_ID", "") or ""
    client_secret = getattr(settings, "QBO_CLIENT_SECRET", "") or ""
    if name == "sandbox-local":
        base = str(getattr(settings, "QBO_SANDBOX_URL", "http://127.0.0.1:8765")).rstrip("/")
        api_base, discovery = base, f"{base}/.well-known/openid_sandbox_configuration"
        # The bundled sandbox works out of the box; an env that sets its own keys wins.
        client_id = client_id or LOCAL_CLIENT_ID
        client_secret = client_secret or LOCAL_CLIENT_SECRET
    elif name in _INTUIT:
        api_base, discovery = _INTUIT[name]
    else:
        raise QBOError(f"Unknown QBO_ENVIRONMENT {name!r}; use one of {', '.join(ENVIRONMENTS)}")
    api_base = getattr(settings, "QBO_API_BASE_URL", "") or api_base
    discovery = getattr(settings, "QBO_DISCOVERY_URL", "") or discovery
    return Environment(
        name=name,
        api_base=api_base.rstrip("/"),
        discovery_url=discovery,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=getattr(settings, "QBO_REDIRECT_URI", ""),
    )


def _http() -> httpx.Client:
    return shared_http()


def _timeout() -> httpx.Timeout:
    return http_timeout()


_discovery_lock = threading.Lock()
_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}
DISCOVERY_TTL_SECONDS = 3600.0


def discovery(env: Environment | None = None) -> dict[str, Any]:
    """The environment's OpenID discovery document (cached for an hour per process)."""
    env = env or environment()
    now = time.monotonic()
    with _discovery_lock:
        hit = _discovery_cache.get(env.discovery_url)
        if hit and now - hit[0] < DISCOVERY_TTL_SECONDS:
            return hit[1]
    try:
        resp = _http().get(env.discovery_url, headers={"Accept": "application/json"}, timeout=_timeout())
    except httpx.HTTPError as exc:
        raise Retriable(f"Could not reach the QuickBooks sign-in service ({type(exc).__name__})") from exc
    if resp.status_code != 200:
        raise Retriable(
            f"The QuickBooks sign-in service answered HTTP {resp.status_code}", status=resp.status_code
        )
    try:
        doc = resp.json()
    except ValueError as exc:
        raise Retriable("The QuickBooks sign-in service sent an unreadable discovery document") from exc
    for key in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(doc.get(key), str):
            raise QBOError(f"The discovery document has no {key}")
    with _discovery_lock:
        _discovery_cache[env.discovery_url] = (now, doc)
    return dict(doc)


# --------------------------------------------------------------------------------------------
# Authorization request and callback


def authorization_url(request: HttpRequest, *, firm: Firm) -> str:
    """Intuit's authorize URL with a fresh `state` bound to this session, user and firm."""
    env = environment()
    if not env.is_configured:
        raise QBOError("QuickBooks is not configured on this server (QBO_CLIENT_ID / QBO_CLIENT_SECRET).")
    doc = discovery(env)
    state = secrets.token_urlsafe(32)
    request.session[SESSION_KEY] = {
        "state": state,
        "firm_id": firm.pk,
        "user_id": request.user.pk,
        "issued_at": time.time(),
        "environment": env.name,
    }
    url: str = prepare_grant_uri(
        doc["authorization_endpoint"],
        client_id=env.client_id,
        response_type="code",
        redirect_uri=env.redirect_uri,
        scope=ACCOUNTING_SCOPE,
        state=state,
    )
    return url


class StateMismatch(QBOError):
    """The callback's `state` is missing, stale, or not the one this session started."""


def consume_state(request: HttpRequest, *, firm: Firm, state: str | None) -> dict[str, Any]:
    """Check the callback's `state` against the session (single use) and return what was stored."""
    stored = request.session.pop(SESSION_KEY, None)
    if not stored or not state:
        raise StateMismatch("No QuickBooks sign-in is in progress for this session.", code="no_flow")
    if not secrets.compare_digest(str(stored.get("state", "")), str(state)):
        raise StateMismatch("The QuickBooks sign-in answer does not belong to this session.")
    if stored.get("firm_id") != firm.pk or stored.get("user_id") != request.user.pk:
        raise StateMismatch("The QuickBooks sign-in was started for another firm or user.")
    if time.time() - float(stored.get("issued_at", 0)) > STATE_MAX_AGE_SECONDS:
        raise StateMismatch("The QuickBooks sign-in took too long.")
    return dict(stored)


# --------------------------------------------------------------------------------------------
# Token endpoint


@dataclass(frozen=True)
class TokenSet:
    """A token endpoint answer. `__repr__` hides the secrets."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None

    def __repr__(self) -> str:
        return f"<TokenSet access_expires_at={self.access_expires_at.isoformat()}>"

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> TokenSet:
        now = timezone.now()
        access = data.get("access_token")
        refresh = data.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
            raise Retriable("The QuickBooks token answer had no tokens")
        expires_in = float(data.get("expires_in") or 3600)
        refresh_in = data.get("x_refresh_token_expires_in")
        return cls(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=now + timedelta(seconds=float(refresh_in)) if refresh_in else None,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "access_expires_at": self.access_expires_at.isoformat(),
                "refresh_expires_at": self.refresh_expires_at.isoformat()
                if self.refresh_expires_at
                else None,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> TokenSet:
        d = json.loads(raw)
        return cls(
            access_token=d["access_token"],
            refresh_token=d["refresh_token"],
            access_expires_at=datetime.fromisoformat(d["access_expires_at"]),
            refresh_expires_at=datetime.fromisoformat(d["refresh_expires_at"])
            if d["refresh_expires_at"]
            else None,
        )


def _token_request(env: Environment, body: str) -> TokenSet:
    doc = discovery(env)
    try:
        resp = _http().post(
            doc["token_endpoint"],
            content=body.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            auth=httpx.BasicAuth(env.client_id, env.client_secret),
            timeout=_timeout(),
        )
    except httpx.HTTPError as exc:
        raise Retriable(f"Could not reach the QuickBooks token service ({type(exc).__name__})") from exc
    tid = resp.headers.get("intuit_tid")
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if resp.status_code == 200 and isinstance(data, dict):
        return TokenSet.from_response(data)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    if resp.status_code >= 500 or resp.status_code == 429:
        raise Retriable(
            f"The QuickBooks token service answered HTTP {resp.status_code}", status=resp.status_code
        )
    if error == "invalid_client":
        # The app's client id/secret were refused (RFC 6749 §5.2; qbo-api.md §8.4 lists it): a
        # server configuration problem, not the owner's sign-in.
        raise CompanyUnavailable(
            "QuickBooks refused this app's keys (invalid_client)",
            reason="app_keys",
            code=error,
            status=resp.status_code,
            intuit_tid=tid,
        )
    if error == "invalid_grant":
        raise ReauthRequired(
            "QuickBooks no longer accepts this sign-in (invalid_grant)", code=error, intuit_tid=tid
        )
    raise QBOError(
        f"The QuickBooks token service refused the request ({error or resp.status_code})",
        code=error,
        status=resp.status_code,
        intuit_tid=tid,
    )


def exchange_code(code: str, *, env: Environment | None = None) -> TokenSet:
    """Trade the callback's authorization code for tokens (single use; reuse → invalid_grant)."""
    env = env or environment()
    body = prepare_token_request("authorization_code", code=code, redirect_uri=env.redirect_uri)
    return _token_request(env, body)


def revoke(token: str, *, env: Environment | None = None) -> None:
    """Revoke a refresh (or access) token at Intuit, which disconnects the app (§8.5)."""
    env = env or environment()
    doc = discovery(env)
    endpoint = doc.get("revocation_endpoint")
    if not endpoint:
        raise QBOError("The discovery document has no revocation_endpoint")
    try:
        resp = _http().post(
            endpoint,
            json={"token": token},
            headers={"Accept": "application/json"},
            auth=httpx.BasicAuth(env.client_id, env.client_secret),
            timeout=_timeout(),
        )
    except httpx.HTTPError as exc:
        raise Retriable(f"Could not reach the QuickBooks revoke service ({type(exc).__name__})") from exc
    if resp.status_code >= 500:
        raise Retriable(
            f"The QuickBooks revoke service answered HTTP {resp.status_code}", status=resp.status_code
        )
    # 400 for an unknown/already revoked token is fine: the token is dead either way.


# --------------------------------------------------------------------------------------------
# Access tokens and the single-flight refresh


def _claimant() -> str:
    return (
        f"{socket.gethostname()[:30]}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:8]}"
    )


_TOKEN_FIELDS = (
    "status",
    "access_token_enc",
    "access_token_expires_at",
    "refresh_token_enc",
    "refresh_token_expires_at",
    "token_version",
    "last_error",
    "last_error_at",
    "refresh_lock_owner",
    "refresh_lock_until",
)


def _adopt(target: Connection, source: Connection) -> None:
    """Copy the token state of a freshly read row onto the caller's instance."""
    for name in _TOKEN_FIELDS:
        setattr(target, name, getattr(source, name))


_T = TypeVar("_T")


def _db(op: Callable[[], _T], *, patience: float = 30.0) -> _T:
    """Run one autocommit statement, retrying while SQLite reports a lock.

    SQLite answers "database/table is locked" when another connection writes at that instant
    and its busy timeout is exhausted (or never applies, as with shared-cache in-memory test
    databases). Losing the write of a rotated refresh token would lose the connection, so
    the refresh's statements wait it out. PostgreSQL waits on row locks itself.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return op()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + secrets.randbelow(40) / 1000)


def refresh_margin_seconds() -> float:
    return float(getattr(settings, "QBO_REFRESH_MARGIN_SECONDS", DEFAULT_REFRESH_MARGIN_SECONDS))


def access_token(connection: Connection) -> str:
    """A usable access token, refreshing first when it is about to expire."""
    if connection.status != ConnectionStatus.CONNECTED:
        raise ReauthRequired("The QuickBooks connection needs to be reconnected")
    if connection.access_token_expires_within(refresh_margin_seconds()):
        if connection.pk is None:
            raise ReauthRequired("The QuickBooks sign-in has expired")
        refresh(connection)
    return tokens.decrypt(connection.access_token_enc)


def _claim(rows: QuerySet[Connection], *, seen: int, owner: str) -> int:
    """Take the refresh claim if nobody refreshed since `seen` and no live claim exists."""
    now = timezone.now()
    return (
        rows.filter(token_version=seen, status=ConnectionStatus.CONNECTED)
        .filter(Q(refresh_lock_until__isnull=True) | Q(refresh_lock_until__lt=now))
        .update(refresh_lock_owner=owner, refresh_lock_until=now + timedelta(seconds=REFRESH_CLAIM_SECONDS))
    )


def refresh(
    connection: Connection, *, seen_version: int | None = None, on_wait: Callable[[], None] | None = None
) -> None:
    """Refresh the tokens once per connection, whoever else is trying at the same moment.

    `seen_version` is the token_version the caller's access token came from (defaults to the
    instance's). If the row already moved past it, another thread or process refreshed and we
    simply adopt its tokens. Otherwise we claim the row with a conditional UPDATE (works the
    same on SQLite and PostgreSQL and holds no lock during the HTTP call), re-read it, refresh
    with the newest refresh token and write the rotated pair with `token_version + 1` before
    anything uses the new access token. Losers wait for the winner's write and adopt it,
    calling `on_wait` now and then (the sync engine keeps its realm lease there).

    A token service that refuses the app's own keys (`invalid_client`: a wrong or rotated client
    secret) raises `CompanyUnavailable` and leaves the connection as it is: the owner's sign-in
    is fine, so reconnecting would not help; the engine pauses and tries again later.
    """
    if connection.pk is None:
        raise ReauthRequired("The QuickBooks sign-in has expired")
    seen = connection.token_version if seen_version is None else seen_version
    me = _claimant()
    claim_wait = REFRESH_CLAIM_SECONDS + 5.0
    deadline = time.monotonic() + claim_wait
    rows = Connection.objects.filter(pk=connection.pk)
    while True:
        claimed = _db(lambda: _claim(rows, seen=seen, owner=me))
        current = _db(rows.get)
        if claimed:
            break
        if current.token_version != seen or current.status != ConnectionStatus.CONNECTED:
            _adopt(connection, current)
            if current.status != ConnectionStatus.CONNECTED:
                raise ReauthRequired("The QuickBooks connection needs to be reconnected")
            log.info(
                "qbo.token.refresh.adopted connection=%s version=%s", connection.pk, current.token_version
            )
            return
        if time.monotonic() > deadline:
            raise Retriable("Another process is refreshing the QuickBooks sign-in; try again shortly")
        time.sleep(0.05 + secrets.randbelow(50) / 1000)
        if on_wait is not None:
            on_wait()

    env = environment(current.environment or None)
    try:
        token_set = _token_request(
            env,
            prepare_token_request("refresh_token", refresh_token=tokens.decrypt(current.refresh_token_enc)),
        )
    except ReauthRequired as exc:
        message = str(exc.message)
        _db(
            lambda: rows.filter(token_version=seen).update(
                status=ConnectionStatus.NEEDS_RECONNECT,
                last_error=message,
                last_error_at=timezone.now(),
                refresh_lock_owner="",
                refresh_lock_until=None,
            )
        )
        _adopt(connection, _db(rows.get))
        log.warning("qbo.token.refresh.invalid_grant connection=%s realm=%s", connection.pk, current.realm_id)
        raise
    except BaseException:
        _db(lambda: rows.filter(refresh_lock_owner=me).update(refresh_lock_owner="", refresh_lock_until=None))
        raise

    new_values = {
        "access_token_enc": tokens.encrypt(token_set.access_token),
        "access_token_expires_at": token_set.access_expires_at,
        "refresh_token_enc": tokens.encrypt(token_set.refresh_token),
        "refresh_token_expires_at": token_set.refresh_expires_at,
        "token_version": F("token_version") + 1,
        "refresh_lock_owner": "",
        "refresh_lock_until": None,
        "last_error": "",
        "last_error_at": None,
    }
    written = _db(
        lambda: rows.filter(token_version=seen, refresh_lock_owner=me).update(**new_values), patience=60
    )
    if not written:
        # Our claim lapsed and someone else refreshed meanwhile; their pair is the one stored.
        # Ours stays valid at Intuit too (old refresh tokens live 24 h, §8.4), so nothing breaks.
        log.warning("qbo.token.refresh.claim_lapsed connection=%s", connection.pk)
    _adopt(connection, _db(rows.get))
    if connection.status != ConnectionStatus.CONNECTED:
        # Disconnected while we were refreshing: the disconnect wins.
        raise ReauthRequired("The QuickBooks connection was disconnected")
    log.info(
        "qbo.token.refreshed connection=%s realm=%s version=%s",
        connection.pk,
        current.realm_id,
        connection.token_version,
    )


def mark_needs_reconnect(connection: Connection, *, reason: str, seen_version: int | None = None) -> None:
    """Flag the connection as unusable until the owner reconnects (pushes pause, nothing lost).

    With `seen_version`, only when no newer tokens were stored meanwhile (a reconnect or a
    refresh by another process must not be undone by a late 401).
    """
    if connection.pk is None:
        return
    rows = Connection.objects.filter(pk=connection.pk, status=ConnectionStatus.CONNECTED)
    if seen_version is not None:
        rows = rows.filter(token_version=seen_version)
    changed = _db(
        lambda: rows.update(
            status=ConnectionStatus.NEEDS_RECONNECT, last_error=reason[:2000], last_error_at=timezone.now()
        )
    )
    if changed:
        log.warning(
            "qbo.connection.needs_reconnect connection=%s realm=%s", connection.pk, connection.realm_id
        )
    _adopt(connection, _db(Connection.objects.filter(pk=connection.pk).get))


# --------------------------------------------------------------------------------------------
# Connection lifecycle


def connection_for_firm(firm: Firm) -> Connection | None:
    return Connection.objects.filter(firm=firm).first()


def _links_exist(connection: Connection) -> bool:
    return bool(SyncLink.objects.filter(connection=connection).exists())


def _links_clear(connection: Connection) -> None:
    """Forget every link to the old company: its ids mean nothing in the new one."""
    SyncLink.objects.filter(connection=connection).delete()


def transient_connection(*, firm: Firm, realm_id: str, token_set: TokenSet, env: Environment) -> Connection:
    """An unsaved Connection carrying fresh tokens, to read CompanyInfo before storing anything."""
    return Connection(
        firm=firm,
        realm_id=realm_id,
        environment=env.name,
        status=ConnectionStatus.CONNECTED,
        access_token_enc=tokens.encrypt(token_set.access_token),
        access_token_expires_at=token_set.access_expires_at,
    )


def _store_tokens(connection: Connection, token_set: TokenSet) -> None:
    connection.access_token_enc = tokens.encrypt(token_set.access_token)
    connection.access_token_expires_at = token_set.access_expires_at
    connection.refresh_token_enc = tokens.encrypt(token_set.refresh_token)
    connection.refresh_token_expires_at = token_set.refresh_expires_at
    connection.token_version = (connection.token_version or 0) + 1
    connection.refresh_lock_owner = ""
    connection.refresh_lock_until = None
    connection._write_credentials = True  # see Connection.save


def _clear_pause(connection: Connection) -> None:
    """Another company: whatever paused the old one says nothing about it."""
    Connection.objects.filter(pk=connection.pk).update(
        paused_code="", paused_message="", paused_at=None, pause_retry_at=None, pause_attempts=0
    )
    connection.paused_code = ""
    connection.pause_retry_at = None


def _reset_setup(connection: Connection) -> None:
    """A different company has different accounts: the account choices must be made again."""
    connection.setup_completed_at = None
    for name in ("income_account", "deposit_account", "fee_account"):
        setattr(connection, f"{name}_id", "")
        setattr(connection, f"{name}_name", "")


class CompanyConnectedElsewhere(QBOError):
    """The QuickBooks company is connected to another firm of this app (one company, one firm)."""


_LIVE = (ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECT)


def _refuse_if_connected_elsewhere(*, firm: Firm, realm_id: str, env: Environment) -> None:
    # A disconnected connection of another firm keeps its realm_id (links and history stay),
    # but pushes nothing and holds no tokens, so it does not hold the company.
    if (
        Connection.objects.filter(realm_id=realm_id, environment=env.name, status__in=_LIVE)
        .exclude(firm=firm)
        .exists()
    ):
        log.warning("qbo.connect.company_connected_elsewhere firm=%s realm=%s", firm.pk, realm_id)
        raise CompanyConnectedElsewhere("company connected to another firm")


def connection_connect(
    *,
    firm: Firm,
    user: AbstractBaseUser,
    realm_id: str,
    company_name: str,
    token_set: TokenSet,
    env: Environment,
) -> tuple[Connection, bool]:
    """Store a completed sign-in. Returns (connection, needs_start_over_confirmation).

    Same company (or first connect): tokens stored, links and setup kept (reconnect resumes).
    Another company while links to the old one exist: parked as pending until the owner
    confirms "start over" (product.md §2); nothing about the old company changes yet.
    A company another firm has connected: CompanyConnectedElsewhere, nothing stored. The new
    tokens are not revoked: Intuit's revoke ends the app's access to the whole company, the
    other firm's connection included.
    """
    _refuse_if_connected_elsewhere(firm=firm, realm_id=realm_id, env=env)
    try:
        return _connect(
            firm=firm, user=user, realm_id=realm_id, company_name=company_name, token_set=token_set, env=env
        )
    except IntegrityError as exc:
        # The unique constraint: another firm connected the company between check and save.
        raise CompanyConnectedElsewhere("company connected to another firm") from exc


def _connect(
    *,
    firm: Firm,
    user: AbstractBaseUser,
    realm_id: str,
    company_name: str,
    token_set: TokenSet,
    env: Environment,
) -> tuple[Connection, bool]:
    with transaction.atomic():
        connection, _ = Connection.objects.select_for_update().get_or_create(firm=firm)
        different = bool(connection.realm_id) and connection.realm_id != realm_id
        if different and _links_exist(connection):
            connection.pending_realm_id = realm_id
            connection.pending_company_name = company_name[:255]
            connection.pending_tokens_enc = tokens.encrypt(token_set.to_json())
            connection.save(update_fields=["pending_realm_id", "pending_company_name", "pending_tokens_enc"])
            return connection, True
        if different:
            _reset_setup(connection)
        _activate(
            connection, user=user, realm_id=realm_id, company_name=company_name, token_set=token_set, env=env
        )
        connection.save()
        if different:
            _clear_pause(connection)
        else:
            # A paused connection (sync/engine.py `pause`) is probed on the next run, not at its
            # back-off: reconnecting is often what the owner did about it.
            Connection.objects.filter(pk=connection.pk).exclude(paused_code="").update(
                pause_retry_at=timezone.now()
            )
    log.info("qbo.connection.connected connection=%s firm=%s realm=%s", connection.pk, firm.pk, realm_id)
    return connection, False


def _activate(
    connection: Connection,
    *,
    user: AbstractBaseUser | None,
    realm_id: str,
    company_name: str,
    token_set: TokenSet,
    env: Environment,
) -> None:
    _store_tokens(connection, token_set)
    connection.realm_id = realm_id
    connection.company_name = company_name[:255]
    connection.environment = env.name
    connection.status = ConnectionStatus.CONNECTED
    connection.connected_by = user  # type: ignore[assignment]
    connection.connected_at = timezone.now()
    connection.disconnected_at = None
    connection.last_error = ""
    connection.last_error_at = None
    connection.pending_realm_id = ""
    connection.pending_company_name = ""
    connection.pending_tokens_enc = ""


def _revoke_quietly(ciphertext: str, env: Environment) -> bool:
    if not ciphertext:
        return True
    try:
        revoke(tokens.decrypt(ciphertext), env=env)
    except (QBOError, tokens.InvalidToken) as exc:
        log.warning("qbo.token.revoke_failed error=%s", type(exc).__name__)
        return False
    return True


def connection_start_over(*, connection: Connection, user: AbstractBaseUser) -> Connection:
    """Confirmed: drop the old company's links, revoke its tokens, switch to the pending one."""
    if not connection.has_pending_company:
        raise QBOError("There is no other QuickBooks company waiting to be connected.")
    env = environment(connection.environment or None)
    _refuse_if_connected_elsewhere(
        firm=connection.firm, realm_id=connection.pending_realm_id, env=environment()
    )
    old_refresh = connection.refresh_token_enc if connection.status != ConnectionStatus.DISCONNECTED else ""
    token_set = TokenSet.from_json(tokens.decrypt(connection.pending_tokens_enc))
    with transaction.atomic():
        _links_clear(connection)
        _reset_setup(connection)
        _activate(
            connection,
            user=user,
            realm_id=connection.pending_realm_id,
            company_name=connection.pending_company_name,
            token_set=token_set,
            env=environment(),
        )
        connection.save()
        _clear_pause(connection)
    _revoke_quietly(old_refresh, env)
    log.info("qbo.connection.started_over connection=%s realm=%s", connection.pk, connection.realm_id)
    return connection


def connection_start_over_cancel(*, connection: Connection) -> Connection:
    """Not switching after all: revoke the other company's new tokens and keep everything."""
    pending = connection.pending_tokens_enc
    # Revoking ends the app's access to that company as a whole: never for a company some
    # connection here is live on (issue 12: "Keep the current company" revoked the kept one).
    if Connection.objects.filter(
        realm_id=connection.pending_realm_id, environment=environment().name, status__in=_LIVE
    ).exists():
        pending = ""
    connection.pending_realm_id = ""
    connection.pending_company_name = ""
    connection.pending_tokens_enc = ""
    connection.save(
        update_fields=["pending_realm_id", "pending_company_name", "pending_tokens_enc", "updated_at"]
    )
    if pending:
        try:
            refresh_token = TokenSet.from_json(tokens.decrypt(pending)).refresh_token
            revoke(refresh_token)
        except (QBOError, tokens.InvalidToken, ValueError, KeyError) as exc:
            log.warning("qbo.token.revoke_failed error=%s", type(exc).__name__)
    return connection


def connection_disconnect(*, connection: Connection) -> bool:
    """Revoke the tokens at Intuit, stop pushing, keep links and history.

    Returns whether Intuit confirmed the revoke; the local disconnect happens either way
    (the tokens are deleted here, so they cannot be used again by this app).
    """
    env = environment(connection.environment or None)
    revoked = _revoke_quietly(connection.refresh_token_enc, env)
    Connection.objects.filter(pk=connection.pk).update(
        status=ConnectionStatus.DISCONNECTED,
        access_token_enc="",
        access_token_expires_at=None,
        refresh_token_enc="",
        refresh_token_expires_at=None,
        token_version=F("token_version") + 1,
        refresh_lock_owner="",
        refresh_lock_until=None,
        disconnected_at=timezone.now(),
        last_error="",
        last_error_at=None,
    )
    connection.refresh_from_db()
    log.info(
        "qbo.connection.disconnected connection=%s realm=%s revoked=%s",
        connection.pk,
        connection.realm_id,
        revoked,
    )
    return revoked
