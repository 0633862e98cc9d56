"""The alerts on the module's own metrics: promtool on deploy/kubernetes/prometheusrule.yaml's
rules, then on the series recorded in prometheusrule_test.yaml. What the rules read is checked
statically in t/static/test_monitoring.py."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "static"))
from k8s import load, only, prometheus_rules  # noqa: E402


@pytest.fixture(scope="module")
def manifests():
    return load()


def test_prometheus_rules_pass_promtool(manifests, tmp_path):
    """promtool check rules on the PrometheusRule's groups, then promtool test rules with
    prometheusrule_test.yaml: each alert fires on the series it is about, at the time it
    should, with its labels and annotations rendered, and stays quiet on a healthy hook."""
    if not shutil.which("promtool"):
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian's prometheus package)")
        pytest.skip("SKIPPED LOUDLY: promtool is not installed (apt-get install prometheus)")
    rules = tmp_path / "dingtalk-hook.rules.yaml"
    rules.write_text(yaml.safe_dump(only(manifests, "PrometheusRule")["spec"], sort_keys=False))
    p = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS: 5 rules found" in p.stdout, p.stdout + p.stderr
    shutil.copy(os.path.join(os.path.dirname(__file__), "prometheusrule_test.yaml"), tmp_path)
    p = subprocess.run(["promtool", "test", "rules", "prometheusrule_test.yaml"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    tests = yaml.safe_load(open(tmp_path / "prometheusrule_test.yaml"))["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert fired == {r["alert"] for r in prometheus_rules(manifests)}, "an alert never fires"
