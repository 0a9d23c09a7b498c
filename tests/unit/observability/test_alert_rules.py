"""deploy/prometheus: every metric an alert or the scrape config relies on exists in src/tgm/observability/metrics.py,
and every rule says how long, how bad and what to do."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.observability.exported_metrics import SCRAPE_TIME, declared_series, known_series, metric_names

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def test_every_alert_uses_metrics_tgm_exports() -> None:
    rules = [rule for group in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 8
    known = known_series()
    for rule in rules:
        unknown = metric_names(str(rule["expr"])) - known
        assert not unknown, f"{rule['alert']} uses metrics nothing exports: {sorted(unknown)}"
        assert "for" in rule and rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_the_name_check_would_catch_a_typo() -> None:
    assert metric_names('sum by (queue) (rate(tgm_webhok_updates_total{outcome="error"}[5m])) > 0.05') == {
        "tgm_webhok_updates_total"
    }
    assert "tgm_webhok_updates_total" not in declared_series()


def test_series_collected_at_scrape_are_named_where_the_helper_says() -> None:
    for name, source in SCRAPE_TIME.items():
        assert f'"{name}"' in (DEPLOY.parents[1] / source).read_text(), f"{name} is no longer registered in {source}"


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"tgm-gateway", "tgm-dispatcher", "tgm-botregistry", "tgm-vault"}
    # Relative to prometheus.yml: /etc/prometheus/alerts.yml in the container, this folder's file for promtool.
    assert config["rule_files"] == ["alerts.yml"]


def test_compose_probes_every_service_and_exposes_what_prometheus_scrapes() -> None:
    compose = yaml.safe_load((DEPLOY.parents[1] / "docker-compose.yml").read_text())["services"]
    for name in ("vault", "botregistry", "dispatcher"):
        assert compose[name]["environment"]["METRICS_PORT"] == "9100", name
        assert "127.0.0.1:9100/readyz" in " ".join(compose[name]["healthcheck"]["test"]), name
    assert "127.0.0.1:8080/readyz" in " ".join(compose["gateway"]["healthcheck"]["test"])
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]
