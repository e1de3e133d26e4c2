"""OAuth 2.0 authorization server of the sandbox, shaped like Intuit's (qbo-api.md §8).

The store keeps apps (client credentials, redirect URIs, webhook settings), grants (one app
connected to one realm), authorization codes, access tokens and refresh tokens, all in memory
and snapshot-able with ``to_dict``/``from_dict``. Token lifetimes come from the sandbox config so
tests can shrink them to a second or two; ``advance_clock`` moves the store's clock forward
without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

_T = TypeVar("_T")

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# Scopes Intuit accepts (intuit/oauth-pythonclient intuitlib/enums.py); anything else is invalid_scope.
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "openid",
        "profile",
        "email",
        "phone",
        "address",
    }
)

DEV_CLIENT_ID = "qbo-sandbox-dev"
DEV_CLIENT_SECRET = "qbo-sandbox-dev-secret"
DEV_VERIFIER_TOKEN = "qbo-sandbox-dev-verifier"
# Intuit pre-registers its OAuth Playground for development keys; the localhost URIs cover the
# practice app run by `make demo` (its default QBO_REDIRECT_URI is the /settings/integrations/ one)
# and by tests (which re-register the dev app with their own URI).
DEV_REDIRECT_URIS = (
    "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl",
    "http://127.0.0.1:8000/settings/integrations/quickbooks/callback/",
    "http://localhost:8000/settings/integrations/quickbooks/callback/",
    "http://127.0.0.1:8000/quickbooks/callback/",
    "http://localhost:8000/quickbooks/callback/",
)

FORM_TOKEN_TTL = 3600

# Refresh tokens have a hard cap of five years from the original consent (BLOG-RT).
REFRESH_HARD_CAP_SECONDS = 5 * 365 * 24 * 3600

WEBHOOK_FORMATS = ("cloudevents", "legacy")


def _cfg(config: Any, name: str, default: Any) -> Any:
    # The config dataclass belongs to another module; tolerate older versions that lack a field.
    value = getattr(config, name, None)
    return default if value is None else value


@dataclass
class OAuthApp:
    """An app registered with the sandbox, as in Intuit's developer portal."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    verifier_token: str = ""
    name: str = ""
    # After 15 May 2026 Intuit only sends CloudEvents unless an app still uses the legacy toggle
    # (qbo-api.md §9.2), so new apps default to CloudEvents.
    webhook_format: str = "cloudevents"
    # None means every entity; otherwise the entity names the app subscribed to in the portal.
    webhook_entities: list[str] | None = None


@dataclass
class Grant:
    """One consent: an app connected to one realm, the parent of every token issued from it."""

    grant_id: str
    client_id: str
    realm_id: str
    scope: str
    created_at: float
    revoked_at: float | None = None


@dataclass
class AuthCode:
    code: str
    client_id: str
    realm_id: str
    redirect_uri: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    token: str
    grant_id: str
    expires_at: float


@dataclass
class RefreshToken:
    token: str
    grant_id: str
    expires_at: float
    # When a newer refresh token was issued; the old one keeps working for the grace period.
    superseded_at: float | None = None


class OAuthError(Exception):
    """An RFC 6749 error answer of the token or revoke endpoint."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


def _load(cls: type[_T], data: dict[str, Any]) -> _T:
    # Snapshots may come from an older or newer sandbox: ignore keys this version does not know.
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def _new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


class OAuthStore:
    """Apps, consents and tokens of the sandbox's OAuth server."""

    def __init__(self, config: Any, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._base_clock = clock
        self._clock_offset = 0.0
        self._lock = threading.RLock()
        self.apps: dict[str, OAuthApp] = {}
        self.grants: dict[str, Grant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self._refresh_by_grant: dict[str, set[str]] = {}
        self._last_prune = 0.0
        self._signing_key: RSAKey | None = None
        # Called after every change worth persisting (the sandbox marks its snapshot dirty).
        self.on_change: Callable[[], None] | None = None
        # Signs the authorize form's anti-forgery token; never leaves the process.
        self._form_secret = secrets.token_bytes(32)
        self.dev_app = self.register_app(
            client_id=DEV_CLIENT_ID,
            client_secret=_cfg(config, "dev_client_secret", DEV_CLIENT_SECRET),
            redirect_uris=_cfg(config, "dev_redirect_uris", DEV_REDIRECT_URIS),
            verifier_token=_cfg(config, "dev_verifier_token", DEV_VERIFIER_TOKEN),
            webhook_url=_cfg(config, "dev_webhook_url", None),
            name="QBO Sandbox development app",
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- clock ---------------------------------------------------------------------------------

    def now(self) -> float:
        return self._base_clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the store's clock forward, so tests can expire tokens without sleeping."""
        self._clock_offset += seconds

    # -- TTLs (read each time so a test may change the config on a live store) -------------------

    @property
    def access_token_ttl(self) -> float:
        return float(_cfg(self.config, "access_token_ttl", 3600))

    @property
    def refresh_token_ttl(self) -> float:
        return float(_cfg(self.config, "refresh_token_ttl", 8726400))

    @property
    def refresh_grace(self) -> float:
        return float(_cfg(self.config, "refresh_token_grace_seconds", 86400))

    @property
    def auth_code_ttl(self) -> float:
        return float(_cfg(self.config, "auth_code_ttl", 300))

    # -- apps ------------------------------------------------------------------------------------

    def register_app(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] = (),
        webhook_url: str | None = None,
        verifier_token: str | None = None,
        name: str = "",
        webhook_format: str | None = None,
        webhook_entities: Iterable[str] | None = None,
    ) -> OAuthApp:
        """Create an app, or update it in place when ``client_id`` is already registered.

        On update, arguments left at their defaults keep the app's current values.
        """
        if webhook_format is not None and webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook_format must be one of {WEBHOOK_FORMATS}")
        uris = list(redirect_uris)
        with self._lock:
            existing = self.apps.get(client_id) if client_id else None
            if existing is not None:
                if client_secret is not None:
                    existing.client_secret = client_secret
                if uris:
                    existing.redirect_uris = uris
                if webhook_url is not None:
                    existing.webhook_url = webhook_url or None
                if verifier_token is not None:
                    existing.verifier_token = verifier_token
                if name:
                    existing.name = name
                if webhook_format is not None:
                    existing.webhook_format = webhook_format
                if webhook_entities is not None:
                    existing.webhook_entities = list(webhook_entities)
                self._changed()
                return existing
            app = OAuthApp(
                client_id=client_id or "AB" + _new_token(24),
                client_secret=client_secret or _new_token(30),
                redirect_uris=uris,
                webhook_url=webhook_url or None,
                verifier_token=verifier_token or _new_token(24),
                name=name,
                webhook_format=webhook_format or "cloudevents",
                webhook_entities=list(webhook_entities) if webhook_entities is not None else None,
            )
            self.apps[app.client_id] = app
            self._changed()
            return app

    def get_app(self, client_id: str) -> OAuthApp | None:
        return self.apps.get(client_id)

    def check_client(self, client_id: str, client_secret: str) -> OAuthApp | None:
        app = self.apps.get(client_id)
        if app is None or not hmac.compare_digest(app.client_secret.encode(), client_secret.encode()):
            return None
        return app

    # -- grants and tokens -----------------------------------------------------------------------

    def _grant_live(self, grant: Grant, now: float) -> bool:
        if grant.revoked_at is not None:
            return False
        return any(self._refresh_usable(rt, now) for rt in self._grant_refresh_tokens(grant.grant_id))

    def _grant_refresh_tokens(self, grant_id: str) -> list[RefreshToken]:
        tokens = self._refresh_by_grant.get(grant_id, set())
        return [self.refresh_tokens[t] for t in tokens if t in self.refresh_tokens]

    def _refresh_usable(self, rt: RefreshToken, now: float) -> bool:
        if now >= rt.expires_at:
            return False
        return rt.superseded_at is None or now < rt.superseded_at + self.refresh_grace

    def _new_grant(self, client_id: str, realm_id: str, scope: str) -> Grant:
        grant = Grant(
            grant_id=_new_token(12),
            client_id=client_id,
            realm_id=str(realm_id),
            scope=scope,
            created_at=self.now(),
        )
        self.grants[grant.grant_id] = grant
        return grant

    def _issue_for_grant(self, grant: Grant, *, include_hard_expiry: bool = False) -> dict[str, Any]:
        now = self.now()
        if now - self._last_prune > 60:
            self._prune(now, keep=grant.grant_id)
        hard_expiry = grant.created_at + REFRESH_HARD_CAP_SECONDS
        # Every older refresh token of this grant is superseded now; each keeps its own grace window.
        for rt in self._grant_refresh_tokens(grant.grant_id):
            if rt.superseded_at is None:
                rt.superseded_at = now
        access = AccessToken(
            token=_new_token(48), grant_id=grant.grant_id, expires_at=now + self.access_token_ttl
        )
        refresh = RefreshToken(
            token="AB11" + _new_token(36),
            grant_id=grant.grant_id,
            expires_at=min(now + self.refresh_token_ttl, hard_expiry),
        )
        self.access_tokens[access.token] = access
        self.refresh_tokens[refresh.token] = refresh
        self._refresh_by_grant.setdefault(grant.grant_id, set()).add(refresh.token)
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": int(self.access_token_ttl),
            "refresh_token": refresh.token,
            "x_refresh_token_expires_in": max(0, int(refresh.expires_at - now)),
            "access_token": access.token,
        }
        if include_hard_expiry:
            body["x_refresh_token_hard_expires_in"] = max(0, int(hard_expiry - now))
        self._changed()
        return body

    def issue_tokens(self, *, client_id: str, realm_id: str, scope: str = ACCOUNTING_SCOPE) -> dict[str, Any]:
        """Connect an app to a realm without the browser step; returns the token endpoint's JSON."""
        with self._lock:
            if client_id not in self.apps:
                raise KeyError(f"unknown client_id {client_id!r}")
            grant = self._new_grant(client_id, realm_id, scope)
            return self._issue_for_grant(grant)

    def create_code(self, *, client_id: str, realm_id: str, redirect_uri: str, scope: str) -> str:
        """An authorization code, as the authorize page hands out after consent."""
        with self._lock:
            code = AuthCode(
                code="AB11" + _new_token(24),
                client_id=client_id,
                realm_id=str(realm_id),
                redirect_uri=redirect_uri,
                scope=scope,
                expires_at=self.now() + self.auth_code_ttl,
            )
            self.codes[code.code] = code
            self._changed()
            return code.code

    def signing_key(self) -> RSAKey:
        """The RS256 key of ID tokens, made on first use (it costs ~0.1 s) and kept in snapshots."""
        with self._lock:
            if self._signing_key is None:
                kid = _new_token(8)
                self._signing_key = RSAKey.generate_key(
                    2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}
                )
            return self._signing_key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.signing_key().as_dict(private=False)]}

    def id_token(self, grant: Grant, issuer: str) -> str:
        key = self.signing_key()
        now = int(self.now())
        claims = {
            "iss": issuer,
            "sub": user_subject(grant),
            "aud": [grant.client_id],
            "realmid": grant.realm_id,
            "auth_time": now,
            "iat": now,
            "exp": now + int(self.access_token_ttl),
        }
        return jwt.encode({"alg": "RS256", "kid": str(key.kid)}, claims, key)

    def exchange_code(
        self,
        *,
        app: OAuthApp,
        code: str,
        redirect_uri: str,
        include_hard_expiry: bool = False,
        issuer: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            entry = self.codes.get(code)
            if entry is None or entry.client_id != app.client_id:
                raise OAuthError("invalid_grant", "Invalid authorization code")
            if entry.used:
                raise OAuthError("invalid_grant", "Authorization code has already been used")
            if self.now() >= entry.expires_at:
                raise OAuthError("invalid_grant", "Authorization code has expired")
            if redirect_uri != entry.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            entry.used = True
            grant = self._new_grant(app.client_id, entry.realm_id, entry.scope)
            body = self._issue_for_grant(grant, include_hard_expiry=include_hard_expiry)
            if issuer and "openid" in grant.scope.split():
                body["id_token"] = self.id_token(grant, issuer)
            return body

    def refresh(
        self, *, app: OAuthApp, refresh_token: str, include_hard_expiry: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            rt = self.refresh_tokens.get(refresh_token)
            grant = self.grants.get(rt.grant_id) if rt else None
            if rt is None or grant is None or grant.client_id != app.client_id:
                raise OAuthError("invalid_grant", "Token invalid")
            if grant.revoked_at is not None or not self._refresh_usable(rt, self.now()):
                raise OAuthError("invalid_grant", "Token invalid")
            return self._issue_for_grant(grant, include_hard_expiry=include_hard_expiry)

    def grant_for_access_token(self, token: str) -> Grant | None:
        at = self.access_tokens.get(token)
        return self.grants.get(at.grant_id) if at else None

    def authenticate(self, token: str, realm_id: str) -> str | None:
        """None when ``token`` may call the API of ``realm_id``; else why not.

        One of "invalid" (never issued), "revoked", "wrong_realm", "expired".
        """
        with self._lock:
            at = self.access_tokens.get(token)
            grant = self.grants.get(at.grant_id) if at else None
            if at is None or grant is None:
                return "invalid"
            if grant.revoked_at is not None:
                return "revoked"
            if grant.realm_id != str(realm_id):
                return "wrong_realm"
            if self.now() >= at.expires_at:
                return "expired"
            return None

    def check_access(self, token: str) -> tuple[Grant | None, str | None]:
        """The grant behind a bearer token and None, or (None, reason) as in ``authenticate``."""
        with self._lock:
            at = self.access_tokens.get(token)
            grant = self.grants.get(at.grant_id) if at else None
            if at is None or grant is None:
                return None, "invalid"
            if grant.revoked_at is not None:
                return None, "revoked"
            if self.now() >= at.expires_at:
                return None, "expired"
            return grant, None

    def revoke_token(self, *, app: OAuthApp, token: str) -> bool:
        """Revoke what ``token`` (access or refresh) belongs to. False when it is unknown.

        Intuit treats revoking as disconnecting the app from the company, so every grant of this
        app on that realm goes, not only the one token's.
        """
        with self._lock:
            holder = self.refresh_tokens.get(token) or self.access_tokens.get(token)
            grant = self.grants.get(holder.grant_id) if holder else None
            if grant is None:
                return False
            if grant.client_id != app.client_id:
                raise OAuthError("invalid_request", "Token was not issued to this client")
            self.revoke_realm(grant.realm_id, app.client_id)
            return True

    def revoke_realm(self, realm_id: str, client_id: str | None = None) -> int:
        """Disconnect apps (one, or all when ``client_id`` is None) from a realm; returns how many grants."""
        with self._lock:
            now = self.now()
            count = 0
            for grant in self.grants.values():
                if grant.realm_id != str(realm_id) or grant.revoked_at is not None:
                    continue
                if client_id is not None and grant.client_id != client_id:
                    continue
                grant.revoked_at = now
                count += 1
            if count:
                self._changed()
            return count

    def apps_for_realm(self, realm_id: str) -> list[OAuthApp]:
        """Apps connected to ``realm_id``: at least one grant not revoked with a usable refresh token."""
        with self._lock:
            now = self.now()
            seen: dict[str, OAuthApp] = {}
            for grant in self.grants.values():
                if grant.realm_id != str(realm_id) or grant.client_id in seen:
                    continue
                app = self.apps.get(grant.client_id)
                if app is not None and self._grant_live(grant, now):
                    seen[app.client_id] = app
            return list(seen.values())

    def _prune(self, now: float, keep: str = "") -> None:
        # Keep expired access tokens for a while so the API can still say "expired" rather than
        # "invalid"; drop them later so a long-running sandbox does not grow without bound.
        keep_expired = max(self.access_token_ttl, 3600.0)
        for token in [t for t, at in self.access_tokens.items() if now > at.expires_at + keep_expired]:
            del self.access_tokens[token]
        # An unusable refresh token and an unknown one both answer invalid_grant, so no tombstone.
        for token in [t for t, rt in self.refresh_tokens.items() if not self._refresh_usable(rt, now)]:
            rt = self.refresh_tokens.pop(token)
            self._refresh_by_grant.get(rt.grant_id, set()).discard(token)
        for code in [c for c, ac in self.codes.items() if now > ac.expires_at + self.auth_code_ttl]:
            del self.codes[code]
        # A grant with no token left is a finished connection; `keep` is the one being issued for.
        held = {at.grant_id for at in self.access_tokens.values()} | {
            rt.grant_id for rt in self.refresh_tokens.values()
        }
        for grant_id in [g for g in self.grants if g not in held and g != keep]:
            del self.grants[grant_id]
            self._refresh_by_grant.pop(grant_id, None)
        self._last_prune = now

    # -- anti-forgery token of the authorize form ------------------------------------------------

    def form_token(self, browser_nonce: str, params: Iterable[str], issued: int | None = None) -> str:
        """Binds the consent form to the browser's cookie, the request's parameters and a time.

        A page fetched by someone else (their cookie) or edited hidden fields fail the check, and
        so does a form left open longer than FORM_TOKEN_TTL.
        """
        issued = int(self.now()) if issued is None else issued
        msg = "\x1f".join([str(issued), browser_nonce, *params]).encode()
        return f"{issued}.{hmac.new(self._form_secret, msg, hashlib.sha256).hexdigest()}"

    def check_form_token(self, token: str, browser_nonce: str, params: Iterable[str]) -> bool:
        issued_text, _, _ = token.partition(".")
        if not browser_nonce or not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not 0 <= self.now() - issued <= FORM_TOKEN_TTL:
            return False
        return hmac.compare_digest(token, self.form_token(browser_nonce, list(params), issued))

    # -- snapshots -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "apps": [asdict(a) for a in self.apps.values()],
                "grants": [asdict(g) for g in self.grants.values()],
                "codes": [asdict(c) for c in self.codes.values()],
                "access_tokens": [asdict(t) for t in self.access_tokens.values()],
                "refresh_tokens": [asdict(t) for t in self.refresh_tokens.values()],
                "clock_offset": self._clock_offset,
                "signing_key": self._signing_key.as_dict(private=True) if self._signing_key else None,
            }

    def from_dict(self, d: dict[str, Any]) -> None:
        """Replace the store's content with a snapshot made by ``to_dict``."""
        with self._lock:
            self.apps = {a["client_id"]: _load(OAuthApp, a) for a in d.get("apps", [])}
            if DEV_CLIENT_ID in self.apps:
                self.dev_app = self.apps[DEV_CLIENT_ID]
            else:
                self.apps[DEV_CLIENT_ID] = self.dev_app
            self.grants = {g["grant_id"]: _load(Grant, g) for g in d.get("grants", [])}
            self.codes = {c["code"]: _load(AuthCode, c) for c in d.get("codes", [])}
            self.access_tokens = {t["token"]: _load(AccessToken, t) for t in d.get("access_tokens", [])}
            self.refresh_tokens = {t["token"]: _load(RefreshToken, t) for t in d.get("refresh_tokens", [])}
            self._refresh_by_grant = {}
            for rt in self.refresh_tokens.values():
                self._refresh_by_grant.setdefault(rt.grant_id, set()).add(rt.token)
            key = d.get("signing_key")
            self._signing_key = RSAKey.import_key(key) if key else None
            self._clock_offset = float(d.get("clock_offset", 0.0))

    # -- HTTP ------------------------------------------------------------------------------------

    def routes(self, sandbox: Any) -> list[BaseRoute]:
        """Intuit's OAuth endpoints at Intuit's paths, all served from the sandbox's one origin."""
        return _OAuthHttp(self, sandbox).routes()


def user_subject(grant: Grant) -> str:
    """A stable ``sub`` for the (one, fictional) sandbox user as seen by one app."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"qbo-sandbox:{grant.client_id}:{grant.realm_id}"))


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """(client_id, client_secret) from an ``Authorization: Basic`` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = raw.partition(":")
    if not sep:
        return None
    return client_id, secret


# -- HTTP layer -------------------------------------------------------------------------------------

AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"
ISSUER_PATH = "/op/v1"
# Intuit's discovery URLs (developer.api.intuit.com has them without, intuit/oauth-pythonclient
# with a trailing slash); both environments share the OAuth endpoints (qbo-api.md §8.1).
DISCOVERY_PATHS = {
    "/.well-known/openid_configuration": "production",
    "/.well-known/openid_configuration/": "production",
    "/.well-known/openid_sandbox_configuration": "sandbox",
    "/.well-known/openid_sandbox_configuration/": "sandbox",
}
FORM_COOKIE = "qbo_sandbox_authz"

_NO_STORE = {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"}
# Chrome applies form-action to the redirect that follows a form post, so the policy leaves it
# out: the approve/deny post must be allowed to land on the app's redirect_uri.
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _tid() -> dict[str, str]:
    return {"intuit_tid": str(uuid.uuid4())}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**_NO_STORE, **_tid(), **(headers or {})})


def _oauth_error(err: OAuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="qbo-sandbox"'} if err.status == 401 else None
    return _json(err.body(), err.status, headers)


def _with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already carries."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


async def _read_form(request: Request) -> dict[str, str]:
    # Parsed here rather than with request.form(): that needs python-multipart for urlencoded too.
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f8;color:#1f2328;
margin:0;padding:2rem 1rem}
main{max-width:32rem;margin:0 auto;background:#fff;border:1px solid #d8dce3;border-radius:8px;
padding:1.5rem 2rem}
h1{font-size:1.35rem;margin:0 0 .25rem}
p.sub{color:#555d68;margin:0 0 1.25rem}
fieldset{border:0;margin:0 0 1.25rem;padding:0}
legend{font-weight:600;margin-bottom:.5rem}
label.realm{display:flex;gap:.6rem;align-items:baseline;padding:.6rem .75rem;border:1px solid #d8dce3;
border-radius:6px;margin-bottom:.5rem;cursor:pointer}
label.realm:hover{border-color:#2ca01c}
.rid{color:#6b7380;font-size:.85rem}
ul.scopes{margin:.25rem 0 1.25rem;padding-left:1.25rem;color:#3b424c}
.actions{display:flex;gap:.75rem;justify-content:flex-end}
button{font:inherit;padding:.55rem 1.2rem;border-radius:6px;border:1px solid #8a929c;background:#fff;
cursor:pointer}
button.primary{background:#2ca01c;border-color:#2ca01c;color:#fff;font-weight:600}
.error{background:#fdecea;border:1px solid #f5c2bd;color:#8a1c12;border-radius:6px;padding:.75rem 1rem;
margin-bottom:1rem}
code{background:#f1f2f4;padding:0 .25rem;border-radius:3px}
footer{max-width:32rem;margin:1rem auto 0;color:#6b7380;font-size:.8rem;text-align:center}
"""

_SCOPE_LABELS = {
    ACCOUNTING_SCOPE: "Read and write your QuickBooks accounting data",
    "com.intuit.quickbooks.payment": "Process payments",
    "openid": "Sign you in with Intuit",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "address": "See your address",
}


def _page(title: str, body: str) -> str:
    e = html.escape
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · QBO Sandbox</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main>"
        "<footer>QBO Sandbox: a local stand-in for Intuit's QuickBooks Online sign-in. "
        "No real Intuit account is involved.</footer></body></html>"
    )


class _AuthzRequest:
    """The parameters of one authorization request, validated as Intuit's authorize page does."""

    def __init__(self, params: dict[str, str]) -> None:
        self.client_id = params.get("client_id", "")
        self.redirect_uri = params.get("redirect_uri", "")
        self.response_type = params.get("response_type", "")
        self.scope = params.get("scope", "")
        self.state = params.get("state", "")

    def signed_fields(self) -> list[str]:
        return [self.client_id, self.redirect_uri, self.response_type, self.scope, self.state]

    def scopes(self) -> list[str]:
        return self.scope.split()


class _OAuthHttp:
    def __init__(self, store: OAuthStore, sandbox: Any) -> None:
        self.store = store
        self.sandbox = sandbox

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(REVOKE_PATH, self.revoke, methods=["POST"]),
            Route(USERINFO_PATH, self.userinfo, methods=["GET", "POST"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
        ]
        routes += [Route(path, self.discovery, methods=["GET"]) for path in DISCOVERY_PATHS]
        return routes

    # -- helpers ---------------------------------------------------------------------------------

    def base_url(self, request: Request) -> str:
        configured = getattr(self.sandbox.config, "public_base_url", None)
        if configured:
            return str(configured).rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"

    def realms(self) -> list[tuple[str, str]]:
        realms = getattr(self.sandbox, "realms", {}) or {}
        out = [(str(rid), str(getattr(r, "company_name", "") or rid)) for rid, r in realms.items()]
        return sorted(out, key=lambda item: (item[1].lower(), item[0]))

    def error_page(self, status: int, error: str, description: str) -> HTMLResponse:
        e = html.escape
        body = (
            "<h1>We can't connect this app</h1>"
            f'<div class="error" role="alert"><strong>{e(error)}</strong><br>{e(description)}</div>'
            "<p>Check the app's settings (client ID and redirect URIs) and start again from the app.</p>"
        )
        return HTMLResponse(_page("Error", body), status_code=status, headers={**_PAGE_HEADERS, **_tid()})

    def validate(self, req: _AuthzRequest) -> tuple[OAuthApp | None, Response | None, str | None]:
        """(app, error page, redirect error) — an error page only while the redirect is untrusted."""
        if not req.client_id:
            return None, self.error_page(400, "invalid_request", "The client_id parameter is missing."), None
        app = self.store.get_app(req.client_id)
        if app is None:
            return None, self.error_page(400, "invalid_client", "The client_id is not recognised."), None
        if not req.redirect_uri:
            return (
                app,
                self.error_page(400, "invalid_request", "The redirect_uri parameter is missing."),
                None,
            )
        # Exact string match, as Intuit compares against the URIs registered for the app's keys.
        if req.redirect_uri not in app.redirect_uris:
            return (
                app,
                self.error_page(
                    400,
                    "invalid_request",
                    "The redirect_uri is not registered for this app: " + req.redirect_uri,
                ),
                None,
            )
        if req.response_type != "code":
            return app, None, "unsupported_response_type"
        scopes = req.scopes()
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes) or ACCOUNTING_SCOPE not in scopes:
            return app, None, "invalid_scope"
        if not req.state:
            return app, None, "invalid_request"
        return app, None, None

    def redirect_error(self, req: _AuthzRequest, error: str, description: str = "") -> RedirectResponse:
        params = {"error": error}
        if description:
            params["error_description"] = description
        if req.state:
            params["state"] = req.state
        return RedirectResponse(_with_query(req.redirect_uri, params), status_code=302, headers=_tid())

    # -- authorize -------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.decide(request)
        req = _AuthzRequest(dict(request.query_params))
        app, page, redirect_error = self.validate(req)
        if page is not None:
            return page
        if redirect_error:
            return self.redirect_error(req, redirect_error, _REDIRECT_ERROR_TEXT[redirect_error])
        assert app is not None
        nonce = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
        response = self.consent_page(req, app, nonce)
        response.set_cookie(
            FORM_COOKIE,
            nonce,
            path=AUTHORIZE_PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    def consent_page(
        self, req: _AuthzRequest, app: OAuthApp, nonce: str, error: str = "", status: int = 200
    ) -> HTMLResponse:
        e = html.escape
        app_name = app.name or app.client_id
        realms = self.realms()
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{e(value)}">'
            for name, value in (
                ("client_id", req.client_id),
                ("redirect_uri", req.redirect_uri),
                ("response_type", req.response_type),
                ("scope", req.scope),
                ("state", req.state),
                ("form_token", self.store.form_token(nonce, req.signed_fields())),
            )
        )
        scopes = "".join(f"<li>{e(_SCOPE_LABELS.get(s, s))}</li>" for s in req.scopes())
        if realms:
            choices = "".join(
                f'<label class="realm"><input type="radio" name="realm_id" value="{e(rid)}"'
                f"{' checked' if i == 0 else ''} required>"
                f'<span><span class="name">{e(name)}</span><br><span class="rid">Company ID {e(rid)}</span>'
                "</span></label>"
                for i, (rid, name) in enumerate(realms)
            )
            picker = f"<fieldset><legend>Choose a company</legend>{choices}</fieldset>"
            connect = '<button type="submit" name="decision" value="approve" class="primary">Connect</button>'
        else:
            picker = '<p class="error">This sandbox has no companies yet. Create one, then try again.</p>'
            connect = ""
        body = (
            f"<h1>Connect {e(app_name)} to QuickBooks</h1>"
            f'<p class="sub"><strong>{e(app_name)}</strong> wants to:</p>'
            f'<ul class="scopes">{scopes}</ul>'
            + (f'<div class="error" role="alert">{e(error)}</div>' if error else "")
            + f'<form method="post" action="{AUTHORIZE_PATH}">{hidden}{picker}'
            '<div class="actions">'
            '<button type="submit" name="decision" value="deny" formnovalidate>Cancel</button>'
            f"{connect}</div></form>"
        )
        return HTMLResponse(
            _page(f"Connect {app_name}", body), status_code=status, headers={**_PAGE_HEADERS, **_tid()}
        )

    async def decide(self, request: Request) -> Response:
        form = await _read_form(request)
        req = _AuthzRequest(form)
        app, page, redirect_error = self.validate(req)
        if page is not None:
            return page
        if redirect_error:
            return self.redirect_error(req, redirect_error, _REDIRECT_ERROR_TEXT[redirect_error])
        assert app is not None
        nonce = request.cookies.get(FORM_COOKIE, "")
        if not self.store.check_form_token(form.get("form_token", ""), nonce, req.signed_fields()):
            return self.error_page(
                403,
                "invalid_request",
                "This form has expired or did not come from this page. Start again from the app.",
            )
        if form.get("decision") != "approve":
            return self.redirect_error(req, "access_denied", "The user denied the request.")
        realm_id = form.get("realm_id", "")
        if realm_id not in dict(self.realms()):
            return self.consent_page(req, app, nonce, error="Choose one of the companies below.", status=400)
        code = self.store.create_code(
            client_id=app.client_id, realm_id=realm_id, redirect_uri=req.redirect_uri, scope=req.scope
        )
        params = {"code": code, "state": req.state, "realmId": realm_id}
        return RedirectResponse(_with_query(req.redirect_uri, params), status_code=302, headers=_tid())

    # -- token and revoke ------------------------------------------------------------------------

    def client_from(self, request: Request, form: dict[str, str]) -> OAuthApp:
        creds = basic_auth(request.headers.get("authorization"))
        if creds is None and form.get("client_id"):
            # client_secret_post, listed in the discovery document next to client_secret_basic.
            creds = (form.get("client_id", ""), form.get("client_secret", ""))
        if creds is None:
            raise OAuthError("invalid_client", "Client authentication is required", 401)
        app = self.store.check_client(*creds)
        if app is None:
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app

    async def token(self, request: Request) -> Response:
        form = await _read_form(request)
        try:
            app = self.client_from(request, form)
            hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
            grant_type = form.get("grant_type", "")
            if grant_type == "authorization_code":
                code, redirect_uri = form.get("code", ""), form.get("redirect_uri", "")
                if not code or not redirect_uri:
                    raise OAuthError("invalid_request", "code and redirect_uri are required")
                body = self.store.exchange_code(
                    app=app,
                    code=code,
                    redirect_uri=redirect_uri,
                    include_hard_expiry=hard,
                    issuer=self.base_url(request) + ISSUER_PATH,
                )
            elif grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                if not token:
                    raise OAuthError("invalid_request", "refresh_token is required")
                body = self.store.refresh(app=app, refresh_token=token, include_hard_expiry=hard)
            elif not grant_type:
                raise OAuthError("invalid_request", "grant_type is required")
            else:
                raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type}")
        except OAuthError as err:
            return _oauth_error(err)
        return _json(body)

    async def revoke(self, request: Request) -> Response:
        raw = await request.body()
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return _oauth_error(OAuthError("invalid_request", "Body must be a JSON object"))
            form = {k: v for k, v in data.items() if isinstance(v, str)}
        else:
            form = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        try:
            app = self.client_from(request, form)
            token = form.get("token", "")
            if not token:
                raise OAuthError("invalid_request", "token is required")
            # RFC 7009: an unknown token is answered 200 too, so a client can revoke idempotently.
            self.store.revoke_token(app=app, token=token)
        except OAuthError as err:
            return _oauth_error(err)
        return Response(status_code=200, headers={**_NO_STORE, **_tid()})

    # -- OpenID bits -----------------------------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        grant, reason = self.store.check_access(token) if token else (None, "invalid")
        if grant is None:
            challenge = f'Bearer error="invalid_token", error_description="{reason}"'
            return _json({"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge})
        scopes = grant.scope.split()
        if "openid" not in scopes:
            return _json({"error": "insufficient_scope"}, 403)
        info: dict[str, Any] = {"sub": user_subject(grant)}
        if "email" in scopes:
            info.update(email="sandbox.user@example.com", emailVerified=True)
        if "profile" in scopes:
            info.update(givenName="Sandbox", familyName="User")
        if "phone" in scopes:
            info.update(phoneNumber="+1 555-0100", phoneNumberVerified=False)
        if "address" in scopes:
            info["address"] = {
                "streetAddress": "1 Sandbox Way",
                "locality": "Mountain View",
                "region": "CA",
                "postalCode": "94043",
                "country": "US",
            }
        return _json(info)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.store.jwks(), headers=_tid())

    async def discovery(self, request: Request) -> Response:
        base = self.base_url(request)
        doc = {
            "issuer": base + ISSUER_PATH,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "userinfo_endpoint": base + USERINFO_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
        return JSONResponse(doc, headers=_tid())


_REDIRECT_ERROR_TEXT = {
    "unsupported_response_type": "response_type must be code",
    "invalid_scope": f"scope must include {ACCOUNTING_SCOPE} and only known scopes",
    "invalid_request": "state is required",
}
