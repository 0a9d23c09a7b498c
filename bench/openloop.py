"""An open-loop HTTP load generator: sends POSTs at a fixed offered rate and records each one's latency.

wrk is closed-loop (a connection sends its next request only after the previous answer), so a slow server simply
gets fewer requests and its tail latency hides (coordinated omission). Here request i is *due* at start + i/rate
and its latency is measured from that due time, so time spent waiting for a free connection counts. Up to
`connections` keep-alive connections (like Telegram's per-bot max_connections) carry the requests.

Its own limits, honestly: it is Python (uvloop + asyncio streams) on the same 2 cores as the server, so it costs
CPU the server would otherwise use, and above a few thousand requests/s it is the bottleneck. bench/gateway.py
runs it against the bare FastAPI endpoint at the same rate to show the floor it can measure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class OpenLoopResult:
    offered_rate: float
    sent: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


async def _connection(
    host: str,
    port: int,
    due: asyncio.Queue[tuple[float, bytes] | None],
    result: OpenLoopResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            item = await due.get()
            if item is None:
                return
            due_at, request = item
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            result.latencies_ms.append((time.perf_counter() - due_at) * 1000)
            if head.startswith(b"HTTP/1.1 200"):
                result.ok += 1
            else:
                result.errors += 1
    finally:
        writer.close()


async def run_open_loop(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int = 64,
) -> OpenLoopResult:
    """Offers `rate` requests/s for `seconds`; `make_request(i)` returns the raw HTTP/1.1 request bytes."""
    total = int(rate * seconds)
    result = OpenLoopResult(offered_rate=rate, sent=total, ok=0, errors=0, seconds=seconds)
    due: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    workers = [asyncio.create_task(_connection(host, port, due, result)) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open before the clock starts
    started = time.perf_counter()
    for i in range(total):
        due_at = started + i / rate
        delay = due_at - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        due.put_nowait((due_at, make_request(i)))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers, return_exceptions=True)
    result.seconds = max(seconds, time.perf_counter() - started)
    return result


def open_loop(
    host: str, port: int, make_request: Callable[[int], bytes], rate: float, seconds: float, connections: int = 64
) -> OpenLoopResult:
    try:
        import uvloop

        return uvloop.run(run_open_loop(host, port, make_request, rate, seconds, connections))
    except ImportError:
        return asyncio.run(run_open_loop(host, port, make_request, rate, seconds, connections))
