"""`POST /webhooks/quickbooks/`: Intuit's change notifications (practice/quickbooks/sync/webhooks.py).

No sign-in and no CSRF token: Intuit's servers call it, and the `intuit-signature` HMAC is what
proves a delivery came from Intuit. Checks run cheapest first and before anything is stored:

- 405 for anything but POST;
- 503 when no verifier token is configured: the app cannot tell Intuit from anyone else, which
  is the server's state, not the sender's fault; Intuit keeps retrying (every 6 h, it never gives
  up), so what it sent arrives once the token is set;
- 413 when the body is over QBO_WEBHOOK_MAX_BODY_BYTES (by Content-Length before reading it; a
  chunked body is read up to one byte past the limit, never further);
- 403 for a missing or wrong signature: 401 would promise an HTTP authentication scheme to retry
  with (RFC 9110 asks for a WWW-Authenticate challenge), and Intuit's own sample receiver answers 403;
- 400 for a signed body that is not JSON or neither of Intuit's two formats;
- else 200, after storing the notices and enqueueing their check (no QBO call here: Intuit wants
  the answer within 3 seconds).

Each refusal is one log line with its reason (Django's own "Forbidden: ..." line is suppressed so
it is not logged twice), never a traceback.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from practice.quickbooks.sync import webhooks

log = logging.getLogger("practice.quickbooks.webhooks")


def _refuse(
    request: HttpRequest, status: int, reason: str, message: str, *, level: int = logging.WARNING
) -> HttpResponse:
    log.log(
        level,
        "qbo.webhook.refused status=%d reason=%s path=%s content_length=%s",
        status,
        reason,
        request.path,
        request.META.get("CONTENT_LENGTH") or "-",
    )
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    response._has_been_logged = True  # type: ignore[attr-defined]  # our line above is the log
    return response


@csrf_exempt
def quickbooks_webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = _refuse(request, 405, "method", "Use POST.")
        response["Allow"] = "POST"
        return response

    token = webhooks.verifier_token()
    if not token:
        return _refuse(
            request,
            503,
            "no_verifier_token",
            "Webhooks are not configured (QBO_WEBHOOK_VERIFIER_TOKEN is not set).",
            level=logging.ERROR,
        )

    limit = webhooks.max_body_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _refuse(request, 400, "bad_content_length", "Unreadable Content-Length.")
    if declared > limit:
        return _refuse(request, 413, "too_large", f"The body is over {limit} bytes.")
    try:
        # Bounded read: never more than one byte past the limit, whatever the client sends.
        if not declared and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # No Content-Length: Django would read nothing, and a real delivery would fail its
            # signature. gunicorn hands the de-chunked body to the app as wsgi.input.
            body = request.META["wsgi.input"].read(limit + 1)
        else:
            body = request.read(limit + 1)
    except (OSError, KeyError):
        return _refuse(request, 400, "unreadable_body", "The body could not be read.")
    if len(body) > limit:
        return _refuse(request, 413, "too_large", f"The body is over {limit} bytes.")

    signature = request.headers.get("intuit-signature")
    if not signature:
        return _refuse(request, 403, "missing_signature", "Missing intuit-signature header.")
    if not webhooks.signature_valid(body, signature, token):
        return _refuse(request, 403, "bad_signature", "The intuit-signature does not match the body.")

    try:
        received = webhooks.receive(body)
    except webhooks.MalformedDelivery as exc:
        return _refuse(request, 400, "malformed", f"Not a QuickBooks webhook delivery: {exc}.")

    log.info(
        "qbo.webhook.received events=%d skipped=%d stored=%d connections=%s",
        received.events,
        received.skipped,
        received.stored,
        ",".join(map(str, received.connections)) or "-",
    )
    return JsonResponse({"events": received.events, "skipped": received.skipped, "stored": received.stored})
