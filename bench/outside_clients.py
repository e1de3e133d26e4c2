"""Run a public QuickBooks client library's own tests, written for Intuit's sandbox, against qbo_sandbox.

Issue 15 item 3: the sandbox checked from the outside. The library is node-quickbooks (MIT-style
ISC licence, pinned below); its npm package ships its mocha tests (test/*.js). This script is a
developer's tool, not part of the product or of `make test`: when run, it fetches the package from
the npm registry with `npm pack` and its test dependencies with `npm install` into a temporary
directory (nothing of theirs is committed), starts `qbo-sandbox serve` on a free port, creates a
realm from the `sample-us` seed with tokens for the built-in development app, and runs their tests
unchanged. The only things written for them are the files a developer fills in for Intuit's
sandbox: config.js (token, realm), the endpoint (QuickBooks.V3_ENDPOINT_BASE_URL, set by a mocha
--require file instead of Intuit's host) and build/query.txt and build/report.txt, the lists of
entities and reports their test/index.js iterates (generated from the library's find*/report*
methods; the upstream repository generates them at build time and the package leaves them out).

test/charge.js is not run: it tests Intuit's Payments API (card charges), which is not the
Accounting API the sandbox serves, and would go to Intuit's real host.

    .venv/bin/python bench/outside_clients.py [--json bench/results/outside_clients.json] [--keep]

Their tests assert inside HTTP callbacks, so a failing test usually shows as mocha's timeout (15-30 s
each) rather than the assertion: a run with many failures takes many minutes.

Needs node and npm. Prints pass/fail counts and every failure; exit status 0 even when some fail
(the counts are the result; docs/sandbox.md "Outside clients" records them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PACKAGE = "node-quickbooks@2.0.50"
TEST_FILES = ["test/index.js", "test/batch.js", "test/cdc.js"]
# cdc.js requires moment, which the package's devDependencies leave out.
EXTRA_NPM = ["moment@2"]

SETUP_JS = """// Written by bench/outside_clients.py: point the library at the local sandbox.
var QuickBooks = require('./index');
QuickBooks.V3_ENDPOINT_BASE_URL = process.env.QBO_SANDBOX_V3;
"""

LISTS_JS = """// Written by bench/outside_clients.py: build/query.txt and build/report.txt from its methods.
var fs = require('fs'), os = require('os');
var QuickBooks = require('./index'), p = QuickBooks.prototype;
var entities = [], reports = [];
Object.keys(p).forEach(function (k) {
  if (/^find[A-Z]/.test(k)) {
    var plural = k.slice(4);
    var tries = [plural.replace(/s$/, ''), plural.replace(/ies$/, 'y'), plural.replace(/es$/, '')];
    var single = tries.find(function (s) { return p.pluralize(p.capitalize(s)) === plural; });
    if (single) entities.push(single.charAt(0).toLowerCase() + single.slice(1));
  } else if (/^report[A-Z]/.test(k)) {
    reports.push(k.slice(6));
  }
});
fs.mkdirSync('build', {recursive: true});
fs.writeFileSync('build/query.txt', entities.join(os.EOL));
fs.writeFileSync('build/report.txt', reports.join(os.EOL));
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=3600)


def must(cmd: list[str], cwd: Path) -> str:
    done = run(cmd, cwd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_library(work: Path) -> Path:
    tarball = must(["npm", "pack", PACKAGE, "--silent"], work).strip().splitlines()[-1]
    must(["tar", "xzf", tarball], work)
    pkg = work / "package"
    manifest = json.loads((pkg / "package.json").read_text())
    runtime = manifest.get("dependencies", {})
    # The library as its users get it (its dependencies), plus its test tools. A devDependency that
    # pins another version of a runtime dependency is left out: bluebird 2.9.25 in devDependencies
    # over 3.3.4 in dependencies makes every find* resolve to [body, response] and fail before any
    # request matters.
    wanted = [f"{n}@{v}" for n, v in runtime.items()]
    wanted += [f"{n}@{v}" for n, v in manifest.get("devDependencies", {}).items() if n not in runtime]
    # Installed in a directory of their own and found through NODE_PATH: npm install in the package
    # would let the devDependencies win (and --omit=dev then drops bluebird altogether).
    (work / "tools").mkdir()
    (work / "tools" / "package.json").write_text('{"name": "outside-clients-tools", "private": true}')
    must(["npm", "install", "--no-audit", "--no-fund", "--silent", *wanted, *EXTRA_NPM], work / "tools")
    return pkg


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qbo_sandbox.cli", "serve", "--port", str(port), "--no-throttle"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("qbo-sandbox did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None, help="write the counts and failures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install nodejs npm)")
    work = Path(tempfile.mkdtemp(prefix="outside-clients-"))
    port = free_port()
    sandbox = start_sandbox(port)
    try:
        pkg = fetch_library(work)
        base = f"http://127.0.0.1:{port}"
        realm = httpx.post(f"{base}/_sandbox/realms", json={"seed": "sample-us"}).json()["realm_id"]
        tokens = httpx.post(f"{base}/_sandbox/tokens", json={"realm_id": realm}).json()
        config = {
            "consumerKey": tokens.get("client_id", ""),
            "consumerSecret": "",
            "token": tokens["access_token"],
            "tokenSecret": False,
            "realmId": realm,
            "useSandbox": True,
            "debug": False,
            "testEmail": "outside-clients@example.com",
            "minorversion": 75,
            "oauthversion": "2.0",
            "refreshToken": tokens["refresh_token"],
        }
        (pkg / "config.js").write_text("module.exports = " + json.dumps(config, indent=2) + "\n")
        (pkg / "sandbox-endpoint.js").write_text(SETUP_JS)
        (pkg / "make-lists.js").write_text(LISTS_JS)
        run_env = {**os.environ, "NODE_PATH": str(work / "tools" / "node_modules")}
        done = run(["node", "make-lists.js"], pkg, run_env)
        if done.returncode != 0:
            raise SystemExit(f"make-lists.js failed:\n{done.stderr}")
        tools = work / "tools" / "node_modules"
        env = {**os.environ, "QBO_SANDBOX_V3": f"{base}/v3/company/", "NODE_PATH": str(tools)}
        mocha = [
            str(tools / ".bin" / "mocha"),
            "--exit",
            "--require",
            "./sandbox-endpoint.js",
            "--reporter",
            "json",
            "--reporter-option",
            "output=mocha.json",
            *TEST_FILES,
        ]
        started = time.monotonic()
        done = run(mocha, pkg, env)
        seconds = time.monotonic() - started
        report_file = pkg / "mocha.json"
        if not report_file.exists():
            raise SystemExit(f"mocha wrote no report:\n{done.stdout}\n{done.stderr}")
        report = json.loads(report_file.read_text())
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    stats = report["stats"]
    failures = [
        {"test": f["fullTitle"], "error": f["err"].get("message", "")[:300]} for f in report["failures"]
    ]
    result = {
        "library": PACKAGE,
        "files": TEST_FILES,
        "tests": stats["tests"],
        "passed": stats["passes"],
        "failed": stats["failures"],
        "pending": stats["pending"],
        "seconds": round(seconds, 1),
        "failures": failures,
    }
    print(f"{PACKAGE} {' '.join(TEST_FILES)} against qbo_sandbox: ", end="")
    print(f"{result['passed']} passed, {result['failed']} failed ({result['tests']} tests, {seconds:.0f} s)")
    for failure in failures:
        print(f"  FAIL {failure['test']}: {failure['error']}")
    if args.keep:
        print(f"kept {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
