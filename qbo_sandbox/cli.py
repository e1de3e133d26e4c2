"""`qbo-sandbox` command: run the sandbox, or talk to a running one's control plane."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import sys
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8765"


def _print(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _call(url: str, method: str, path: str, body: Any = None) -> Any:
    try:
        token = os.environ.get("QBO_SANDBOX_CONTROL_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = httpx.request(method, url.rstrip("/") + path, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise SystemExit(f"qbo-sandbox: cannot reach {url}: {exc}") from exc
    if resp.status_code >= 400:
        raise SystemExit(f"qbo-sandbox: {method} {path} -> {resp.status_code} {resp.text}")
    return resp.json()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from qbo_sandbox.app import create_app
    from qbo_sandbox.config import SandboxConfig

    config = SandboxConfig()
    if args.no_throttle:
        config.throttling_enabled = False
    if args.public_url:
        config.public_base_url = args.public_url
    token = args.control_token or os.environ.get("QBO_SANDBOX_CONTROL_TOKEN") or None
    if token is None and not _loopback(args.host):
        # Beyond loopback anyone on the network could reset realms or mint tokens: require a secret.
        token = secrets.token_urlsafe(24)
        sys.stderr.write(
            f"qbo-sandbox: listening on {args.host}; the control plane (/_sandbox/) needs\n"
            f"  Authorization: Bearer {token}\n"
            f"  (export QBO_SANDBOX_CONTROL_TOKEN={token} for the qbo-sandbox commands)\n"
        )
    app = create_app(config, args.state, control_token=token)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qbo-sandbox", description="A local QuickBooks Online API v3.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the sandbox server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--state", default=None, help="snapshot file: loaded at start, saved while running")
    serve.add_argument("--no-throttle", action="store_true", help="disable QBO's rate limits")
    serve.add_argument("--public-url", default=None, help="base URL the OAuth pages advertise")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--control-token",
        default=None,
        help="secret the /_sandbox/ control plane requires (default: $QBO_SANDBOX_CONTROL_TOKEN; "
        "generated and printed when --host is not a loopback address)",
    )

    url_default = os.environ.get("QBO_SANDBOX_URL", DEFAULT_URL)

    realm = sub.add_parser("realm", help="manage realms (companies)")
    realm_sub = realm.add_subparsers(dest="action", required=True)
    create = realm_sub.add_parser("create")
    create.add_argument("--seed", default="empty", choices=["empty", "sample-us"])
    create.add_argument("--name", default=None)
    create.add_argument("--url", default=url_default)
    lst = realm_sub.add_parser("list")
    lst.add_argument("--url", default=url_default)

    app = sub.add_parser("app", help="register OAuth apps")
    app_sub = app.add_subparsers(dest="action", required=True)
    app_create = app_sub.add_parser("create")
    app_create.add_argument("--redirect-uri", action="append", default=[])
    app_create.add_argument("--webhook-url", default=None)
    app_create.add_argument("--verifier-token", default=None)
    app_create.add_argument("--name", default="")
    app_create.add_argument(
        "--webhook-format",
        choices=["cloudevents", "legacy"],
        default=None,
        help="payload format of webhook notifications (default cloudevents)",
    )
    app_create.add_argument(
        "--webhook-entities",
        action="append",
        default=None,
        metavar="ENTITY[,ENTITY...]",
        help="only notify about these entities, e.g. Customer,Invoice (default: all); repeatable",
    )
    app_create.add_argument("--client-id", default=None, help="register with this id, or update that app")
    app_create.add_argument("--url", default=url_default)

    token = sub.add_parser("token", help="issue OAuth tokens for a realm without the consent flow")
    token.add_argument("--realm", required=True)
    token.add_argument("--client-id", default=None, help="defaults to the built-in development app")
    token.add_argument("--url", default=url_default)
    fault = sub.add_parser("fault", help="inject a failure into a realm's next API calls")
    fault.add_argument("--realm", required=True)
    fault.add_argument(
        "--kind",
        required=True,
        help="429, 500, 500_json, 502, 503, 504, timeout, drop, fault_200, revoke, 401, 401_xml, 403; "
        "one batch item: item_fault, item_500, item_unanswered (with --item or --bid)",
    )
    fault.add_argument("--count", type=int, default=1)
    for name in ("method", "path", "entity", "operation", "code"):
        fault.add_argument(f"--{name}", default=None)
    fault.add_argument("--seconds", type=float, default=None)
    fault.add_argument("--item", type=int, default=None, help="batch item position, 1 = first")
    fault.add_argument("--bid", default=None, help="batch item bId")
    fault.add_argument(
        "--committed",
        action="store_true",
        default=None,
        help="item_500/item_unanswered: the write still happens, only its answer is lost",
    )
    fault.add_argument("--detail", default=None, help="item_fault: the Fault's Detail text")
    fault.add_argument("--url", default=url_default)

    merge = sub.add_parser(
        "merge", help="merge two customers, vendors, employees, items, accounts or classes (QBO's UI)"
    )
    merge.add_argument("--realm", required=True)
    merge.add_argument("--entity", default="Customer", help="default Customer")
    merge.add_argument("--from", dest="from_id", required=True, help="Id of the record merged away")
    merge.add_argument("--into", dest="into_id", required=True, help="Id of the record kept")
    merge.add_argument("--url", default=url_default)

    counters = sub.add_parser("counters", help="a realm's request counters")
    counters.add_argument("--realm", required=True)
    counters.add_argument("--url", default=url_default)

    config = sub.add_parser("config", help="show or change the running sandbox's knobs")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    config.add_argument("--url", default=url_default)
    return parser


def _config_values(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"qbo-sandbox: --set wants KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "realm" and args.action == "create":
        body: dict[str, Any] = {"seed": args.seed}
        if args.name:
            body["name"] = args.name
        _print(_call(args.url, "POST", "/_sandbox/realms", body))
    elif args.command == "realm" and args.action == "list":
        _print(_call(args.url, "GET", "/_sandbox/realms"))
    elif args.command == "app":
        app_body: dict[str, Any] = {
            "redirect_uris": args.redirect_uri,
            "webhook_url": args.webhook_url,
            "verifier_token": args.verifier_token,
            "name": args.name,
        }
        if args.client_id:
            app_body["client_id"] = args.client_id
        if args.webhook_format:
            app_body["webhook_format"] = args.webhook_format
        if args.webhook_entities is not None:
            app_body["webhook_entities"] = [
                name.strip() for value in args.webhook_entities for name in value.split(",") if name.strip()
            ]
        data = _call(args.url, "POST", "/_sandbox/apps", app_body)
        _print({"client_id": data["client_id"], "client_secret": data["client_secret"], **data})
    elif args.command == "fault":
        spec = {
            k: getattr(args, k)
            for k in (
                "kind",
                "count",
                "method",
                "path",
                "entity",
                "operation",
                "code",
                "seconds",
                "item",
                "bid",
                "committed",
                "detail",
            )
        }
        _print(
            _call(
                args.url,
                "POST",
                f"/_sandbox/realms/{args.realm}/faults",
                {k: v for k, v in spec.items() if v is not None},
            )
        )
    elif args.command == "merge":
        body = {"entity": args.entity, "from_id": args.from_id, "into_id": args.into_id}
        _print(_call(args.url, "POST", f"/_sandbox/realms/{args.realm}/merge", body))
    elif args.command == "counters":
        _print(_call(args.url, "GET", f"/_sandbox/realms/{args.realm}/counters"))
    elif args.command == "config":
        if args.set:
            _print(_call(args.url, "POST", "/_sandbox/config", _config_values(args.set)))
        else:
            _print(_call(args.url, "GET", "/_sandbox/config"))
    elif args.command == "token":
        body = {"realm_id": args.realm}
        if args.client_id:
            body["client_id"] = args.client_id
        data = _call(args.url, "POST", "/_sandbox/tokens", body)
        _print(data)


if __name__ == "__main__":
    main()
