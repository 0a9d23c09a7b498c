"""The pure parts of `make bench`: wrk parsing, percentiles, ratios, lost/doubled accounting, the table."""

from __future__ import annotations

import json
import math

import pytest

from bench.__main__ import render, table_rows
from bench.common import Target, lua_script, update_body
from bench.stats import account_timeline, parse_wrk, percentile, ratio, rotated, vault_calls_per_update

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    28.10ms   12.31ms 310.22ms   90.12%
    Req/Sec     1.15k   150.33     1.40k    70.00%
  Latency Distribution
     50%   25.45ms
     75%   30.02ms
     90%   40.11ms
     99%  495.63us
  22956 requests in 10.01s, 3.46MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 17
Requests/sec:   2293.32
Transfer/sec:    353.88KB
"""


def test_parse_wrk_reads_rate_percentiles_in_their_units_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == pytest.approx(2293.32)
    assert result.requests == 22956
    assert result.p50_ms == pytest.approx(25.45)
    assert result.p99_ms == pytest.approx(0.49563)  # microseconds converted
    assert result.non_2xx == 17
    assert result.socket_errors == 7


def test_parse_wrk_seconds_unit_and_missing_report() -> None:
    assert parse_wrk(WRK_OUTPUT.replace("495.63us", "1.65s")).p99_ms == pytest.approx(1650.0)
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert math.isnan(percentile([], 50))


def test_ratio_and_rotation() -> None:
    assert ratio(3000.0, 2000.0) == pytest.approx(1.5)
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 2.0))
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_timeline_counts_lost_doubled_and_latencies_per_chat() -> None:
    events = [
        {"seq": 1, "kind": "update", "bot_id": 1, "chat_id": 10, "update_id": 1, "at": 100.0},
        {"seq": 2, "kind": "delivered", "bot_id": 1, "chat_id": 10, "update_id": 1, "at": 100.1},
        {"seq": 3, "kind": "delivered", "bot_id": 1, "chat_id": 10, "update_id": 1, "at": 101.0},  # redelivery
        {"seq": 4, "kind": "sent", "bot_id": 1, "chat_id": 10, "method": "sendMessage", "at": 100.3},
        {"seq": 5, "kind": "update", "bot_id": 1, "chat_id": 11, "update_id": 2, "at": 100.0},
        {"seq": 6, "kind": "delivered", "bot_id": 1, "chat_id": 11, "update_id": 2, "at": 100.2},
        {"seq": 7, "kind": "sent", "bot_id": 1, "chat_id": 11, "method": "sendMessage", "at": 100.7},
        {"seq": 8, "kind": "sent", "bot_id": 1, "chat_id": 11, "method": "sendMessage", "at": 100.9},  # double
        {"seq": 9, "kind": "update", "bot_id": 2, "chat_id": 12, "update_id": 3, "at": 100.0},  # never answered
        {"seq": 10, "kind": "sent", "bot_id": 9, "chat_id": 99, "method": "sendMessage", "at": 100.5},  # not ours
    ]
    report = account_timeline(events, [(1, 10), (1, 11), (2, 12)])
    assert (report.expected, report.replied, report.lost, report.doubled) == (3, 2, 1, 1)
    assert sorted(report.webhook_to_reply_ms) == pytest.approx([200.0, 500.0])
    assert sorted(report.created_to_reply_ms) == pytest.approx([300.0, 700.0])
    assert report.replies_per_second == pytest.approx(2 / 0.4)


def test_vault_calls_per_update_counts_only_the_dispatcher() -> None:
    lines = [{"caller": "dispatcher"}, {"caller": "dispatcher"}, {"caller": "botregistry"}]
    assert vault_calls_per_update(lines, 4) == pytest.approx(0.5)
    assert math.isnan(vault_calls_per_update(lines, 0))


def test_update_body_is_a_realistic_start_update() -> None:
    body = update_body(42, 777)
    update = json.loads(body)
    assert update["update_id"] == 42
    assert update["message"]["chat"]["id"] == 777 and update["message"]["text"] == "/start"
    assert 350 <= len(body) <= 420


def test_lua_script_fills_the_template_back_into_the_same_update() -> None:
    script = lua_script([Target("/webhook/abc", "s3cret")])
    assert '{"/webhook/abc", "s3cret"}' in script
    # the Lua concatenation pieces, joined with the ids, give back update_body's JSON
    line = next(line for line in script.splitlines() if line.strip().startswith("local body"))
    pieces = [p.strip().strip("'") for p in line.split("=", 1)[1].split("..")]
    rebuilt = "".join({"uid": "5", "chat": "6"}.get(p, p) for p in pieces)
    got, want = json.loads(rebuilt), json.loads(update_body(5, 6))
    del got["message"]["message_id"], want["message"]["message_id"]  # fixed in the script: not an id tgm reads
    assert got == want


def test_table_shows_ratios_and_end_to_end_losses() -> None:
    results = {
        "gateway": {
            "rows": {"tgm": {"rps": 3000.0, "p50_ms": 10.0, "p99_ms": 40.0, "non_2xx": 0}},
            "ratios": {"tgm/aiogram": 1.6},
            "fixed_rate": {},
        },
        "e2e": {
            "phases": [
                {
                    "label": "500/s offered",
                    "replies_per_second": 499.0,
                    "webhook_to_reply_p50_ms": 50.0,
                    "webhook_to_reply_p99_ms": 300.0,
                    "created_to_reply_p99_ms": 320.0,
                    "replied": 4999,
                    "updates": 5000,
                    "lost": 1,
                    "doubled": 0,
                }
            ]
        },
    }
    text = render(table_rows(results))
    assert "3,000 req/s" in text and "1.60×" in text
    assert "lost 1 (no reply" in text and "doubled 0" in text
    header, _rule, gateway_row = text.splitlines()[:3]
    assert header.index("p99 ms") + len("p99 ms") == gateway_row.index("40.0") + len("40.0")  # right-aligned
