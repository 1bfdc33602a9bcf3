"""The Kubernetes manifests: valid against the Kubernetes schemas (offline), and as promised."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).parent.parent / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
VERSION = kubernetes_validate.latest_version()


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return document


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, VERSION, strict=True)


@pytest.mark.parametrize("name", ["deployment.yaml", "deployment-gpu.yaml"])
def test_deployments_run_locked_down_and_probe_health(name: str) -> None:
    pod = load(name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"requests", "limits"} <= container["resources"].keys()
    assert container["ports"][0]["containerPort"] == 8000


def test_the_gpu_deployment_asks_for_one_gpu_per_pod() -> None:
    (container,) = load("deployment-gpu.yaml")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "LOSS_SERVICE_DEVICE", "value": "cuda"} in container["env"]


def test_the_service_the_autoscaler_and_the_budget_select_the_deployment() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert load("service.yaml")["spec"]["selector"] == labels
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    assert load("hpa.yaml")["spec"]["scaleTargetRef"]["name"] == "loss-service"
