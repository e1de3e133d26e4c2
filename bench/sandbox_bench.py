"""Throughput of qbo_sandbox: reads, creates, queries and batches per second.

The sandbox runs in a subprocess (limits off); this process generates load over keep-alive HTTP/1.1
connections with a minimal asyncio client, so the client costs little next to the server.

    .venv/bin/python bench/sandbox_bench.py [--seconds 3] [--connections 8]

Writes bench/results/sandbox-<UTC timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Conn:
    """One keep-alive HTTP/1.1 connection; requests are sent one at a time."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = "application/json"
    ) -> int:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}"
        if body:
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


Maker = Callable[[int], tuple[str, str, bytes]]


async def run_load(host: str, port: int, token: str, make: Maker, seconds: float, connections: int) -> dict:
    counter = itertools.count()
    done = 0
    errors = 0
    latencies: list[float] = []
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done, errors
        conn = Conn(host, port, token)
        await conn.open()
        while time.perf_counter() < stop_at:
            method, path, body = make(next(counter))
            t0 = time.perf_counter()
            status = await conn.request(method, path, body)
            latencies.append(time.perf_counter() - t0)
            done += 1
            if status != 200:
                errors += 1
        assert conn.writer is not None
        conn.writer.close()

    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "req_per_s": round(done / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--customers", type=int, default=1000, help="customers bulk-loaded before queries")
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "qbo_sandbox.cli", "serve", "--port", str(port), "--no-throttle"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_sandbox/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        realm = httpx.post(f"{base}/_sandbox/realms", json={"seed": "sample-us"}).json()["realm_id"]
        token = httpx.post(f"{base}/_sandbox/tokens", json={"realm_id": realm}).json()["access_token"]
        bulk = [{"DisplayName": f"Bench Customer {i:05d}"} for i in range(args.customers)]
        httpx.post(f"{base}/_sandbox/realms/{realm}/bulk/Customer", json=bulk, timeout=120)
        prefix = f"/v3/company/{realm}"
        mv = "minorversion=75"
        q_eq = quote("select * from Customer where DisplayName = 'Bench Customer 00500'")
        q_like = quote("select * from Customer where DisplayName like '%00500'")
        q_page = quote("select * from Customer orderby DisplayName startposition 1 maxresults 10")

        def batch_body(n: int) -> bytes:
            items = [
                {"bId": str(i), "operation": "create", "Customer": {"DisplayName": f"Batch {n}-{i}"}}
                for i in range(30)
            ]
            return json.dumps({"BatchItemRequest": items}).encode()

        scenarios: dict[str, Maker] = {
            "read customer": lambda n: ("GET", f"{prefix}/customer/{n % 29 + 1}?{mv}", b""),
            "read invoice": lambda n: ("GET", f"{prefix}/invoice/130?{mv}", b""),
            f"query = ({args.customers + 29} customers)": lambda n: (
                "GET",
                f"{prefix}/query?query={q_eq}&{mv}",
                b"",
            ),
            "query orderby page of 10": lambda n: ("GET", f"{prefix}/query?query={q_page}&{mv}", b""),
            "query LIKE (full scan)": lambda n: ("GET", f"{prefix}/query?query={q_like}&{mv}", b""),
            "create customer": lambda n: (
                "POST",
                f"{prefix}/customer?{mv}",
                json.dumps({"DisplayName": f"Created {n}"}).encode(),
            ),
            "create invoice": lambda n: (
                "POST",
                f"{prefix}/invoice?{mv}",
                json.dumps(
                    {
                        "CustomerRef": {"value": "1"},
                        "Line": [
                            {
                                "DetailType": "SalesItemLineDetail",
                                "Amount": 10,
                                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                            }
                        ],
                    }
                ).encode(),
            ),
            "batch 30 creates": lambda n: ("POST", f"{prefix}/batch?{mv}", batch_body(n)),
        }
        # Queries run before the create scenarios so they see the same table size on every run.
        results = {}
        for name, make in scenarios.items():
            results[name] = asyncio.run(
                run_load("127.0.0.1", port, token, make, args.seconds, args.connections)
            )
        results["batch 30 creates"]["items_per_s"] = round(results["batch 30 creates"]["req_per_s"] * 30, 1)
    finally:
        server.terminate()
        server.wait(10)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {
        "benchmark": "qbo_sandbox throughput",
        "at": stamp,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "seconds_per_scenario": args.seconds,
        "results": results,
    }
    path = ROOT / "bench" / "results" / f"sandbox-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'scenario':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        extra = f"  ({r['items_per_s']} items/s)" if "items_per_s" in r else ""
        print(f"{name:36} {r['req_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>7}{extra}")
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
