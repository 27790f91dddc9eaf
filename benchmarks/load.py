"""Load test of the REST API: N concurrent uploads to a real server on 127.0.0.1, with its memory.

    python benchmarks/load.py                       # starts `facepoints serve`: 200 requests at once, 10 heavy
    python benchmarks/load.py --requests 400 --concurrency 200 --heavy 40
    python benchmarks/load.py --url http://127.0.0.1:8000   # an already running local server

Bounded by design: a fixed number of requests, a per-request timeout and an
overall deadline, loopback addresses only. Every request uploads the sample
photo to POST /v1/landmarks, except ``--heavy`` of them, spread through the
run, which upload the sample blown up 12 times as a 16-bit PNG (6144 x 6144,
37.7 megapixels in 438 KB: the kind of file that used to cost a gigabyte).
Each must come back 200 with as many faces as the server finds in that photo sent alone (asked once before the
load); anything else counts as an error.
The server's resident memory is read from /healthz during the run: its peak
must stay under the ceiling (the idle server plus its decode and body
budgets, plus 128 MB; or --rss-ceiling-mb). Prints a summary (the last line
is JSON) and, unless --no-write, writes benchmarks/results/load.md and
load.json. Exits 1 on any error or when the ceiling is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.serve import serve_in_background

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOOPBACK = ("127.", "localhost", "[::1]", "::1")
MB = 1024 * 1024
SLACK = 128 * MB  # allocator and interpreter overhead beyond the budgets
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown, provenance


def heavy_photo(scale: int = 12) -> bytes:
    """The sample photo as 16-bit grey PNG, each pixel a scale x scale block: tiny file, huge decode."""
    grey = np.asarray(Image.open(sample_image_path()).convert("L")).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(np.kron(grey, np.ones((scale, scale), np.uint16))).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with few samples it reports a latency that really happened."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def one(client: httpx.AsyncClient, url: str, data: bytes, gate: asyncio.Semaphore,
              want: int) -> tuple[float, str | None]:
    """One upload; ``want`` is the number of faces the server returns for it alone: under load it must agree."""
    async with gate:
        t = time.perf_counter()
        try:
            r = await client.post(f"{url}/v1/landmarks", files={"image": ("photo", data, "application/octet-stream")})
            elapsed = time.perf_counter() - t
            if r.status_code != 200:
                return elapsed, f"HTTP {r.status_code}: {r.text[:200]}"
            if len(r.json()["faces"]) != want:
                return elapsed, f"expected {want} faces (as for this photo alone), got {len(r.json()['faces'])}"
            return elapsed, None
        except (httpx.HTTPError, ValueError, KeyError) as e:
            return time.perf_counter() - t, f"{type(e).__name__}: {e}"


async def health(client: httpx.AsyncClient, url: str) -> dict:
    try:
        return (await client.get(f"{url}/healthz", timeout=10)).json()
    except (httpx.HTTPError, ValueError):
        return {}


async def watch_memory(client: httpx.AsyncClient, url: str, seen: list[int], every: float = 0.2) -> None:
    """Sample the server's RSS until cancelled (its own peak counter is read at the end as well)."""
    while True:
        rss = (await health(client, url)).get("memory", {}).get("rss_bytes")
        if rss:
            seen.append(rss)
        await asyncio.sleep(every)


def mix(requests: int, heavy: int, small: bytes, big: bytes) -> list[bytes]:
    """Heavy uploads spread evenly through the run, not all at its start."""
    step = requests / heavy if heavy else 0
    heavy_at = {int(i * step) for i in range(heavy)}
    return [big if i in heavy_at else small for i in range(requests)]


async def run_load(url: str, requests: int, concurrency: int, heavy: int, timeout: float, deadline: float,
                   ceiling_mb: float | None) -> dict:
    data = sample_image_path().read_bytes()
    uploads = mix(requests, heavy, data, heavy_photo() if heavy else data)
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        alone = []  # one request at a time first: the latency without queueing, to read the loaded figures against
        for _ in range(4):
            t = time.perf_counter()
            warm = await client.post(f"{url}/v1/landmarks", files={"image": ("a.jpg", data, "image/jpeg")})
            warm.raise_for_status()
            alone.append(time.perf_counter() - t)
        want = {}
        for upload in {id(u): u for u in uploads}.values():
            alone_answer = await client.post(f"{url}/v1/landmarks",
                                             files={"image": ("photo", upload, "application/octet-stream")})
            alone_answer.raise_for_status()
            want[id(upload)] = len(alone_answer.json()["faces"])
        idle = await health(client, url)
        load_before = round(os.getloadavg()[0], 2)
        seen: list[int] = []
        watcher = asyncio.create_task(watch_memory(client, url, seen))
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(one(client, url, d, gate, want[id(d)])) for d in uploads]
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - t0
        watcher.cancel()
        await asyncio.sleep(1.0)  # the last jobs hand their memory back
        after = await health(client, url)
    results = [t.result() for t in done]
    latencies = [lat for lat, err in results if err is None]
    errors = [err for _, err in results if err is not None] + ["not finished by the deadline"] * len(pending)
    return {
        "url": url,
        "requests": requests,
        "heavy": heavy,
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
        **memory_summary(idle, after, seen, ceiling_mb),
    }


def memory_summary(idle: dict, after: dict, seen: list[int], ceiling_mb: float | None) -> dict:
    """RSS before, at peak and after the run, against the ceiling the service's budgets imply."""
    mem_idle, mem_after = idle.get("memory") or {}, after.get("memory") or {}
    if not mem_idle or not mem_after:
        return {"idle_rss_mb": None, "peak_rss_mb": None, "rss_after_mb": None, "rss_ceiling_mb": ceiling_mb,
                "within_ceiling": None}
    peak = max([mem_after["peak_rss_bytes"], *seen])
    lim = idle.get("limits", {})
    if ceiling_mb is None:
        budgets = lim.get("decode_budget_bytes", 0) + lim.get("body_budget_bytes", 0)
        ceiling_mb = round((mem_idle["rss_bytes"] + budgets + SLACK) / MB)
    return {"idle_rss_mb": round(mem_idle["rss_bytes"] / MB), "peak_rss_mb": round(peak / MB),
            "rss_after_mb": round(mem_after["rss_bytes"] / MB), "rss_ceiling_mb": ceiling_mb,
            "decode_budget_peak_mb": round(mem_after.get("decode_budget_peak", 0) / MB),
            "within_ceiling": peak / MB <= ceiling_mb, "limits": lim}


def write_results(summary: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(command)
    (out / "load.json").write_text(json.dumps({**summary, "provenance": prov}, indent=1) + "\n", encoding="utf-8")
    s = summary
    intro = (f"{s['requests']} uploads to `POST /v1/landmarks`, {s['concurrency']} in flight at once, against "
             "`facepoints serve` (uvicorn, default limits) on 127.0.0.1: the 512 x 512 sample photo, and "
             f"{s['heavy']} times, spread through the run, the sample blown up to a 6144 x 6144 16-bit PNG "
             "(37.7 megapixels in 438 KB, decoded reduced).")
    row = (f"| {s['requests']} ({s['heavy']} heavy) | {s['concurrency']} | {s['ok']} | {s['errors']} | "
           f"{s['requests_per_s']} | {s['latency_p50_ms']} ms | {s['latency_p99_ms']} ms | "
           f"{s['idle_rss_mb']} MB | {s['peak_rss_mb']} MB | {s['rss_after_mb']} MB | {s['rss_ceiling_mb']} MB |")
    notes = (f"One small request alone took {s['single_request_ms']} ms (median of 3, before the load). Latency "
             "counts from sending a request to its answer, so with every request sent at once it is mostly "
             "queueing. Throughput is bounded by the CPU (the face detector takes most of a request), not by "
             "the server. Memory is the server process's resident set: idle after warm-up, its peak (the kernel's "
             "high-water mark, and /healthz sampled every 0.2 s), and one second after the run. The ceiling is the "
             "idle server plus the decode and body budgets plus 128 MB; the run fails above it.")
    machine = (f"The 1-minute load average was {s['load_average_before']} just before the run; above "
               f"{os.cpu_count()}, other processes were sharing the cores and an idle machine does better.")
    lines = ["# REST API under load", "", intro, "",
             ("| requests | concurrent | ok | errors | requests/s | p50 latency | p99 latency | idle RSS | peak RSS "
             "| RSS after | RSS ceiling |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", row, "", notes, "", machine, "",
             markdown(prov)]
    (out / "load.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="A running local server; default: start `facepoints serve` on a free port.")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--heavy", type=int, default=10, help="How many of the requests upload the 37.7-megapixel PNG.")
    ap.add_argument("--rss-ceiling-mb", type=float, help="Fail above this peak RSS; default: from the budgets.")
    ap.add_argument("--timeout", type=float, default=300.0, help="Per request, seconds.")
    ap.add_argument("--deadline", type=float, default=900.0, help="For the whole run, seconds.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true", help="Print only; do not write benchmarks/results/load.*.")
    args = ap.parse_args()
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 1_000 or not 0 <= args.heavy <= args.requests:
        ap.error("--requests must be 1..10000, --concurrency 1..1000 and --heavy 0..requests")
    if args.url and not (urlparse(args.url).hostname or "").startswith(LOOPBACK):
        ap.error("--url must be a loopback address (127.0.0.1, localhost, [::1]): this is a load test")

    server = nullcontext(args.url.rstrip("/")) if args.url else serve_in_background()
    with server as url:
        summary = asyncio.run(run_load(url, args.requests, args.concurrency, args.heavy, args.timeout, args.deadline,
                                       args.rss_ceiling_mb))
    command = "python benchmarks/load.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--no-write" and not a.startswith("http"))
    print(f"{summary['ok']}/{summary['requests']} ok, {summary['errors']} errors, "
          f"{summary['requests_per_s']} requests/s, p50 {summary['latency_p50_ms']} ms, "
          f"p99 {summary['latency_p99_ms']} ms; one request alone {summary['single_request_ms']} ms; RSS idle "
          f"{summary['idle_rss_mb']} MB, peak {summary['peak_rss_mb']} MB, after {summary['rss_after_mb']} MB "
          f"(ceiling {summary['rss_ceiling_mb']} MB)")
    for err in summary["error_examples"]:
        print(f"  error: {err}")
    if not args.no_write:
        write_results(summary, args.out, command)
    print(json.dumps(summary))
    sys.exit(1 if summary["errors"] or summary["within_ceiling"] is False else 0)


if __name__ == "__main__":
    main()
