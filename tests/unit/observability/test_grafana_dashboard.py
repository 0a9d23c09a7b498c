"""deploy/grafana: every query of the tgm overview dashboard uses only metrics tgm exports, the dashboard shows
what operators watch, and the provisioning and compose wire it to the Prometheus that scrapes tgm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.unit.observability.exported_metrics import known_series, metric_names

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "tgm-overview.json"
# What the dashboard is for (issue 9): webhooks by outcome, queues, actor p95, Bot API errors and 429s, external
# API p95 and errors, vault calls, gRPC latency, active bots.
WATCHED = {
    "tgm_webhook_updates_total",
    "tgm_queue_size",
    "tgm_actor_duration_seconds_bucket",
    "telegram_api_errors_total",
    "external_api_request_duration_seconds_bucket",
    "external_api_errors_total",
    "tgm_vault_calls_total",
    "tgm_grpc_server_latency_seconds_bucket",
    "telegram_active_bots",
}


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def queries() -> Iterator[tuple[str, str]]:
    for panel in panels():
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def test_every_query_uses_metrics_tgm_exports() -> None:
    known = known_series()
    for title, expr in queries():
        unknown = metric_names(expr) - known
        assert not unknown, f"panel {title!r} queries metrics nothing exports: {sorted(unknown)}"


def test_the_dashboard_shows_what_operators_watch() -> None:
    used = set().union(*(metric_names(expr) for _, expr in queries()))
    assert not WATCHED - used, f"no panel for {sorted(WATCHED - used)}"
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_panels_query_the_provisioned_prometheus() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in panels():
        for query in (panel, *panel["targets"]):
            assert query["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]


def test_compose_runs_grafana_with_the_provisioning_and_the_dashboard() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tgm.yml").read_text())["providers"]
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    dashboard_mount = f"./deploy/grafana/{DASHBOARD.name}:{provider['options']['path']}/{DASHBOARD.name}:ro"
    assert dashboard_mount in grafana["volumes"]
    assert "prometheus" in grafana["depends_on"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
