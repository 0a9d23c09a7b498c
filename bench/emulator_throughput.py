"""Throughput of the Telegram emulator: webhook deliveries/s, in-flight cap per bot, health latency, sendMessage/s.

Three processes, each with its own GIL: the emulator (`python -m tgm.tools.telegram_emulator`), a minimal webhook
receiver (raw asyncio + httptools, below) and this driver. Phases:

1. deliveries: BOTS bots get their updates queued while no webhook is set, then all webhooks are set at once;
   deliveries/s is counted at the receiver over at most `seconds`, while a thread times /_emulator/health.
2. in-flight cap: a few bots with a small max_connections deliver to a receiver path that answers after 20 ms;
   the receiver reports the most requests it ever had open per bot.
3. sendMessage/s: `wrk` (or an aiohttp client when wrk is missing) on many keep-alive connections.

    python -m bench.emulator_throughput [seconds]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BOTS = 20
CHATS_PER_BOT = 250
MAX_CONNECTIONS = 40
SLOW_DELAY = 0.02


# -- the webhook receiver (its own process) ------------------------------------------------------------------


def _receiver_main(port: int) -> None:
    """Answers 200 at once on /hook/..., after SLOW_DELAY on /slow/...; GET /_stats reports counts and peaks."""
    import httptools
    import uvloop

    count = 0
    in_flight: dict[bytes, int] = {}
    peak: dict[bytes, int] = {}
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    class Hook(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_message_begin(self) -> None:
            self.url = b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_message_complete(self) -> None:
            nonlocal count
            path = self.url
            if path.startswith(b"/_stats"):
                body = json.dumps(
                    {
                        "count": count,
                        "peak": {k.decode(): v for k, v in peak.items()},
                        "in_flight": sum(in_flight.values()),
                    }
                ).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif path.startswith(b"/slow/"):
                now = in_flight.get(path, 0) + 1
                in_flight[path] = now
                if now > peak.get(path, 0):
                    peak[path] = now
                asyncio.get_running_loop().call_later(SLOW_DELAY, self._finish_slow, path)
            else:
                count += 1
                self.transport.write(ok)

        def _finish_slow(self, path: bytes) -> None:
            in_flight[path] -= 1
            if not self.transport.is_closing():
                self.transport.write(ok)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Hook, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


# -- helpers -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.05)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _HealthProbe(threading.Thread):
    """Times GET /_emulator/health every 10 ms on one keep-alive connection until stopped."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.latencies: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            while not self._halt.is_set():
                started = time.perf_counter()
                try:
                    client.get("/_emulator/health").raise_for_status()
                    self.latencies.append(time.perf_counter() - started)
                except httpx.HTTPError:
                    self.latencies.append(10.0)
                self._halt.wait(0.01)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join(15)
        ms = [x * 1000 for x in self.latencies]
        return {
            "samples": len(ms),
            "p50_ms": round(statistics.median(ms), 2) if ms else None,
            "p99_ms": round(_percentile(ms, 0.99) or 0.0, 2) if ms else None,
            "max_ms": round(max(ms), 2) if ms else None,
        }


class _Control:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120.0)

    def reset(self) -> None:
        self.http.post("/_emulator/reset").raise_for_status()

    def bots(self, n: int, prefix: str) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            response = self.http.post("/_emulator/bots", json={"username": f"{prefix}{i}_bot"})
            response.raise_for_status()
            out.append(response.json())
        return out

    def set_webhook(self, bot: dict[str, Any], url: str, max_connections: int) -> None:
        body = self.http.post(f"/bot{bot['token']}/setWebhook", json={"url": url, "max_connections": max_connections})
        body.raise_for_status()

    def load(self, messages: list[dict[str, Any]]) -> str:
        """Queues the messages through /_emulator/load, or one by one on an emulator without it."""
        response = self.http.post("/_emulator/load", json={"messages": messages[:1]})
        if response.status_code == 404 and "no such bot" not in response.text:
            asyncio.run(_load_one_by_one(str(self.http.base_url), messages))
            return "per-message endpoint"
        response.raise_for_status()
        for start in range(1, len(messages), 5000):
            self.http.post("/_emulator/load", json={"messages": messages[start : start + 5000]}).raise_for_status()
        return "/_emulator/load"

    def metrics(self) -> dict[str, Any] | None:
        response = self.http.get("/_emulator/metrics")
        return response.json() if response.status_code == 200 else None


async def _load_one_by_one(base_url: str, messages: list[dict[str, Any]]) -> None:
    import aiohttp

    queue = list(reversed(messages))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            m = queue.pop()
            body = {"user": m["user"], "text": m["text"]}
            async with session.post(f"{base_url}/_emulator/bots/{m['bot_id']}/messages", json=body) as response:
                response.raise_for_status()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(32)))


def _messages(bots: list[dict[str, Any]], chats: int, per_chat: int, first_user: int) -> list[dict[str, Any]]:
    return [
        {"bot_id": bot["id"], "user": {"id": first_user + c, "first_name": f"U{c}"}, "text": f"m{k}"}
        for k in range(per_chat)
        for bot in bots
        for c in range(chats)
    ]


_stats_clients: dict[str, httpx.Client] = {}


def _receiver_stats(receiver: str) -> dict[str, Any]:
    # One kept client: a new httpx client per poll builds an SSL context (~20 ms of GIL) and skews the health probe.
    client = _stats_clients.get(receiver)
    if client is None:
        client = _stats_clients[receiver] = httpx.Client(base_url=receiver, timeout=10.0)
    return dict(client.get("/_stats").json())


# -- phases --------------------------------------------------------------------------------------------------


def _deliveries(control: _Control, emulator: str, receiver: str, seconds: float) -> dict[str, Any]:
    control.reset()
    bots = control.bots(BOTS, "load")
    per_chat = max(1, round(seconds * 5000 / (BOTS * CHATS_PER_BOT)))
    messages = _messages(bots, CHATS_PER_BOT, per_chat, 10_000)
    started = time.perf_counter()
    loaded_by = control.load(messages)
    load_seconds = time.perf_counter() - started
    base = _receiver_stats(receiver)["count"]
    probe = _HealthProbe(emulator)
    probe.start()
    started = time.perf_counter()
    for bot in bots:
        control.set_webhook(bot, f"{receiver}/hook/{bot['id']}", MAX_CONNECTIONS)
    delivered = 0
    while time.perf_counter() - started < seconds and delivered < len(messages):
        time.sleep(0.05)
        delivered = _receiver_stats(receiver)["count"] - base
    elapsed = time.perf_counter() - started
    health = probe.stop()
    metrics = control.metrics()
    control.reset()
    result: dict[str, Any] = {
        "updates_queued": len(messages),
        "loaded_by": loaded_by,
        "load_updates_per_s": round(len(messages) / load_seconds),
        "delivered": delivered,
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(delivered / elapsed),
        "health_during_load": health,
    }
    if metrics is not None:
        peaks = metrics.get("peak_in_flight_per_bot", {})
        result["peak_in_flight_per_bot_max"] = max(peaks.values()) if peaks else 0
        result["deliveries_failed"] = metrics.get("deliveries_failed")
    return result


def _in_flight_cap(control: _Control, receiver: str) -> dict[str, Any]:
    control.reset()
    bots = control.bots(4, "cap")
    cap = 8
    messages = _messages(bots, 60, 2, 20_000)
    control.load(messages)
    before = _receiver_stats(receiver)["peak"]
    for bot in bots:
        control.set_webhook(bot, f"{receiver}/slow/{bot['id']}", cap)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
    peaks = _receiver_stats(receiver)["peak"]
    control.reset()
    seen = {path: peak for path, peak in peaks.items() if path not in before}
    return {"max_connections": cap, "max_in_flight_per_bot_at_receiver": max(seen.values()) if seen else None}


def _send_message(control: _Control, emulator: str, seconds: float) -> dict[str, Any]:
    control.reset()
    (bot,) = control.bots(1, "send")
    chats = [30_000 + i for i in range(100)]
    control.load([{"bot_id": bot["id"], "user": {"id": c, "first_name": "S"}, "text": "hi"} for c in chats])
    path = f"/bot{bot['token']}/sendMessage"
    probe = _HealthProbe(emulator)
    probe.start()
    try:
        if shutil.which("wrk"):
            result = _wrk(emulator, path, chats, seconds)
        else:
            result = asyncio.run(_aiohttp_send(emulator, path, chats, seconds))
    finally:
        health = probe.stop()
    control.reset()
    return {**result, "health_during_load": health}


def _wrk(emulator: str, path: str, chats: list[int], seconds: float) -> dict[str, Any]:
    script = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local chats = {{{",".join(map(str, chats))}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "{path}", nil, '{{"chat_id":' .. chats[(n % #chats) + 1] .. ',"text":"hello ' .. n .. '"}}')
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        run = subprocess.run(
            ["wrk", "-t1", "-c64", f"-d{max(1, round(seconds))}s", "-s", handle.name, emulator],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(handle.name)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    total = re.search(r"(\d+) requests in", run.stdout)
    return {
        "driver": "wrk -t1 -c64",
        "send_message_per_s": round(float(rate.group(1))) if rate else None,
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


async def _aiohttp_send(emulator: str, path: str, chats: list[int], seconds: float) -> dict[str, Any]:
    import aiohttp

    done = 0
    failed = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal done, failed
        n = offset
        while time.perf_counter() < deadline:
            n += 1
            async with session.post(path, json={"chat_id": chats[n % len(chats)], "text": f"hello {n}"}) as response:
                await response.read()
                done += 1
                failed += response.status != 200

    started = time.perf_counter()
    async with aiohttp.ClientSession(emulator, connector=aiohttp.TCPConnector(limit=64)) as session:
        await asyncio.gather(*(worker(session, i * 1000) for i in range(64)))
    return {
        "driver": "aiohttp, 64 connections",
        "send_message_per_s": round(done / (time.perf_counter() - started)),
        "requests": done,
        "non_2xx": failed,
    }


# -- entry points --------------------------------------------------------------------------------------------


def run(seconds: float = 5.0) -> dict[str, Any]:
    """Starts an emulator and a webhook receiver as subprocesses, measures, stops them; returns the numbers."""
    emulator_port, receiver_port = _free_port(), _free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO)))}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # BENCH_EMULATOR_ROOT: another checkout's emulator (e.g. `git archive <rev> src`, a moved tree: ADR 005) for
    # before/after runs.
    root = os.environ.get("BENCH_EMULATOR_ROOT") or str(REPO)
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tgm.tools.telegram_emulator",
            "--port",
            str(emulator_port),
            "--log-level",
            "warning",
            "--no-flood-control",  # measures raw sendMessage/s; flood control would cap one bot at 30/s
        ],
        cwd=root,
        env={**env, "PYTHONPATH": str(Path(root) / "src")},
        **quiet,
    )
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator_throughput", "--receiver", str(receiver_port)],
        cwd=REPO,
        env=env,
        **quiet,
    )
    try:
        _wait_http(f"{emulator_url}/_emulator/health")
        _wait_http(f"{receiver_url}/_stats")
        control = _Control(emulator_url)
        return {
            "deliveries": _deliveries(control, emulator_url, receiver_url, seconds),
            "in_flight_cap": _in_flight_cap(control, receiver_url),
            "send_message": _send_message(control, emulator_url, seconds),
        }
    finally:
        for process in (emulator, receiver):
            process.terminate()
        for process in (emulator, receiver):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            if process.poll() is None:
                process.kill()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--receiver"]:
        _receiver_main(int(argv[1]))
        return 0
    seconds = float(argv[0]) if argv else 5.0
    print(json.dumps(run(seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
