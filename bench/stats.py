"""The pure parts of `make bench`: wrk output parsing, percentiles, ratios, timeline accounting (unit-tested)."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_UNITS_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_REQS_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL_LINE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0


def parse_wrk(output: str) -> WrkResult:
    """Reads `wrk --latency` output. Raises ValueError when a needed line is missing."""
    reqs = _REQS_LINE.search(output)
    total = _TOTAL_LINE.search(output)
    latencies = {int(m.group(1)): float(m.group(2)) * _UNITS_TO_MS[m.group(3)] for m in _LATENCY_LINE.finditer(output)}
    if reqs is None or total is None or 50 not in latencies or 99 not in latencies:
        raise ValueError("not a `wrk --latency` report:\n" + output[-1500:])
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests_per_second=float(reqs.group(1)),
        requests=int(total.group(1)),
        p50_ms=latencies[50],
        p99_ms=latencies[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(pct/100 · n)); NaN for no values."""
    if not values:
        return math.nan
    if not 0 < pct <= 100:
        raise ValueError("pct must be in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def median(values: Iterable[float]) -> float:
    items = [v for v in values if not math.isnan(v)]
    return statistics.median(items) if items else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when either side is missing or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def rotated(names: Sequence[str], round_no: int) -> list[str]:
    """The order of the contenders in round `round_no`: rotated so none always runs after the same one."""
    shift = round_no % len(names) if names else 0
    return list(names[shift:]) + list(names[:shift])


@dataclass
class TimelineReport:
    """What the emulator's timeline says about a set of updates sent to distinct chats."""

    expected: int
    replied: int
    lost: int
    doubled: int
    # per chat: first reply "sent" at − the update's first "delivered" at (webhook-to-reply), in ms
    webhook_to_reply_ms: list[float] = field(default_factory=list)
    # per chat: first reply "sent" at − the update's "update" (created) at, in ms
    created_to_reply_ms: list[float] = field(default_factory=list)
    first_sent_at: float = math.nan
    last_sent_at: float = math.nan

    @property
    def replies_per_second(self) -> float:
        span = self.last_sent_at - self.first_sent_at
        return self.replied / span if self.replied > 1 and span > 0 else math.nan


def account_timeline(events: Iterable[dict[str, object]], chats: Iterable[tuple[int, int]]) -> TimelineReport:
    """Counts replies per (bot_id, chat_id) among `chats` (each expects exactly one reply).

    `events` are the emulator's timeline events ({"kind": "update"|"delivered"|"sent", "bot_id", "chat_id",
    "update_id", "method", "at"}). A chat with no "sent" event is lost; with more than one, doubled. Only
    sendMessage-like calls ("sent") count as replies; an update delivered twice (a redelivery) is not a double.
    """
    wanted = set(chats)
    created: dict[tuple[int, int], float] = {}
    delivered: dict[tuple[int, int], float] = {}
    sent: dict[tuple[int, int], list[float]] = {}
    for event in events:
        key = (_as_int(event.get("bot_id")), _as_int(event.get("chat_id")))
        if key not in wanted:
            continue
        at = float(event.get("at", math.nan))  # type: ignore[arg-type]
        kind = event.get("kind")
        if kind == "update":
            created.setdefault(key, at)
        elif kind == "delivered":
            delivered.setdefault(key, at)  # the first delivery: a redelivery's wait is part of the latency
        elif kind == "sent":
            sent.setdefault(key, []).append(at)
    report = TimelineReport(expected=len(wanted), replied=0, lost=0, doubled=0)
    sent_times: list[float] = []
    for key in wanted:
        replies = sorted(sent.get(key, []))
        if not replies:
            report.lost += 1
            continue
        report.replied += 1
        if len(replies) > 1:
            report.doubled += 1
        sent_times.append(replies[0])
        if key in delivered:
            report.webhook_to_reply_ms.append((replies[0] - delivered[key]) * 1000)
        if key in created:
            report.created_to_reply_ms.append((replies[0] - created[key]) * 1000)
    if sent_times:
        report.first_sent_at, report.last_sent_at = min(sent_times), max(sent_times)
    return report


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return -1


def vault_calls_per_update(audit_lines: Iterable[dict[str, object]], updates: int, caller: str = "dispatcher") -> float:
    """Audit-log lines written for `caller` divided by the updates it handled."""
    calls = sum(1 for line in audit_lines if line.get("caller") == caller)
    return calls / updates if updates else math.nan


def fmt(value: float | int | None, digits: int = 0, suffix: str = "") -> str:
    """A table cell: '—' for missing numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int):
        return f"{value}{suffix}"
    return f"{value:,.{digits}f}{suffix}"
