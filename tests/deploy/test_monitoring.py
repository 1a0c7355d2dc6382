"""The monitoring files in deploy/, offline: the Prometheus alert rules pass `promtool check
rules` and their unit tests (`promtool test rules`: every alert fires and clears), and every
query of the rules and of the Grafana dashboard names a metric family a role exports (or
one of the few exporters' families the README names)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dnc.metrics import GateMetrics, ListWriterMetrics, RoleMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/dnc-alerts.yaml"
RULE_TESTS = ROOT / "deploy/prometheus/dnc-alerts.test.yaml"
DASHBOARD = ROOT / "deploy/grafana/dnc-dashboard.json"

# Not ours: Prometheus' scrape health, and redis_exporter's memory families.
EXTERNAL = {"up", "redis_memory_used_bytes", "redis_memory_max_bytes"}
# PromQL words that look like metric names.
KEYWORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "rate", "irate", "increase", "delta", "deriv",
    "histogram_quantile", "absent", "bool", "offset", "time", "vector", "clamp_min",
    "clamp_max", "abs", "label_replace", "topk", "bottomk", "quantile", "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `make tools` installs it (Debian package prometheus)"
        )
    return path


def exported() -> set[str]:
    """Every sample name the roles export (``_total``, ``_bucket``, … included)."""
    names: set[str] = set()
    for metrics in (RoleMetrics("ingest"), ListWriterMetrics(), GateMetrics()):
        text = generate_latest(metrics.registry).decode()
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(s.name for s in family.samples)
        # Families with labels have no sample until they are used: name them by type.
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                names.add(name)
                suffixes = {
                    "counter": ["_total"],
                    "histogram": ["_bucket", "_sum", "_count"],
                }.get(kind, [])
                names.update(name + s for s in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {w for w in words if w.lower() not in KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", w)}


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_alert_rules_are_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_and_clears_in_the_rule_unit_tests() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"] for t in tests for check in t["alert_rule_test"] if check["exp_alerts"]
    }
    cleared = {
        check["alertname"]
        for t in tests
        for check in t["alert_rule_test"]
        if not check["exp_alerts"]
    }
    alerts = {name for name, _ in rule_exprs()}
    assert alerts - fired == set(), "alerts no test makes fire"
    assert alerts - cleared == set(), "alerts no test sees clear"


def test_every_query_names_a_metric_the_roles_export() -> None:
    known = exported() | EXTERNAL
    dashboard = json.loads(DASHBOARD.read_text())
    queries = rule_exprs() + dashboard_exprs(dashboard)
    assert len(dashboard_exprs(dashboard)) >= 10
    unknown = {(where, name) for where, expr in queries for name in metric_names(expr) - known}
    assert unknown == set()
    for where, expr in queries:
        assert metric_names(expr), f"{where}: no metric found in {expr!r}"


def test_the_checker_finds_a_misspelt_metric() -> None:
    known = exported() | EXTERNAL
    names = metric_names('sum by (role) (rate(dnc_record_consumed_total{role="gate"}[5m]))')
    assert names - known == {"dnc_record_consumed_total"}


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys()
        assert p["datasource"]["uid"] == "${datasource}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for subject in ("throughput", "lag", "effective delay", "failing closed"):
        assert subject in titles


# --- the Helm chart serves and (optionally) scrapes the metrics ------------------------------


def test_every_role_serves_metrics_on_the_metrics_port() -> None:
    from tests.deploy.test_deploy_files import by_kind, container, deployments, render

    docs = render()
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    port = int(config["DNC_METRICS_PORT"])
    for role, dep in deployments(docs).items():
        ports = {p["name"]: p["containerPort"] for p in container(dep).get("ports", [])}
        assert ports.get("metrics") == port, role
    off = render("--set", "metrics.enabled=false")
    assert "DNC_METRICS_PORT" not in next(iter(by_kind(off, "ConfigMap").values()))["data"]
    assert not by_kind(render(), "PodMonitor")


def test_the_pod_monitors_select_each_role_s_pods_and_name_the_jobs_the_alerts_expect() -> None:
    from tests.deploy.test_deploy_files import by_kind, deployments, render

    docs = render(
        "--set",
        "metrics.podMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.labels.release=prometheus",
    )
    monitors = by_kind(docs, "PodMonitor")
    deps = deployments(docs)
    assert len(monitors) == len(deps)
    for monitor in monitors.values():
        role = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        pod_labels = deps[role]["spec"]["template"]["metadata"]["labels"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        (job,) = endpoint["relabelings"]
        assert job == {"targetLabel": "job", "replacement": f"dnc-{role}"}
    rules = RULES.read_text()
    assert 'job=~"dnc.*"' in rules  # DncRoleDown finds these jobs
