#!/usr/bin/env python3
"""What Rill's /v1 adds on top of its provider: the same streamed chat completion asked of the
fake provider directly and through Rill's /v1/chat/completions (an API key, the budget's
reservation and settlement in the ledger, the proxying), at 1 and at 100 requests at once.

Run with the Python that scripts/install-tools.sh gives OpenAI's SDK (it brings httpx, or
httpx2 in newer releases):
    ~/.cache/rill/openai-sdk/bin/python scripts/bench-api.py [--rill target/release/rill]
Build first: cargo build --features ssr --bin rill && cargo build -p fake-provider (or --release
for both, and pass their paths). Everything listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time

try:
    import httpx
except ImportError:  # the SDK's HTTP client ships as `httpx2` in its newer releases
    import httpx2 as httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds} s")


async def one(client, url, headers, body):
    """One streamed completion read to its end: seconds to the first text and to the end."""
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, headers=headers, json=body) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {await response.aread()}")
        async for line in response.aiter_lines():
            if first is None and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


async def level(url, headers, body, concurrency, total):
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await one(client, url, headers, body)  # warm the connections' path
        queue = asyncio.Queue()
        for _ in range(total):
            queue.put_nowait(None)
        results = []

        async def worker():
            while not queue.empty():
                queue.get_nowait()
                results.append(await one(client, url, headers, body))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ends = sorted(r[1] for r in results)
    firsts = sorted(r[0] for r in results)

    def pct(values, p):
        return values[min(len(values) - 1, int(p * len(values)))] * 1000

    return {
        "requests": total,
        "per_second": round(total / wall, 1),
        "first_text_p50_ms": round(pct(firsts, 0.5), 2),
        "end_p50_ms": round(statistics.median(ends) * 1000, 2),
        "end_p95_ms": round(pct(ends, 0.95), 2),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default=os.path.join(ROOT, "target/debug/rill"))
    parser.add_argument("--fake", default=os.path.join(ROOT, "target/debug/fake-provider"))
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400, help="per level (c=1 runs a quarter)")
    args = parser.parse_args()

    fake_port, rill_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="rill-bench-api-")
    os.chmod(data, 0o700)
    os.makedirs(os.path.join(data, "site"))
    config = os.path.join(data, "rill.toml")
    with open(config, "w") as f:
        f.write('[prices."fake/fake-model"]\ninput = 1.0\noutput = 2.0\n')
    children = [
        subprocess.Popen(
            [args.fake, "--port", str(fake_port), "--tokens", str(args.tokens), "--delay-ms", "0"],
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        fake = f"http://127.0.0.1:{fake_port}"
        wait_for(f"{fake}/v1/models")
        env = dict(
            os.environ,
            LEPTOS_SITE_ADDR=f"127.0.0.1:{rill_port}",
            LEPTOS_SITE_ROOT=os.path.join(data, "site"),
            LEPTOS_OUTPUT_NAME="rill",
            RILL_DATABASE=os.path.join(data, "rill.db"),
            RILL_CONFIG=config,
            RILL_OPENAI_COMPAT_URL=f"{fake}/v1",
            RILL_OPENAI_COMPAT_NAME="fake",
            RILL_OPENAI_COMPAT_MODELS="fake-model",
            RILL_LOCAL_MODEL="off",
            RILL_TURNS_PER_MINUTE="1000000",
            RILL_MAX_RUNNING_PER_USER="1000",
            RUST_LOG="warn",
        )
        children.append(subprocess.Popen([args.rill], env=env, stdout=subprocess.DEVNULL))
        rill = f"http://127.0.0.1:{rill_port}"
        wait_for(f"{rill}/healthz")
        made = httpx.post(
            f"{rill}/api/create_api_key", json={"key": {"name": "bench"}}, timeout=10
        ).json()
        key = made["key"]
        question = [{"role": "user", "content": "Tell me about rivers."}]
        direct = (f"{fake}/v1/chat/completions", {}, {"model": "fake-model", "stream": True, "messages": question})
        through = (
            f"{rill}/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
            {"model": "fake/fake-model", "stream": True, "messages": question},
        )
        figures = {}
        for concurrency in (1, 100):
            total = args.requests if concurrency > 1 else max(1, args.requests // 4)
            for name, (url, headers, body) in (("provider", direct), ("rill_v1", through)):
                figures[f"c={concurrency} {name}"] = asyncio.run(
                    level(url, headers, body, concurrency, total)
                )
        for name, row in figures.items():
            print(f"{name:18} {json.dumps(row)}")
        for concurrency in (1, 100):
            a = figures[f"c={concurrency} provider"]
            b = figures[f"c={concurrency} rill_v1"]
            print(
                f"c={concurrency}: /v1 adds {b['end_p50_ms'] - a['end_p50_ms']:.2f} ms at the median "
                f"({a['end_p50_ms']} -> {b['end_p50_ms']}), p95 {a['end_p95_ms']} -> {b['end_p95_ms']}, "
                f"{a['per_second']} -> {b['per_second']} requests/s"
            )
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
