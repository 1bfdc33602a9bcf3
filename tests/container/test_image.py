"""The Dockerfile, built and run for real with podman (there is no Docker engine here).

The machine is prepared by ../shared/tools/container/make-base-image.sh (podman, runc and a
base image made from Debian's packages: no registry is reachable). The test skips, saying why,
only where podman cannot run at all; a failure to build or serve the image fails it.
"""

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx2
import numpy as np
import orjson
import pytest
import torch
import torch.nn.functional as F
import tritonclient.grpc as triton_grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import free_port

ROOT = Path(__file__).parent.parent.parent
TOOLS = ROOT.parent / "shared" / "tools" / "container"
TAG = "localhost/loss-service:test"
BASE = "localhost/pybase:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

pytestmark = pytest.mark.container


def podman(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr[-3000:]}")
    return done.stdout.strip()


def wheels() -> str | None:
    """The machine's local wheel folder, which holds torch's CPU build."""
    found = subprocess.run(
        ["pip", "config", "get", "global.find-links"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if found and Path(found).is_dir() else None


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0 or not TOOLS.is_dir() or not shutil.which("apt-get"):
        pytest.skip("podman cannot run here: needs root, apt-get and ../shared/tools/container")
    prepared = subprocess.run(
        ["bash", str(TOOLS / "make-base-image.sh")], capture_output=True, text=True, check=False
    )
    if prepared.returncode:
        pytest.skip(f"podman cannot run here: make-base-image.sh failed: {prepared.stderr[-800:]}")
    build = ["build", "--format", "docker", "-t", TAG, "--build-arg", f"BASE_IMAGE={BASE}"]
    if CA_BUNDLE.is_file():
        build += ["--secret", f"id=pip_cert,src={CA_BUNDLE}"]
    if folder := wheels():  # torch from the local folder: no PyTorch index is reachable here
        build += ["-v", f"{folder}:/wheels:ro", "--build-arg", "PIP_FIND_LINKS=/wheels"]
        build += ["--build-arg", "TORCH_INDEX_URL="]
    start = time.monotonic()
    podman(*build, str(ROOT), timeout=1800)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG))
    print(f"\nimage {TAG}: built in {time.monotonic() - start:.0f} s, {size / 1e6:.0f} MB")
    return TAG


def start(image: str) -> tuple[str, int]:
    """A new container on a free loopback port, once /readyz answers 200."""
    port = free_port()
    began = time.monotonic()
    cid = podman("run", "-d", "-p", f"127.0.0.1:{port}:8000", image)
    while time.monotonic() - began < 120:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                print(f"\ncontainer ready in {time.monotonic() - began:.1f} s")
                return cid, port
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    logs = podman("logs", cid)
    subprocess.run(["podman", "rm", "-f", cid], capture_output=True, check=False)
    pytest.fail(f"the container never became ready: {logs}")


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[tuple[str, str]]:
    cid, port = start(image)
    try:
        yield cid, f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["podman", "rm", "-f", cid], capture_output=True, check=False)


def test_serves_a_cross_entropy_with_its_gradient(container: tuple[str, str]) -> None:
    _, url = container
    logits = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
    response = httpx2.post(
        f"{url}/v1/losses/cross_entropy",
        json={"input": logits, "target": [2, 0], "grad": True, "dtype": "float64"},
    )
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor([2, 0]))
    loss.backward()
    assert response.status_code == 200
    assert response.json()["loss"] == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(response.json()["grad"]["input"], x.grad.numpy(), rtol=1e-12)


def test_runs_as_a_user_other_than_root(container: tuple[str, str]) -> None:
    cid, _ = container
    assert podman("exec", cid, "id", "-u") == "10001"


def test_its_healthcheck_passes(container: tuple[str, str]) -> None:
    cid, _ = container
    podman("healthcheck", "run", cid)  # raises unless healthy


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(image: str) -> None:
    """Half a request is sent, the container is stopped, the other half follows: the answer
    still comes, and the container exits 0 well within podman's 10 s."""
    cid, port = start(image)
    try:
        content = orjson.dumps({"input": [[1.0, 2.0, 3.0]] * 2000, "target": [2] * 2000})
        head = (
            f"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + content[: len(content) // 2])
            time.sleep(0.3)
            stopping = threading.Thread(target=podman, args=("stop", "-t", "10", cid))
            began = time.monotonic()
            stopping.start()
            time.sleep(1.0)  # SIGTERM has arrived; the request is still half sent
            connection.sendall(content[len(content) // 2 :])
            answer = connection.recv(1 << 16).decode()
            stopping.join()
            stopped = time.monotonic() - began
        assert answer.startswith("HTTP/1.1 200"), answer[:300]
        assert stopped < 10
        assert podman("inspect", "--format", "{{.State.ExitCode}}", cid) == "0"
    finally:
        subprocess.run(["podman", "rm", "-f", cid], capture_output=True, check=False)


def test_the_deployment_plays_with_podman(image: str, tmp_path: Path) -> None:
    """A copy of deploy/k8s/deployment.yaml with one replica, the image built here and free
    host ports, played with `podman kube play`: the pod starts, REST and gRPC answer a loss,
    and the health endpoints answer on both. (podman 4.3 runs no probes.)"""
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    name = f"loss-service-play-{os.getpid()}"
    deployment["metadata"]["name"] = name
    deployment["spec"]["replicas"] = 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container |= {"image": image, "imagePullPolicy": "Never"}
    ports = {}
    for port in container["ports"]:
        ports[port["name"]] = port["hostPort"] = free_port()
        port["hostIP"] = "127.0.0.1"
    played = tmp_path / "deployment.yaml"
    played.write_text(yaml.safe_dump(deployment))
    podman("kube", "play", str(played))
    try:
        probes, http = f"http://127.0.0.1:{ports['probes']}", f"http://127.0.0.1:{ports['http']}"
        deadline = time.monotonic() + 120
        while not _ready(probes):
            assert time.monotonic() < deadline, podman("pod", "logs", f"{name}-pod")
            time.sleep(0.5)
        for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):
            assert httpx2.get(f"{probes}{path}").status_code == 200
        x, target = np.array([[1.0, 2.0, 3.0]]), np.array([2])
        rest = httpx2.post(
            f"{http}/v1/losses/cross_entropy",
            json={"input": x.tolist(), "target": target.tolist(), "dtype": "float64"},
        )
        expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(target)).item()
        assert rest.json()["loss"] == pytest.approx(expected, rel=1e-12)
        inputs = [
            triton_grpc.InferInput("input", [1, 3], "FP64"),
            triton_grpc.InferInput("target", [1], "INT64"),
        ]
        inputs[0].set_data_from_numpy(x)
        inputs[1].set_data_from_numpy(target)
        address = f"127.0.0.1:{ports['grpc']}"
        with triton_grpc.InferenceServerClient(address) as client:
            answer = client.infer("cross_entropy", inputs, parameters={"dtype": "float64"})
            assert answer.as_numpy("loss") == pytest.approx(expected, rel=1e-12)
            assert client.is_server_ready()
        with grpc.insecure_channel(address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        subprocess.run(
            ["podman", "kube", "down", str(played)], capture_output=True, check=False, timeout=60
        )


def _ready(probes: str) -> bool:
    try:
        return httpx2.get(f"{probes}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False
