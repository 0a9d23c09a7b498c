"""The metric names tgm exports, and the metric names a PromQL expression uses: what alert rules and dashboards
may rely on (tests/unit/observability/test_alert_rules.py, test_grafana_dashboard.py)."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import tgm.observability.metrics  # noqa: F401 - declares the metrics in the default registry

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate", "histogram_quantile",
    "le", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset", "absent",
}  # fmt: skip
BUILT_IN = {"up"}  # Prometheus's own series per target
# Collected at scrape by a collector one service registers at its start (not in this process's registry), and the
# file that names it.
SCRAPE_TIME = {
    "tgm_queue_size": "src/tgm/observability/metrics.py",  # the dispatcher's QueueSizeCollector, from Redis
    "telegram_active_bots": "src/tgm/services/botregistry/__main__.py",  # the registry's CachedGaugeCollector
}


def declared_series() -> set[str]:
    """Every series name the metrics of src/tgm/observability/metrics.py produce (a histogram's _bucket, _sum, …)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names | set(SCRAPE_TIME)


def known_series() -> set[str]:
    """What a rule or a panel may query: tgm's series and Prometheus's own."""
    return declared_series() | BUILT_IN


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (label values, ranges and groupings taken out first)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_groupings))
    return {word for word in words if word not in PROMQL_WORDS}
