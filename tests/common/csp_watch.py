"""Content-Security-Policy checks (issue 12): the headers and inline-free HTML of a response, and
browser tests failing on any violation Chromium reports on the console."""

from __future__ import annotations

import re
from typing import Any


def watch(page: Any) -> list[str]:
    """Collect the page's CSP refusals; the fixture asserts the list is empty at teardown."""
    violations: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def policy_of(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {
        part.split(" ", 1)[0]: part.split(" ", 1)[1]
        for part in (p.strip() for p in header.split(";"))
        if part
    }


def assert_locked_down(response, label: str) -> None:
    policy = policy_of(response)
    for directive, value in CSP_DIRECTIVES.items():
        assert policy.get(directive) == value, (label, directive, policy)
    assert "unsafe-inline" not in response["Content-Security-Policy"], label
    assert "unsafe-eval" not in response["Content-Security-Policy"], label
    if label != "static file":  # WhiteNoise answers before the app's header middleware
        permissions = response["Permissions-Policy"]
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
            assert feature in permissions, (label, feature)
    if "text/html" in response.get("Content-Type", ""):
        body = response.content.decode()
        # Nothing inline for the policy to refuse: no <script> without src, no <style>, no
        # on*= handlers, no style= attributes, no htmx code evaluated from attributes.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), label
        assert "<style" not in body, label
        assert not re.search(r"\son[a-z]+\s*=", body), label
        assert not re.search(r"\sstyle\s*=", body), label
        assert "hx-on" not in body and "js:" not in body, label
