"""`make bench` (`python -m bench`): one table, side by side, and bench/results/latest.json.

Sections: gateway ack (tgm vs aiogram multibot vs bare FastAPI ± one LPUSH, wrk, interleaved rounds, medians,
plus a fixed 1,000 req/s open-loop run), end to end through the emulator (fixed offered loads and a burst;
lost/doubled), vault Decrypt latency and calls per update, RSS per service, the emulator's own throughput,
and the Redis-script costs as ratios to PING. BENCH_QUICK=1: a ~2-minute smoke version. BENCH_ONLY=gateway,e2e,…
runs a subset; BENCH_KEEP=1 keeps the gateway run's logs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import QUICK, REPO_ROOT, machine
from bench.stats import fmt

RESULTS = REPO_ROOT / "bench" / "results"
SECTIONS = ("redis", "gateway", "e2e", "emulator")
EMULATOR_TIMEOUT = 120 if QUICK else 240


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _section(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = fn()
    except Exception as error:  # one broken section must not hide the others' numbers
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _emulator() -> dict[str, Any]:
    """bench.emulator_throughput.run() in its own process group, so a hang costs at most EMULATOR_TIMEOUT."""
    if importlib.util.find_spec("bench.emulator_throughput") is None:
        return {"skipped": "bench/emulator_throughput.py not present"}
    seconds = 3.0 if QUICK else 5.0
    code = f"import json; from bench import emulator_throughput as m; print('RESULT ' + json.dumps(m.run({seconds})))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, _ = process.communicate(timeout=EMULATOR_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group this bench started: the driver and its servers
        process.communicate()
        return {"error": f"bench.emulator_throughput did not finish in {EMULATOR_TIMEOUT}s"}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    return {"error": f"bench.emulator_throughput exited with {process.returncode} and no result"}


Row = tuple[str, str, str, str, str, str]


def table_rows(results: dict[str, Any]) -> list[Row]:
    """(section, case, rate, p50, p99, notes) for every number worth a glance."""
    rows: list[Row] = []
    gateway = results.get("gateway", {})
    for name, row in gateway.get("rows", {}).items():
        notes = f"non-2xx {row['non_2xx']}" if row.get("non_2xx") else ""
        rows.append(
            (
                "gateway ack (wrk)",
                name,
                fmt(row["rps"], 0, " req/s"),
                fmt(row["p50_ms"], 1),
                fmt(row["p99_ms"], 1),
                notes,
            )
        )
    for name, value in gateway.get("ratios", {}).items():
        rows.append(("gateway ratio", name, fmt(value, 2, "×"), "", "", "req/s, same run"))
    for name, row in gateway.get("fixed_rate", {}).items():
        notes = f"achieved {fmt(row['achieved_rps'], 0)} req/s, {row['errors']} errors"
        rows.append(
            (
                "gateway @1,000/s open loop",
                name,
                fmt(row["offered_rps"], 0, " req/s"),
                fmt(row["p50_ms"], 1),
                fmt(row["p99_ms"], 1),
                notes,
            )
        )
    e2e = results.get("e2e", {})
    for phase in e2e.get("phases", []):
        notes = (
            f"{phase['replied']}/{phase['updates']} replied, lost {phase['lost']} (no reply "
            f"{phase.get('deadline_seconds', 0):.0f}s after the last send), doubled {phase['doubled']}; "
            f"created→sent p99 {fmt(phase['created_to_reply_p99_ms'], 0)} ms"
        )
        rows.append(
            (
                "end to end (webhook→reply)",
                phase["label"],
                fmt(phase["replies_per_second"], 0, " replies/s"),
                fmt(phase["webhook_to_reply_p50_ms"], 0),
                fmt(phase["webhook_to_reply_p99_ms"], 0),
                notes,
            )
        )
    if "vault_decrypt" in e2e:
        decrypt = e2e["vault_decrypt"]
        rows.append(
            (
                "vault",
                "Decrypt over mTLS (dispatcher cert)",
                "",
                fmt(decrypt["p50_ms"], 2),
                fmt(decrypt["p99_ms"], 2),
                f"{decrypt['calls']} sequential calls",
            )
        )
        rows.append(
            (
                "vault",
                "dispatcher vault calls per update",
                fmt(e2e.get("vault_calls_per_update", math.nan), 3),
                "",
                "",
                f"{e2e.get('dispatcher_vault_calls', 0)} calls in the audit log",
            )
        )
    for name, mib in e2e.get("rss_mib", {}).items():
        rows.append(
            ("RSS after load", name, fmt(mib, 0, " MiB"), "", "", f"{e2e.get('registered_bots', 0):,} bots registered")
        )
    emulator = results.get("emulator", {})
    for key, value in _flat(emulator):
        if key not in ("seconds", "error", "skipped"):
            rows.append(("emulator", key, value, "", "", ""))
    for name, case in results.get("redis", {}).get("cases", {}).items():
        rows.append(("redis scripts", name, fmt(case["us"], 1, " µs"), "", "", f"{case['x_ping']:.2f}× PING"))
    for section in SECTIONS:
        problem = results.get(section, {}).get("error") or results.get(section, {}).get("skipped")
        if problem:
            rows.append((section, "not measured", "", "", "", str(problem)[:100]))
    return rows


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flat(value, f"{name}."))
        elif isinstance(value, bool) or value is None:
            out.append((name, str(value)))
        elif isinstance(value, int | float):
            out.append((name, fmt(float(value), 2 if isinstance(value, float) and abs(value) < 100 else 0)))
        elif isinstance(value, str) and len(value) < 60:
            out.append((name, value))
    return out


def render(rows: list[Row]) -> str:
    header: Row = ("section", "case", "rate / value", "p50 ms", "p99 ms", "notes")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [
            row[0].ljust(widths[0]),
            row[1].ljust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].rjust(widths[3]),
            row[4].rjust(widths[4]),
            row[5],
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()} or set(SECTIONS)
    where = machine()
    started = time.monotonic()
    _log(f"bench: {'QUICK ' if QUICK else ''}run on {where['nproc']} CPUs ({where['cpu']}), Python {where['python']}")
    results: dict[str, Any] = {"machine": where, "quick": QUICK, "started_at": datetime.now(UTC).isoformat()}
    if "redis" in only:
        from bench import redis_scripts

        results["redis"] = _section("redis", lambda: redis_scripts.run(_log))
    if "gateway" in only:
        from bench import gateway

        results["gateway"] = _section("gateway", lambda: gateway.run(_log))
    if "e2e" in only:
        from bench import e2e

        results["e2e"] = _section("e2e", lambda: e2e.run(_log))
    if "emulator" in only:
        results["emulator"] = _section("emulator", _emulator)
    results["wall_seconds"] = round(time.monotonic() - started, 1)

    print()
    print(f"tgm bench — {where['nproc']} CPUs, {where['cpu']}, Python {where['python']}, kernel {where['kernel']}")
    print(f"{'QUICK (BENCH_QUICK=1) — smoke numbers only; ' if QUICK else ''}wall time {results['wall_seconds']:.0f}s")
    print(render(table_rows(results)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(_no_nan(results), indent=2, default=_json_default))
    print(f"\nwritten: {out.relative_to(REPO_ROOT)}")
    return 0


def _no_nan(value: Any) -> Any:
    """NaN (a number not measured) as null, so latest.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(item) for item in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    return repr(value)


if __name__ == "__main__":
    sys.exit(main())
