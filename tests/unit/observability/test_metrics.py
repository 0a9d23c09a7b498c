"""The metrics HTTP server's probes and the bounded message-type label."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx
import pytest

from tgm.observability.metrics import TELEGRAM_MESSAGES, MetricsServer, message_type


@pytest.fixture
def served() -> Iterator[tuple[str, dict[str, bool]]]:
    state = {"redis": True}

    def crash() -> Mapping[str, bool]:
        raise RuntimeError("probe bug")

    server = MetricsServer("127.0.0.1", 0, liveness=lambda: {"threads": True}, readiness=lambda: dict(state)).start()
    crashing = MetricsServer("127.0.0.1", 0, readiness=crash).start()
    try:
        yield f"http://127.0.0.1:{server.port}|http://127.0.0.1:{crashing.port}", state
    finally:
        server.stop()
        crashing.stop()


def test_probes_answer_503_naming_what_fails(served) -> None:
    urls, state = served
    base, crashing = urls.split("|")
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    state["redis"] = False
    answer = httpx.get(f"{base}/readyz")
    assert answer.status_code == 503 and "redis: failing" in answer.text
    assert httpx.get(f"{base}/healthz").status_code == 200  # alive, not ready
    assert httpx.get(f"{crashing}/readyz").status_code == 503  # a crashing probe fails, the server stays up
    assert httpx.get(f"{crashing}/healthz").status_code == 200
    assert httpx.get(f"{base}/nothing").status_code == 404


def test_metrics_endpoint_shows_a_counter_moving(served) -> None:
    base = served[0].split("|")[0]

    def commands() -> float:
        for line in httpx.get(f"{base}/metrics").text.splitlines():
            if line.startswith('telegram_messages_total{message_type="command"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    first = commands()
    TELEGRAM_MESSAGES.labels("command").inc(3)
    assert commands() == first + 3


@pytest.mark.parametrize(
    ("update", "kind"),
    [
        ({"message": {"text": "/start"}}, "command"),
        ({"message": {"text": "hi"}}, "text"),
        ({"message": {"photo": [{}]}}, "photo"),
        ({"message": {"dice": {}}}, "other_message"),
        ({"callback_query": {"data": "x"}}, "callback_query"),
        ({"edited_message": {"text": "x"}}, "edited_message"),
        ({"poll": {}}, "other"),
        ({"message": "not an object"}, "other"),
    ],
)
def test_message_type_is_one_of_a_few_labels(update: dict[str, object], kind: str) -> None:
    assert message_type(update) == kind


def test_a_cached_gauge_reads_at_most_once_per_period_and_survives_a_failing_read() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from tgm.observability.metrics import CachedGaugeCollector

    now = [0.0]
    reads: list[float] = []
    answers: list[object] = [3, 5, RuntimeError("database down"), 7]

    def read() -> float:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        reads.append(float(answer))  # type: ignore[arg-type]
        return float(answer)  # type: ignore[arg-type]

    registry = CollectorRegistry()
    registry.register(CachedGaugeCollector("tgm_test_gauge", "a test gauge", read, 15.0, lambda: now[0]))
    assert reads == [], "registering reads nothing (a value cached at start would be stale at the first scrape)"

    def scraped() -> str:
        return [line for line in generate_latest(registry).decode().splitlines() if line.startswith("tgm_test_gauge")]

    assert scraped() == ["tgm_test_gauge 3.0"]
    assert scraped() == ["tgm_test_gauge 3.0"] and reads == [3.0]  # cached
    now[0] = 15.0
    assert scraped() == ["tgm_test_gauge 5.0"]
    now[0] = 30.0
    assert scraped() == []  # a failing read: no sample, the scrape still answers
    now[0] = 45.0
    assert scraped() == ["tgm_test_gauge 7.0"]
