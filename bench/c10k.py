#!/usr/bin/env python3
"""10,000 concurrent connections against a real Sluice, each sending requests.

Passes only if every request gets an HTTP response (2xx, 429 or 503) with zero
connection errors, resets and timeouts. Reports the server's peak RSS.

    python3 bench/c10k.py [--connections 10000] [--requests 5] [--max-connections N]

Starts `target/release/sluice serve` itself on a temporary data directory (build it
first: cargo build --release). With --max-connections below --connections, the
connections over the limit must get a 503, never a reset.
"""
import argparse
import asyncio
import collections
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time


async def client(host, port, key, body, requests, counts, timeout):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        counts["connect_timeout"] += requests
        return
    except OSError as e:
        counts[f"connect_error:{e.errno}"] += requests
        return
    request = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        for _ in range(requests):
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await asyncio.wait_for(reader.readexactly(length), timeout)
            counts[status] += 1
            if b"connection: close" in head.lower():
                # Refused at the connection limit: the remaining requests were not sent.
                counts["not_sent_after_503"] += requests - 1
                break
    except asyncio.TimeoutError:
        counts["timeout"] += 1
    except (ConnectionResetError, BrokenPipeError):
        counts["reset"] += 1
    except asyncio.IncompleteReadError:
        counts["closed_mid_response"] += 1
    finally:
        writer.close()


async def run(args, key):
    counts = collections.Counter()
    body = json.dumps({"event_type": "c10k", "payload": {"pad": "x" * 300}}).encode()
    started = time.monotonic()
    tasks = [
        client("127.0.0.1", args.port, key, body, args.requests, counts, args.timeout)
        for _ in range(args.connections)
    ]
    await asyncio.gather(*tasks)
    return counts, time.monotonic() - started


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=5)
    p.add_argument("--max-connections", type=int, default=20_000)
    p.add_argument("--port", type=int, default=9190)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--binary", default="target/release/sluice")
    args = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 100
    if hard < need:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) first")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [args.binary, "serve", "--listen", f"127.0.0.1:{args.port}", "--data-dir", data,
             "--max-connections", str(args.max_connections)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            key = None
            for line in server.stdout:
                if line.startswith('API key for tenant "default": '):
                    key = line.split(": ", 1)[1].strip()
                    break
            for line in server.stderr:
                if "sluice listening on" in line:
                    break
            if not key:
                sys.exit("server printed no key")
            counts, elapsed = asyncio.run(run(args, key))
            with open(f"/proc/{server.pid}/status") as f:
                rss = {k: v for k, v in (l.split(":", 1) for l in f if l.startswith(("VmRSS", "VmHWM")))}
        finally:
            server.terminate()
            server.wait(timeout=30)

    answered = sum(v for k, v in counts.items() if isinstance(k, int))
    failures = {k: v for k, v in counts.items() if not isinstance(k, int) and k != "not_sent_after_503"}
    bad_status = {k: v for k, v in counts.items() if isinstance(k, int) and not (200 <= k < 300 or k in (429, 503))}
    print(f"connections: {args.connections}, requests per connection: {args.requests}, "
          f"server max_connections: {args.max_connections}")
    print(f"answered: {answered} in {elapsed:.1f}s ({answered / elapsed:.0f} req/s)")
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted((k, v) for k, v in counts.items() if isinstance(k, int))))
    print(f"connection errors, resets, timeouts: {failures or 'none'}")
    if counts.get("not_sent_after_503"):
        print(f"requests not sent after a connection-limit 503: {counts['not_sent_after_503']}")
    print(f"server RSS: {rss['VmRSS'].strip()} now, peak {rss['VmHWM'].strip()}")
    ok = not failures and not bad_status
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
