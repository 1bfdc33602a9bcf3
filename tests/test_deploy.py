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
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert container["readinessProbe"]["grpc"] == {"port": 8001}  # grpc.health.v1, service ""
    assert {"requests", "limits"} <= container["resources"].keys()
    # LOSS_SERVICE_PORT, LOSS_SERVICE_GRPC_PORT and LOSS_SERVICE_PROBE_PORT
    ports = {"http": 8000, "grpc": 8001, "probes": 8002}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == ports


def test_the_gpu_deployment_asks_for_one_gpu_per_pod() -> None:
    (container,) = load("deployment-gpu.yaml")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "LOSS_SERVICE_DEVICE", "value": "cuda"} in container["env"]


def test_the_service_the_autoscaler_and_the_budget_select_the_deployment() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load("service.yaml")["spec"]
    assert service["selector"] == labels
    targets = {p["name"]: p["targetPort"] for p in service["ports"]}
    assert targets == {"http": "http", "grpc": "grpc"}
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    assert load("hpa.yaml")["spec"]["scaleTargetRef"]["name"] == "loss-service"


KSERVE = Path(__file__).parent.parent / "deploy" / "kserve" / "inferenceservice.yaml"


def test_the_kserve_predictor_is_a_valid_pod_spec_probing_the_v2_health_routes() -> None:
    """No KServe schemas offline: the predictor (a PodSpec plus KServe's scaling fields) is
    checked as the Pod it becomes, and the rest as KServe documents it."""
    service: dict[str, Any] = yaml.safe_load(KSERVE.read_text())
    assert (service["apiVersion"], service["kind"]) == (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    )
    predictor = dict(service["spec"]["predictor"])
    scaling = {
        k: predictor.pop(k) for k in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")
    }
    assert scaling["scaleMetric"] in {"cpu", "memory", "concurrency", "rps"}
    assert 1 <= scaling["minReplicas"] <= scaling["maxReplicas"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": predictor}
    kubernetes_validate.validate(pod, VERSION, strict=True)
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.keys() == {"http1", "h2c"}  # KServe's names for REST and gRPC
    assert {"name": "LOSS_SERVICE_PORT", "value": str(ports["http1"])} in container["env"]
    assert {"name": "LOSS_SERVICE_GRPC_PORT", "value": str(ports["h2c"])} in container["env"]
    assert {"name": "LOSS_SERVICE_HOST", "value": "0.0.0.0"} in container["env"]
    probes = 8002  # LOSS_SERVICE_PROBE_PORT's default: connections apart from the clients'
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": probes}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": probes}
    assert predictor["securityContext"]["runAsNonRoot"] is True
