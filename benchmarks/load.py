"""Load test of the REST API: N concurrent uploads to a real server on 127.0.0.1.

    python benchmarks/load.py                       # starts `facepoints serve`, 200 requests all at once
    python benchmarks/load.py --requests 400 --concurrency 200
    python benchmarks/load.py --url http://127.0.0.1:8000   # an already running local server

Bounded by design: a fixed number of requests, a per-request timeout and an
overall deadline, loopback addresses only. Every request uploads the sample
photo to POST /v1/landmarks and must come back 200 with one face; anything else
counts as an error. Prints a summary (the last line is JSON) and, unless
--no-write, writes benchmarks/results/load.md and load.json. Exits 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlparse

import httpx

from facepoints.cli import sample_image_path
from facepoints.serve import serve_in_background

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with few samples it reports a latency that really happened."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def one(client: httpx.AsyncClient, url: str, data: bytes, gate: asyncio.Semaphore) -> tuple[float, str | None]:
    async with gate:
        t = time.perf_counter()
        try:
            r = await client.post(f"{url}/v1/landmarks", files={"image": ("astronaut.jpg", data, "image/jpeg")})
            elapsed = time.perf_counter() - t
            if r.status_code != 200:
                return elapsed, f"HTTP {r.status_code}: {r.text[:200]}"
            if len(r.json()["faces"]) != 1:
                return elapsed, f"expected 1 face, got {len(r.json()['faces'])}"
            return elapsed, None
        except (httpx.HTTPError, ValueError, KeyError) as e:
            return time.perf_counter() - t, f"{type(e).__name__}: {e}"


async def run_load(url: str, requests: int, concurrency: int, timeout: float, deadline: float) -> dict:
    data = sample_image_path().read_bytes()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        alone = []  # one request at a time first: the latency without queueing, to read the loaded figures against
        for _ in range(4):
            t = time.perf_counter()
            warm = await client.post(f"{url}/v1/landmarks", files={"image": ("a.jpg", data, "image/jpeg")})
            warm.raise_for_status()
            alone.append(time.perf_counter() - t)
        load_before = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(one(client, url, data, gate)) for _ in range(requests)]
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - t0
    results = [t.result() for t in done]
    latencies = [lat for lat, err in results if err is None]
    errors = [err for _, err in results if err is not None] + ["not finished by the deadline"] * len(pending)
    return {
        "url": url,
        "requests": requests,
        "concurrency": concurrency,
        "ok": len(latencies),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2) if wall > 0 else 0.0,
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "single_request_ms": round(statistics.median(alone[1:]) * 1000, 1),
        "load_average_before": load_before,
    }


def write_results(summary: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": command, "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}
    (out / "load.json").write_text(json.dumps({**summary, **meta}, indent=1) + "\n", encoding="utf-8")
    intro = (f"`{command}` on {meta['cpus']} CPU cores ({meta['date']}): {summary['requests']} uploads of the "
             f"512 x 512 sample photo to `POST /v1/landmarks`, {summary['concurrency']} in flight at once, against "
             "`facepoints serve` (uvicorn, default limits: 2 CPU jobs at once) on 127.0.0.1.")
    row = (f"| {summary['requests']} | {summary['concurrency']} | {summary['ok']} | {summary['errors']} | "
           f"{summary['requests_per_s']} | {summary['latency_p50_ms']} ms | {summary['latency_p99_ms']} ms | "
           f"{summary['latency_max_ms']} ms |")
    notes = (f"One request alone took {summary['single_request_ms']} ms (median of 3, before the load). Latency "
             "counts from sending a request to its answer, so with every request sent at once it is mostly "
             "queueing: p50 is about half the run and p99 about the whole run. Throughput is bounded by the CPU "
             "(the Haar face detector takes most of a request, the landmark model a few ms), not by the server.")
    machine = (f"The 1-minute load average was {summary['load_average_before']} just before the run; above "
               f"{meta['cpus']}, other processes were sharing the cores and an idle machine does better.")
    lines = ["# REST API under load", "", intro, "",
             "| requests | concurrent | ok | errors | requests/s | p50 latency | p99 latency | max latency |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |", row, "", notes, "", machine]
    (out / "load.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="A running local server; default: start `facepoints serve` on a free port.")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=300.0, help="Per request, seconds.")
    ap.add_argument("--deadline", type=float, default=900.0, help="For the whole run, seconds.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true", help="Print only; do not write benchmarks/results/load.*.")
    args = ap.parse_args()
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 1_000:
        ap.error("--requests must be 1..10000 and --concurrency 1..1000")
    if args.url and not (urlparse(args.url).hostname or "").startswith(LOOPBACK):
        ap.error("--url must be a loopback address (127.0.0.1, localhost, [::1]): this is a load test")

    server = nullcontext(args.url.rstrip("/")) if args.url else serve_in_background()
    with server as url:
        summary = asyncio.run(run_load(url, args.requests, args.concurrency, args.timeout, args.deadline))
    command = "python benchmarks/load.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--no-write" and not a.startswith("http"))
    print(f"{summary['ok']}/{summary['requests']} ok, {summary['errors']} errors, "
          f"{summary['requests_per_s']} requests/s, p50 {summary['latency_p50_ms']} ms, "
          f"p99 {summary['latency_p99_ms']} ms; one request alone {summary['single_request_ms']} ms")
    for err in summary["error_examples"]:
        print(f"  error: {err}")
    if not args.no_write:
        write_results(summary, args.out, command)
    print(json.dumps(summary))
    sys.exit(1 if summary["errors"] else 0)


if __name__ == "__main__":
    main()
