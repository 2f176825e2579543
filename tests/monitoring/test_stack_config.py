"""The monitoring stack's generated files: valid for Debian's own checkers, shaped by the settings.

promtool and amtool are the real programs of Debian's prometheus and prometheus-alertmanager
(make apt installs them); `promtool test rules` evaluates the alert rules on made-up series, so
each alert is shown to fire when its condition holds long enough, and only then.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from floe.config import Settings
from floe.monitoring import prometheus_config as pc
from floe.monitoring.access import scrape_token_path
from floe.monitoring.stack import MonitoringStack

pytestmark = pytest.mark.skipif(
    not (shutil.which("promtool") and shutil.which("amtool")),
    reason="Debian's prometheus and prometheus-alertmanager are not installed (make apt)",
)


def _written(tmp_path: Path, **kw) -> tuple[MonitoringStack, dict[str, dict]]:
    stack = MonitoringStack(Settings(home=tmp_path / "home", **kw))
    stack.write_files()
    docs = {p.name: yaml.safe_load(p.read_text()) for p in stack.files()}
    return stack, docs


def _check(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_generated_files_pass_promtool_and_amtool(tmp_path: Path):
    stack, _ = _written(tmp_path)
    prom, am = stack.directory("prometheus"), stack.directory("alertmanager")
    out = _check("promtool", "check", "config", str(prom / "prometheus.yml"))  # checks rules.yml too
    assert "SUCCESS: 5 rules found" in out, out
    _check("amtool", "check-config", str(am / "alertmanager.yml"))
    # Secrets stay out of the files, which only floe's user reads.
    token = scrape_token_path(stack.settings.home).read_text().strip()
    for path in stack.files():
        assert token not in path.read_text()
        assert path.stat().st_mode & 0o077 == 0, path


def test_configuration_follows_the_settings(tmp_path: Path):
    stack, docs = _written(tmp_path, host="0.0.0.0", port=18501, prometheus_port=19590, alertmanager_port=19591,
                           prometheus_retention="2d", scrape_interval=5)
    prom = docs["prometheus.yml"]
    assert prom["global"]["scrape_interval"] == "5s" and prom["global"]["scrape_timeout"] == "5s"
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    cred = str(scrape_token_path(tmp_path / "home"))
    # A server on every interface is scraped on loopback.
    assert jobs["floe"]["static_configs"] == [{"targets": ["127.0.0.1:18501"]}]
    assert jobs["floe"]["authorization"] == {"type": "Bearer", "credentials_file": cred}
    sd = jobs["floe-nodes"]["http_sd_configs"][0]
    assert sd["url"] == "http://127.0.0.1:18501/monitoring/sd"
    assert sd["authorization"]["credentials_file"] == cred == jobs["floe-nodes"]["authorization"]["credentials_file"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19591"]
    assert prom["rule_files"] == [str(stack.directory("prometheus") / "rules.yml")]
    argv = stack.argv("prometheus")
    assert "--web.listen-address=127.0.0.1:19590" in argv and "--storage.tsdb.retention.time=2d" in argv
    assert f"--storage.tsdb.path={tmp_path / 'home/monitoring/prometheus/data'}" in argv
    am_argv = stack.argv("alertmanager")
    assert "--web.listen-address=127.0.0.1:19591" in am_argv and "--cluster.listen-address=" in am_argv
    # Alerts wait a few scrapes: 4 at 5 s for a node down.
    rules = {r["alert"]: r for r in docs["rules.yml"]["groups"][0]["rules"]}
    assert set(rules) == {"FloeNodeDown", "FloeClusterUnhealthy", "FloeOperationStuck", "FloeShareNearlyFull",
                          "FloeDown"}
    assert rules["FloeNodeDown"]["for"] == "20s" and rules["FloeShareNearlyFull"]["for"] == "100s"
    assert {r["labels"]["severity"] for r in rules.values()} <= {"critical", "warning"}


@pytest.mark.parametrize("host, expected", [("127.0.0.1", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]"),
                                            ("10.1.2.3", "10.1.2.3"), ("", "127.0.0.1")])
def test_scrape_host(host: str, expected: str):
    assert pc.scrape_host(host) == expected


@pytest.mark.parametrize("env, message", [
    ({"FLOE_PROMETHEUS_PORT": "x"}, "FLOE_PROMETHEUS_PORT 'x' is not a TCP port"),
    ({"FLOE_ALERTMANAGER_PORT": "70000"}, "FLOE_ALERTMANAGER_PORT '70000' is not a TCP port"),
    ({"FLOE_PROMETHEUS_PORT": "9093"}, "must differ"),
    ({"FLOE_PROMETHEUS_RETENTION": "15 days"}, "is not a duration"),
    ({"FLOE_SCRAPE_INTERVAL": "0"}, "from 1 to 3600"),
])
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict, message: str):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=message):
        Settings.from_env()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    for key, value in {"FLOE_MONITORING": "1", "FLOE_PROMETHEUS_PORT": "19590", "FLOE_ALERTMANAGER_PORT": "19591",
                       "FLOE_PROMETHEUS_RETENTION": "30d", "FLOE_SCRAPE_INTERVAL": "5"}.items():
        monkeypatch.setenv(key, value)
    s = Settings.from_env()
    assert (s.monitoring, s.prometheus_port, s.alertmanager_port, s.prometheus_retention, s.scrape_interval) == (
        True, 19590, 19591, "30d", 5)
    monkeypatch.setenv("FLOE_MONITORING", "0")
    assert Settings.from_env().monitoring is False


NODE = 'project="p",cluster="c",nodegroup="default-worker",role="worker",node="c-node-1",source="node"'
RULE_TESTS = {
    "evaluation_interval": "1s",
    "tests": [{
        "interval": "1s",
        "input_series": [
            # A node that stops answering at 2 s; another that never does.
            {"series": f'up{{job="floe-nodes",{NODE}}}', "values": "1 1 0x20"},
            {"series": 'up{job="floe-nodes",project="p",cluster="c",nodegroup="default-worker",role="worker",'
                       'node="c-node-2",source="node"}', "values": "1x22"},
            {"series": 'floe_cluster_info{project="p",cluster="c",coe="swarm",status="CREATE_COMPLETE",'
                       'health="UNHEALTHY"}', "values": "1x22"},
            {"series": 'floe_operations_overdue{kind="create"}', "values": "0 0 1x20"},
            {"series": 'floe_share_used_bytes{project="p",share="s"}', "values": "95x22"},
            {"series": 'floe_share_size_bytes{project="p",share="s"}', "values": "100x22"},
            {"series": 'floe_share_used_bytes{project="p",share="t"}', "values": "50x22"},
            {"series": 'floe_share_size_bytes{project="p",share="t"}', "values": "100x22"},
        ],
        "alert_rule_test": [
            {"eval_time": "5s", "alertname": "FloeNodeDown", "exp_alerts": []},  # pending: down 3 s of 4
            {"eval_time": "7s", "alertname": "FloeNodeDown", "exp_alerts": [{
                "exp_labels": {"job": "floe-nodes", "project": "p", "cluster": "c", "nodegroup": "default-worker",
                               "role": "worker", "node": "c-node-1", "source": "node", "severity": "critical"},
                "exp_annotations": {
                    "summary": "Node c-node-1 of cluster p/c is down",
                    "description": "floe cannot read node c-node-1 (worker, nodegroup default-worker) of cluster c "
                                   "in project p.",
                },
            }]},
            {"eval_time": "7s", "alertname": "FloeClusterUnhealthy", "exp_alerts": []},
            {"eval_time": "9s", "alertname": "FloeClusterUnhealthy", "exp_alerts": [{
                "exp_labels": {"project": "p", "cluster": "c", "coe": "swarm", "status": "CREATE_COMPLETE",
                               "health": "UNHEALTHY", "severity": "warning"},
                "exp_annotations": {
                    "summary": "Cluster p/c is UNHEALTHY",
                    "description": "floe's health round finds cluster c (swarm, status CREATE_COMPLETE) of project p "
                                   "unhealthy: see its health_status_reason.",
                },
            }]},
            {"eval_time": "7s", "alertname": "FloeOperationStuck", "exp_alerts": [{
                "exp_labels": {"kind": "create", "severity": "warning"},
                "exp_annotations": {
                    "summary": "1 create operation(s) past their timeout",
                    "description": "Operations of kind create are still active past their deadline; the watchdog "
                                   "should fail them: look at the server's log.",
                },
            }]},
            {"eval_time": "19s", "alertname": "FloeShareNearlyFull", "exp_alerts": []},
            {"eval_time": "21s", "alertname": "FloeShareNearlyFull", "exp_alerts": [{
                "exp_labels": {"project": "p", "share": "s", "severity": "warning"},
                "exp_annotations": {
                    "summary": "Share p/s is 95% full",
                    "description": "Share s of project p has used more than 90% of its size: extend it or free space.",
                },
            }]},
        ],
    }],
}


def test_alert_rules_fire_when_their_condition_holds(tmp_path: Path):
    stack, _ = _written(tmp_path, scrape_interval=1)
    tests = tmp_path / "rules-test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(stack.directory("prometheus") / "rules.yml")], **RULE_TESTS}))
    out = _check("promtool", "test", "rules", str(tests))
    assert "SUCCESS" in out, out
