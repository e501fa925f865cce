"""docker-compose.yml and deploy/k8s/ say what `make run` does: every process of runtime.topology runs and is
restarted when it exits; the gateway is live on /about/ and ready on /health/ready; the pool settings are the
defaults the connection budget is computed from."""
from pathlib import Path

import yaml

from runtime.config import DEFAULTS
from runtime.topology import PROCESSES

ROOT = Path(__file__).resolve().parents[2]
POOL_SETTINGS = ("STRATUM_PG_POOL_SIZE", "STRATUM_PG_MAX_OVERFLOW", "STRATUM_READ_POOL_SIZE",
                 "STRATUM_READ_MAX_OVERFLOW")


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def k8s():
    return {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all((ROOT / "deploy/k8s/stratum.yaml").read_text())}


def test_compose_restarts_every_process_and_waits_for_readiness():
    services = compose()
    for name in PROCESSES:
        assert services[name]["environment"]["SERVICE"] == name
        assert services[name]["restart"] in ("unless-stopped", "always", "on-failure"), name
    assert "/health/ready" in " ".join(services["gateway"]["healthcheck"]["test"])


def test_kubernetes_runs_and_restarts_every_process():
    manifests = k8s()
    for name in PROCESSES:
        pod = manifests["Deployment", name]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Always"
        assert {"name": "SERVICE", "value": name} in pod["containers"][0]["env"]
    gateway = manifests["Deployment", "gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/about/"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert manifests["Job", "stratum-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] == \
        "runtime.migrate"


def test_kubernetes_pools_are_the_budgeted_defaults():
    data = k8s()["ConfigMap", "stratum"]["data"]
    assert {key: data[key] for key in POOL_SETTINGS} == {key: DEFAULTS[key] for key in POOL_SETTINGS}


def test_the_login_limit_is_shared_by_as_many_gateways_as_run():
    """gateway.ratelimit splits the per-address limit by STRATUM_GATEWAY_PROCESSES: it must be the replica count."""
    manifests = k8s()
    assert int(manifests["ConfigMap", "stratum"]["data"]["STRATUM_GATEWAY_PROCESSES"]) == \
        manifests["Deployment", "gateway"]["spec"]["replicas"]
    assert compose()["gateway"]["environment"]["STRATUM_GATEWAY_PROCESSES"] == "1"
