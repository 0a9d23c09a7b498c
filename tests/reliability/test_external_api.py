"""External-API commands against a local HTTP API that fails: shared breaker, backoff, dead letters, replay."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.reliability.conftest import REPO, Harness, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

UNAVAILABLE = "🚧 The external service is unavailable right now. Try again in a few minutes."
FAILED = "⚠️ Could not get an answer from the external service. Try again later."


class FlakyApi:
    def __init__(self) -> None:
        self.failing = True
        self.hits: list[float] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.hits.append(time.monotonic())
                status, body = (503, b"down") if api.failing else (200, b"42 is the answer")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/quote"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api() -> Iterator[FlakyApi]:
    server = FlakyApi()
    yield server
    server.server.shutdown()


def cli(harness: Harness, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src"), "REDIS_URL": harness.redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "tgm.services.dispatcher", "dead-letters", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_retries_back_off_then_dead_letter_and_replay(harness: Harness, api: FlakyApi) -> None:
    bot = harness.bot(api={"/quote": {"url": api.url, "method": "GET", "timeout_seconds": 2.0}})
    env = {
        "EXTERNAL_API_ALLOW_PRIVATE": "true",
        "CIRCUIT_BREAKER_FAIL_MAX": "100",
        "EXTERNAL_API_MAX_ATTEMPTS": "4",
        "EXTERNAL_API_RETRY_BASE_SECONDS": "0.4",
    }
    harness.workers.start(2, [bot], harness.emulator_url, **env)
    harness.open_chat(bot, 6001)
    harness.send(bot, 6001, "/quote now")
    wait_until(lambda: harness.replies(bot, 6001) == [FAILED], 60, "the failure reply")
    assert len(api.hits) == 4
    gaps = [b - a for a, b in zip(api.hits, api.hits[1:], strict=False)]
    # equal jitter: attempt n waits in [step/2, step], step = 0.4 s · 2^(n-1), plus the broker's delay latency
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps
    # No upper bounds: on a loaded box the broker's delayed-message latency has no useful ceiling.

    listing = cli(harness, "list").strip().splitlines()
    assert len(listing) == 1 and "api_call" in listing[0] and "attempts=4" in listing[0]
    letter_id = listing[0].split()[0]
    assert bot["token"] not in cli(harness, "show", letter_id)
    api.failing = False
    assert f"replayed {letter_id}" in cli(harness, "replay", letter_id)
    wait_until(lambda: len(harness.replies(bot, 6001)) == 2, 30, "the replayed answer")
    assert harness.replies(bot, 6001)[-1] == "42 is the answer"
    assert cli(harness, "list").strip() == ""


BREAKER_TIMEOUT = 10


def test_breaker_opens_for_every_worker_and_half_opens_after_the_timeout(harness: Harness, api: FlakyApi) -> None:
    bot = harness.bot(api={"/quote": {"url": api.url, "method": "GET", "timeout_seconds": 2.0}})
    env = {
        "EXTERNAL_API_ALLOW_PRIVATE": "true",
        "CIRCUIT_BREAKER_FAIL_MAX": "3",
        "CIRCUIT_BREAKER_TIMEOUT": str(BREAKER_TIMEOUT),
        "EXTERNAL_API_MAX_ATTEMPTS": "1",
    }
    [first] = harness.workers.start(1, [bot], harness.emulator_url, **env)
    users = list(range(6100, 6110))
    for user in users:
        harness.open_chat(bot, user)
    for user in users[:3]:  # three failures on worker A
        harness.send(bot, user, "/quote")
        wait_until(lambda u=user: harness.replies(bot, u) == [FAILED], 30, "a failure reply")
    assert len(api.hits) == 3
    # The breaker is keyed by (bot, API host); pybreaker stores when it opened, in whole seconds.
    key = f"tgm:breaker:{bot['bot_id']}:{api.url.rsplit('/', 1)[0]}:pybreaker:opened_at".lower()
    raw = harness.client.get(key)
    assert raw is not None, sorted(k.decode() for k in harness.client.keys("tgm:breaker:*"))
    opened_at = int(raw)
    reopens_after = opened_at + 1 + BREAKER_TIMEOUT  # whole seconds: the real opening was before opened_at + 1

    # Worker B never saw a failure; worker A is gone. B refuses at once: the open state lives in Redis.
    harness.workers.start(1, [bot], harness.emulator_url, **env)
    harness.workers.stop(first)
    for user in users[3:6]:
        harness.send(bot, user, "/quote")
    wait_until(lambda: all(harness.replies(bot, u) == [UNAVAILABLE] for u in users[3:6]), 30, "open-breaker replies")
    assert len(api.hits) == 3

    # After the timeout the next call goes through (half-open) and its success closes the breaker.
    api.failing = False
    wait_until(lambda: time.time() > reopens_after, BREAKER_TIMEOUT + 30, "the breaker timeout", interval=0.2)
    harness.send(bot, users[6], "/quote")
    wait_until(lambda: harness.replies(bot, users[6]) == ["42 is the answer"], 30, "the half-open call")
    harness.send(bot, users[7], "/quote")
    wait_until(lambda: harness.replies(bot, users[7]) == ["42 is the answer"], 30, "a call on the closed breaker")
    assert len(api.hits) == 5
