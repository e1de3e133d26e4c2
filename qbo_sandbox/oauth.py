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
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

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
# practice app run by `make demo` and by tests (which re-register the dev app with their own URI).
DEV_REDIRECT_URIS = (
    "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl",
    "http://127.0.0.1:8000/quickbooks/callback/",
    "http://localhost:8000/quickbooks/callback/",
)

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
        return any(
            rt.grant_id == grant.grant_id and self._refresh_usable(rt, now)
            for rt in self.refresh_tokens.values()
        )

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
        self._prune(now)
        hard_expiry = grant.created_at + REFRESH_HARD_CAP_SECONDS
        # Every older refresh token of this grant is superseded now; each keeps its own grace window.
        for rt in self.refresh_tokens.values():
            if rt.grant_id == grant.grant_id and rt.superseded_at is None:
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
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": int(self.access_token_ttl),
            "refresh_token": refresh.token,
            "x_refresh_token_expires_in": max(0, int(refresh.expires_at - now)),
            "access_token": access.token,
        }
        if include_hard_expiry:
            body["x_refresh_token_hard_expires_in"] = max(0, int(hard_expiry - now))
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
            return code.code

    def exchange_code(
        self, *, app: OAuthApp, code: str, redirect_uri: str, include_hard_expiry: bool = False
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

    def _prune(self, now: float) -> None:
        # Keep expired access tokens for a while so the API can still say "expired" rather than
        # "invalid"; drop them later so a long-running sandbox does not grow without bound.
        keep_expired = max(self.access_token_ttl, 3600.0)
        for token in [t for t, at in self.access_tokens.items() if now > at.expires_at + keep_expired]:
            del self.access_tokens[token]
        # An unusable refresh token and an unknown one both answer invalid_grant, so no tombstone.
        for token in [t for t, rt in self.refresh_tokens.items() if not self._refresh_usable(rt, now)]:
            del self.refresh_tokens[token]
        for code in [c for c, ac in self.codes.items() if now > ac.expires_at + self.auth_code_ttl]:
            del self.codes[code]

    # -- anti-forgery token of the authorize form ------------------------------------------------

    def form_token(self, browser_nonce: str, params: Iterable[str]) -> str:
        msg = "\x1f".join([browser_nonce, *params]).encode()
        return hmac.new(self._form_secret, msg, hashlib.sha256).hexdigest()

    def check_form_token(self, token: str, browser_nonce: str, params: Iterable[str]) -> bool:
        if not token or not browser_nonce:
            return False
        return hmac.compare_digest(token, self.form_token(browser_nonce, params))

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
            }

    def from_dict(self, d: dict[str, Any]) -> None:
        """Replace the store's content with a snapshot made by ``to_dict``."""
        with self._lock:
            self.apps = {a["client_id"]: OAuthApp(**a) for a in d.get("apps", [])}
            if DEV_CLIENT_ID in self.apps:
                self.dev_app = self.apps[DEV_CLIENT_ID]
            else:
                self.apps[DEV_CLIENT_ID] = self.dev_app
            self.grants = {g["grant_id"]: Grant(**g) for g in d.get("grants", [])}
            self.codes = {c["code"]: AuthCode(**c) for c in d.get("codes", [])}
            self.access_tokens = {t["token"]: AccessToken(**t) for t in d.get("access_tokens", [])}
            self.refresh_tokens = {t["token"]: RefreshToken(**t) for t in d.get("refresh_tokens", [])}
            self._clock_offset = float(d.get("clock_offset", 0.0))

    # -- HTTP ------------------------------------------------------------------------------------

    def routes(self, sandbox: Any) -> list[BaseRoute]:
        # Filled in by the HTTP layer below once it lands.
        return []


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
