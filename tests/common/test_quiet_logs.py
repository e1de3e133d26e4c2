"""What a newcomer tripped on (issue 11): a refused request (403) is one log line, not a
traceback; the sandbox's deliberate "drop" fault cuts the connection without an ASGI traceback."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from django.urls import reverse


class _Capture:
    def __init__(self, logger: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.logger = logging.getLogger(logger)

    def __enter__(self) -> io.StringIO:
        self.logger.addHandler(self.handler)
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


@pytest.mark.django_db
def test_a_refused_request_is_one_log_line(client_as):
    with _Capture("django.request") as out:
        response = client_as("employee").get(reverse("quickbooks:settings"))
    assert response.status_code == 403
    lines = out.getvalue().splitlines()
    assert lines == [
        "WARNING django.request Forbidden (Permission denied): /settings/integrations/quickbooks/"
    ]


def test_the_sandbox_drop_fault_prints_no_traceback():
    from qbo_sandbox.config import SandboxConfig
    from qbo_sandbox.testing import SandboxServer

    with SandboxServer(SandboxConfig()) as server, _Capture("uvicorn.error") as out:
        server.register_app(redirect_uris=["http://x.test/cb/"], client_id="drop-app", client_secret="s")
        realm = server.create_realm(seed="empty")
        token = server.issue_tokens(realm, client_id="drop-app")["access_token"]
        server.inject_fault(realm, "drop", count=1)
        api = server.api(realm, token)
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("customer", params={"requestid": "drop-1"}, json={"DisplayName": "Dropped Co"})
        (logged,) = [r for r in server.requests(realm) if r.get("requestid") == "drop-1"]
        assert (logged["status"], logged["dropped"]) == (200, True)  # written, answer lost
        found = server.query(realm, "select * from Customer")
        assert [c["DisplayName"] for c in found["Customer"]] == ["Dropped Co"]
    assert "Traceback" not in out.getvalue() and "Exception in ASGI application" not in out.getvalue()
