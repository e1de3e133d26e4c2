"""Tokens: encryption at rest and key rotation, proactive and on-401 refresh, rotation with the
old refresh token expiring, single-flight refresh across threads, invalid_grant → reconnect."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from practice.quickbooks.connection import oauth, tokens
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.connection.errors import ReauthRequired
from practice.quickbooks.models import Connection, ConnectionStatus
from tests.quickbooks.conftest import TEST_CLIENT_ID, TEST_CLIENT_SECRET, connect_firm

pytestmark = pytest.mark.django_db


def plain(connection: Connection) -> tuple[str, str]:
    connection.refresh_from_db()
    return tokens.decrypt(connection.access_token_enc), tokens.decrypt(connection.refresh_token_enc)


def token_endpoint_refresh(sandbox, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET),
    )


# -- encryption at rest -------------------------------------------------------------------------


def test_tokens_are_stored_encrypted(connection):
    access, refresh = plain(connection)
    assert access and refresh
    row = Connection.objects.filter(pk=connection.pk).values("access_token_enc", "refresh_token_enc").get()
    assert access not in row["access_token_enc"] and refresh not in row["refresh_token_enc"]
    assert access not in repr(connection) and access not in str(connection)


def test_dev_key_comes_from_secret_key(settings):
    settings.QBO_TOKEN_KEYS = []
    ciphertext = tokens.encrypt("secret-value")
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    with pytest.raises(tokens.InvalidToken):
        tokens.decrypt(ciphertext)


def test_key_rotation_command(connection, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    access, refresh = plain(connection)
    settings.QBO_TOKEN_KEYS = [old_key]
    Connection.objects.filter(pk=connection.pk).update(
        access_token_enc=tokens.encrypt(access), refresh_token_enc=tokens.encrypt(refresh)
    )
    settings.QBO_TOKEN_KEYS = [new_key, old_key]  # newest first
    call_command("qbo_rotate_token_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.QBO_TOKEN_KEYS = [new_key]  # the old key is gone now
    assert plain(connection) == (access, refresh)
    settings.QBO_TOKEN_KEYS = [old_key]
    with pytest.raises(tokens.InvalidToken):
        plain(connection)


# -- refresh ------------------------------------------------------------------------------------


def test_proactive_refresh_before_expiry(qbo_client, connection):
    access_before, refresh_before = plain(connection)
    Connection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=60)  # < 5 min left
    )
    connection.refresh_from_db()
    client = QBOClient(connection)
    assert client.read("Account", "1")["Id"] == "1"
    access_after, refresh_after = plain(connection)
    assert access_after != access_before and refresh_after != refresh_before
    assert connection.access_token_expires_at > timezone.now() + timedelta(minutes=30)
    # Not on every call: a fresh token is simply used.
    version = connection.token_version
    client.read("Account", "1")
    connection.refresh_from_db()
    assert connection.token_version == version


def test_access_token_expiring_mid_run(sandbox, realm_id, firm, settings):
    """Short TTL at the sandbox and no proactive margin: the 401 path refreshes and carries on."""
    sandbox.set_config(access_token_ttl=1)
    settings.QBO_REFRESH_MARGIN_SECONDS = 0
    connection = connect_firm(firm, realm_id, sandbox)
    client = QBOClient(connection)
    # The app believes the token lives an hour; the sandbox expires it after a second.
    Connection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(hours=1)
    )
    connection.refresh_from_db()
    client.read("Account", "1")
    time.sleep(1.2)
    for _ in range(3):
        assert client.read("Account", "1")["Id"] == "1"
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.token_version == 2
    statuses = [e["status"] for e in sandbox.requests(realm_id)]
    assert statuses.count(401) == 1


def test_rotation_with_old_refresh_token_expiring(sandbox, connection):
    """Grace 0: the superseded refresh token dies at once; the stored one must be the newest."""
    sandbox.set_config(refresh_token_grace_seconds=0)
    _, first_refresh = plain(connection)
    oauth.refresh(connection)
    _, second_refresh = plain(connection)
    assert second_refresh != first_refresh
    assert token_endpoint_refresh(sandbox, first_refresh).json()["error"] == "invalid_grant"
    oauth.refresh(connection)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert QBOClient(connection).read("Account", "1")["Id"] == "1"


def test_stale_instance_save_keeps_rotated_tokens(connection):
    stale = Connection.objects.get(pk=connection.pk)
    oauth.refresh(connection)
    newest = plain(connection)
    stale.company_name = "Renamed Locally"
    stale.save()
    fresh = Connection.objects.get(pk=connection.pk)
    assert fresh.company_name == "Renamed Locally"
    assert plain(fresh) == newest
    assert fresh.token_version == connection.token_version


def test_invalid_grant_means_reconnect_and_no_retry_loop(sandbox, realm_id, connection, caplog):
    httpx.post(f"{sandbox.url}/_sandbox/realms/{realm_id}/revoke", json={}).raise_for_status()
    Connection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    connection.refresh_from_db()
    client = QBOClient(connection)
    before = len(sandbox.requests(realm_id))
    with caplog.at_level(logging.INFO, logger="practice.quickbooks"):
        with pytest.raises(ReauthRequired):
            client.read("Account", "1")
        with pytest.raises(ReauthRequired):
            client.read("Account", "1")
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.NEEDS_RECONNECT
    assert "invalid_grant" in connection.last_error
    assert len(sandbox.requests(realm_id)) == before  # no API call was even attempted
    assert caplog.text.count("qbo.token.refresh.invalid_grant") == 1  # one token call, no loop


def test_token_set_repr_hides_tokens(sandbox, realm_id):
    token_set = oauth.TokenSet.from_response(sandbox.issue_tokens(realm_id, client_id=TEST_CLIENT_ID))
    assert token_set.access_token not in repr(token_set)
    assert token_set.refresh_token not in repr(token_set)


# -- single flight ------------------------------------------------------------------------------


def _race(connection_pk: int, workers: int) -> list[BaseException]:
    """`workers` threads, each with its own Connection instance and DB connection, all seeing
    the same token_version and refreshing at the same moment."""
    from django.db import connection as db_connection

    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            mine = Connection.objects.get(pk=connection_pk)
            barrier.wait()
            oauth.refresh(mine)
            QBOClient(mine).read("Account", "1")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_leave_a_working_connection(sandbox, realm_id, firm):
    """Grace 0 makes a lost rotation fatal: if two refreshers both used the same refresh token,
    the second would get invalid_grant and the connection would need reconnecting."""
    sandbox.set_config(refresh_token_grace_seconds=0)
    connection = connect_firm(firm, realm_id, sandbox)
    start_version = connection.token_version
    errors = _race(connection.pk, workers=6)
    assert not errors, errors
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.token_version == start_version + 1  # exactly one refresh happened
    assert connection.refresh_lock_owner == "" and connection.refresh_lock_until is None
    # The stored refresh token is the live one.
    _, refresh = plain(connection)
    assert token_endpoint_refresh(sandbox, refresh).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_worker_and_web_request_refreshing_together(sandbox, realm_id, firm):
    """A worker's client (401 path) and a web request (proactive path) racing."""
    sandbox.set_config(refresh_token_grace_seconds=0)
    connection = connect_firm(firm, realm_id, sandbox)
    Connection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def web() -> None:
        from django.db import connection as db_connection

        try:
            mine = Connection.objects.get(pk=connection.pk)
            barrier.wait()
            QBOClient(mine).company_info()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    def worker() -> None:
        from django.db import connection as db_connection

        try:
            mine = Connection.objects.get(pk=connection.pk)
            barrier.wait()
            oauth.refresh(mine, seen_version=mine.token_version)
            QBOClient(mine).read("Account", "1")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=web), threading.Thread(target=worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.token_version == 2


REFRESH_IN_ANOTHER_PROCESS = """
import os, sys, time
import django
django.setup()
from practice.quickbooks.connection import oauth
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection
connection = Connection.objects.get(pk=int(sys.argv[1]))
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
oauth.refresh(connection)
QBOClient(connection).read("Account", "1")
print("done", connection.token_version, flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_refresh_race_across_processes(sandbox, realm_id, firm, settings, tmp_path):
    """Worker processes and this one refresh the same connection at once (PostgreSQL: the only
    test database other processes can open). Grace 0 makes a lost rotation fatal."""
    import os
    import subprocess
    import sys

    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("other processes cannot open the in-memory SQLite test database")
    sandbox.set_config(refresh_token_grace_seconds=0)
    connection = connect_firm(firm, realm_id, sandbox)
    start_version = connection.token_version
    params = db.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": (
            f"postgres://{params['USER']}:{params['PASSWORD'] or ''}"
            f"@{params['HOST']}:{params['PORT']}/{params['NAME']}"
        ),
        "QBO_ENVIRONMENT": "sandbox-local",
        "QBO_SANDBOX_URL": sandbox.url,
        "QBO_CLIENT_ID": TEST_CLIENT_ID,
        "QBO_CLIENT_SECRET": TEST_CLIENT_SECRET,
        "QBO_TOKEN_KEYS": ",".join(settings.QBO_TOKEN_KEYS),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("TEST_DB_NAME", None)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REFRESH_IN_ANOTHER_PROCESS, str(connection.pk), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        mine = Connection.objects.get(pk=connection.pk)
        oauth.refresh(mine)
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.token_version == start_version + 1
    _, refresh = plain(connection)
    assert token_endpoint_refresh(sandbox, refresh).status_code == 200
