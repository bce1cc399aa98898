"""deploy/alerts.yml: a valid Prometheus rule file whose every metric the service exports.

CI also runs `promtool check rules` on it when promtool is installed (the Debian package
`prometheus`); this test keeps the file honest without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Histogram

from adapters import telemetry

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"
REQUIRED = {"EscalationEmailsFailing", "EscalationOutboxBacklog", "EscalationBeatNotTicking"}


def _exported_names() -> set[str]:
    names: set[str] = set()
    for value in vars(telemetry).values():
        if isinstance(value, Counter):
            names.add(f"{value._name}_total")
        elif isinstance(value, Histogram):
            names.update(f"{value._name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    names.update(
        [telemetry.OUTBOX_BACKLOG_AGE, telemetry.QUEUE_DEPTH, telemetry.BEAT_LAST_TICK,
         f"{telemetry.PREFIX}_celery_unacked"]
    )  # fmt: skip
    return names


def _rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rule_file_has_the_alerts_an_operator_needs() -> None:
    rules = _rules()
    assert REQUIRED <= {rule["alert"] for rule in rules}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]


def test_every_metric_an_alert_uses_is_exported() -> None:
    exported = _exported_names()
    for rule in _rules():
        used = set(re.findall(r"\bescalation_[a-z_]+\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)


def test_the_thresholds_are_the_ones_documented() -> None:
    by_name = {rule["alert"]: rule for rule in _rules()}
    assert "> 60" in by_name["EscalationOutboxBacklog"]["expr"]
    assert "> 120" in by_name["EscalationBeatNotTicking"]["expr"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
