"""promtool (Debian's prometheus package, installed by scripts/install-system-deps.sh) accepts deploy/prometheus and
runs the alerts' unit tests; every alert has a case where it fires and one where it must not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
ALERT_TESTS = DEPLOY / "tests" / "alerts_test.yml"


def promtool_path() -> str:
    """CI installs promtool, so its absence is a failure, never a skip."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: run scripts/install-system-deps.sh as root "
            "(or apt-get install -y --no-install-recommends prometheus)"
        )
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_path(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def assert_succeeds(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)}:\n{result.stdout}{result.stderr}"


def alert_names() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def test_promtool_checks_the_rules() -> None:
    assert_succeeds(promtool("check", "rules", DEPLOY / "alerts.yml"))


def test_promtool_checks_the_config_and_the_rule_files_it_loads() -> None:
    result = promtool("check", "config", DEPLOY / "prometheus.yml")
    assert_succeeds(result)
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout  # alerts.yml found beside the config


def test_every_alert_fires_on_its_synthetic_series_and_stays_quiet_under_its_threshold() -> None:
    assert_succeeds(promtool("test", "rules", ALERT_TESTS))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """A quiet case alone would pass for a misspelled alert name: each alert needs one that fires, too."""
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == alert_names()
    assert quiet == alert_names()


def test_the_unit_tests_catch_a_threshold_moved(tmp_path: Path) -> None:
    broken = (DEPLOY / "alerts.yml").read_text().replace("(tgm_queue_size) > 1000", "(tgm_queue_size) > 999")
    assert broken != (DEPLOY / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copytree(DEPLOY / "tests", tmp_path / "tests")
    result = promtool("test", "rules", tmp_path / "tests" / ALERT_TESTS.name)
    assert result.returncode != 0
    assert "alertname: TgmQueueBacklog" in result.stdout + result.stderr


def test_a_missing_promtool_fails_naming_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match=r"scripts/install-system-deps\.sh"):
        promtool_path()
