"""SSRF policy (save time and call time), address pinning, redirects, body cap and the breaker of HttpExternalApi."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from tgm.domain.administration.setting_rules import InvalidSetting, validate_api
from tgm.domain.bots import ApiCommand
from tgm.domain.url_policy import UrlRefused, check_address, check_url
from tgm.domain.use_cases.run_api_call import CircuitOpen, ExternalApiFailed
from tgm.services.dispatcher.adapters.external_api import HttpExternalApi, PermanentApiFailure, RefusedUrl

REFUSED_ADDRESSES = {
    "loopback v4": "127.0.0.1",
    "loopback v4 other": "127.5.6.7",
    "loopback v6": "::1",
    "unspecified": "0.0.0.0",
    "private 10/8": "10.1.2.3",
    "private 172.16/12": "172.16.0.1",
    "private 192.168/16": "192.168.1.1",
    "link-local / cloud metadata": "169.254.169.254",
    "link-local v6": "fe80::1",
    "unique local v6": "fd00::1",
    "CGNAT": "100.64.0.1",
    "multicast v4": "224.0.0.1",
    "multicast v4 global scope": "239.1.2.3",
    "multicast v6": "ff02::1",
    "reserved 240/4": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "benchmarking": "198.18.0.1",
    "documentation": "192.0.2.1",
    "documentation v6": "2001:db8::1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "6to4 of loopback": "2002:7f00:1::",
    "NAT64 of loopback": "64:ff9b::7f00:1",
    # Found in review (issue 11, item 6): these passed `ipaddress.is_global` on Python 3.11.7 or everywhere.
    "IETF protocol assignments": "192.0.0.192",
    "local-use NAT64": "64:ff9b:1::a00:1",
    "IPv4-compatible (deprecated)": "::a00:1",
    "IPv4-compatible of a public address": "::808:808",
    "site-local (deprecated)": "fec0::1",
    "IPv4-mapped unspecified": "::ffff:0:0",
    "outside global unicast": "4000::1",
}


@pytest.mark.parametrize("address", REFUSED_ADDRESSES.values(), ids=REFUSED_ADDRESSES.keys())
def test_non_global_addresses_are_refused(address: str) -> None:
    with pytest.raises(UrlRefused):
        check_address(address)
    check_address(address, allow_private=True)  # the tests-only switch


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "https://user:pw@example.com/x",
        "https://user@example.com/x",
        "http://127.0.0.1/x",
        "http://[::1]:8080/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/x",
        "http://0x7f000001/x",
        "http://2130706433/x",
        "http://0177.0.0.1/x",
        "http://127.1/x",
        "http://10.0.0.1/x",
        "https://example.com:99999/x",
        "https://exa mple.com/x",
        "",
    ],
)
def test_refused_urls_at_save_time_and_call_time(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url)
    with pytest.raises(InvalidSetting):
        validate_api(ApiCommand(url=url, method="GET", timeout_seconds=5.0))
    api = HttpExternalApi(None, resolver=lambda host, port: ["8.8.8.8"])
    with pytest.raises(PermanentApiFailure):
        api.call(url, "GET", 1.0, None)


def test_accepted_url_at_save_time() -> None:
    saved = validate_api(ApiCommand(url=" https://api.example.com/w?q=1 ", method="get", timeout_seconds=5.0))
    assert saved.url == "https://api.example.com/w?q=1" and saved.method == "GET"


def test_a_name_that_resolves_to_a_private_address_is_refused_without_a_request() -> None:
    for answer in (["127.0.0.1"], ["169.254.169.254"], ["8.8.8.8", "10.0.0.5"], ["::ffff:127.0.0.1"]):
        api = HttpExternalApi(None, resolver=lambda host, port, a=answer: a)
        with pytest.raises(RefusedUrl):
            api.call("https://rebind.example.com/x", "GET", 1.0, None)
        assert not api.breaker("https://rebind.example.com/x").refuses()  # not the API's fault: no breaker count


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.peers = 1  # a request waits (up to 5 s) until this many are in flight at once
        self.status = 200
        self.body = b"ok"
        self.delay = 0.0  # seconds the answer takes
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with rec.lock:
                    rec.requests.append((self.path, self.headers.get("Host")))
                    rec.in_flight += 1
                    rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
                try:
                    deadline = time.monotonic() + 5
                    while rec.in_flight < rec.peers and time.monotonic() < deadline:
                        time.sleep(0.01)
                    time.sleep(rec.delay)
                    self.send_response(rec.status)
                    if rec.status in (301, 302):
                        self.send_header("Location", "http://169.254.169.254/")
                    self.send_header("Content-Length", str(len(rec.body)))
                    self.end_headers()
                    self.wfile.write(rec.body)
                finally:
                    with rec.lock:
                        rec.in_flight -= 1

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def pinned(server: Recorder, **kwargs: object) -> HttpExternalApi:
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]  # the name resolves once; the connection goes to this address

    return HttpExternalApi(None, allow_private=True, resolver=resolver, **kwargs)  # type: ignore[arg-type]


def test_the_call_connects_to_the_checked_address_and_keeps_the_host_header(server: Recorder) -> None:
    api = pinned(server)
    assert api.call(f"http://api.example.test:{server.port}/q", "GET", 5.0, {"text": "x"}) == "ok"
    assert server.requests == [("/q?text=x", f"api.example.test:{server.port}")]


def test_redirects_are_not_followed(server: Recorder) -> None:
    server.status = 302
    with pytest.raises(PermanentApiFailure):
        pinned(server).call(f"http://api.example.test:{server.port}/q", "GET", 5.0, None)
    assert len(server.requests) == 1


def test_the_body_is_capped(server: Recorder) -> None:
    server.body = b"x" * 200_000
    body = pinned(server, max_body_bytes=1000).call(f"http://api.example.test:{server.port}/q", "GET", 5.0, None)
    assert body == "x" * 1000


def test_breaker_is_per_bot_and_host_and_not_locked_across_the_request(server: Recorder) -> None:
    api = pinned(server, fail_max=2, reset_timeout_seconds=60)
    url = f"http://api.example.test:{server.port}/q"
    server.status = 503
    for _ in range(2):
        with pytest.raises(ExternalApiFailed):
            api.call(url, "GET", 5.0, None, scope="bot-a")
    assert api.is_open(url, scope="bot-a")
    with pytest.raises(CircuitOpen):
        api.call(url, "GET", 5.0, None, scope="bot-a")
    assert not api.is_open(url, scope="bot-b")  # another tenant: its own breaker
    server.status = 200
    assert api.call(url, "GET", 5.0, None, scope="bot-b") == "ok"

    # Two calls through one breaker at once: both are in flight together (no lock held across I/O);
    # with the lock held, the first would wait its 5 s alone.
    server.peers = 2
    threads = [
        threading.Thread(target=api.call, args=(url, "GET", 10.0, None), kwargs={"scope": "bot-b"}) for _ in "ab"
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.max_in_flight == 2


def duration_samples() -> tuple[float, float]:
    """How many external API calls were timed, and their total seconds (the process-wide histogram)."""
    count = REGISTRY.get_sample_value("external_api_request_duration_seconds_count")
    total = REGISTRY.get_sample_value("external_api_request_duration_seconds_sum")
    return count or 0.0, total or 0.0


def test_every_call_made_is_timed_and_calls_never_made_are_not(server: Recorder) -> None:
    api = pinned(server)
    url = f"http://api.example.test:{server.port}/q"
    server.delay = 0.2
    count, total = duration_samples()
    assert api.call(url, "GET", 5.0, None) == "ok"
    server.status = 503
    with pytest.raises(ExternalApiFailed):
        api.call(url, "GET", 5.0, None)  # a failed call is timed too: a slow failing API is slow
    after_count, after_total = duration_samples()
    assert after_count == count + 2
    assert after_total - total >= 2 * server.delay  # the time of the HTTP exchange, not just the code around it

    refused = HttpExternalApi(None, resolver=lambda host, port: ["10.0.0.1"])
    with pytest.raises(RefusedUrl):
        refused.call("https://api.example.com/x", "GET", 5.0, None)
    assert duration_samples()[0] == after_count  # no request, no observation


@pytest.mark.parametrize(
    "url", ["https://api.example.com:22/x", "http://api.example.com:6379/", "https://a.example:9200/"]
)
def test_only_the_usual_web_ports_are_accepted(url: str) -> None:
    with pytest.raises(UrlRefused, match="usual web ports"):
        check_url(url)
    for ok in ("https://api.example.com/x", "http://api.example.com:8080/x", "https://api.example.com:8443/x"):
        check_url(ok)


def test_a_stuck_dns_lookup_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    from tgm.services.dispatcher.adapters import external_api

    release = threading.Event()

    def stuck(*args: object, **kwargs: object) -> list[object]:
        release.wait(10)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        with pytest.raises(TimeoutError):
            external_api.resolve("slow.example", 443, timeout_seconds=0.2)
    finally:
        release.set()
