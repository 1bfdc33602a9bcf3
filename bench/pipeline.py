"""A labeling pipeline as a user runs it: 200,000 x 20 float32 logits scored three ways.

- the client: one label_quality call (cross entropy among its scores, the same pass), binary;
- hand-written JSON, as a pipeline without the client does it: read the limits, cut the data
  into chunks that fit, `json.dumps(x.tolist())`, POST cross entropy ("none") and softmax per
  chunk, retry 503s, and work out self-confidence, margin and entropy on its own side;
- in-process torch: the same numbers with no server at all.

Each reports wall time, bytes sent and requests.
"""

import json
import math
import time
from dataclasses import asdict, dataclass

import httpx2
import numpy as np
import torch
import torch.nn.functional as F

from bench.harness import serving

ROWS, CLASSES = 200_000, 20
SCORES = ["self_confidence", "normalized_margin", "confidence_weighted_entropy", "cross_entropy"]


@dataclass
class Way:
    name: str
    wall_s: float
    bytes_sent: int
    requests: int


class Counting(httpx2.HTTPTransport):
    """Counts the requests and the body bytes sent through it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.bytes_sent = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        self.bytes_sent += len(request.read())
        return super().handle_request(request)


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(ROWS, CLASSES)).astype(np.float32), rng.integers(0, CLASSES, ROWS)


def with_client(url: str, logits: np.ndarray, labels: np.ndarray) -> Way:
    from loss_service_client import Client

    counting = Counting()
    start = time.perf_counter()
    with Client(url, transport=counting, progress=False) as client:
        scores = client.label_quality(input=logits, target=labels, scores=SCORES)
    wall = time.perf_counter() - start
    if scores["cross_entropy"].shape != labels.shape:
        raise RuntimeError("the client answered the wrong shape")
    return Way("client (binary)", wall, counting.bytes_sent, counting.requests)


def by_hand(url: str, logits: np.ndarray, labels: np.ndarray) -> Way:
    counting = Counting()
    start = time.perf_counter()
    with httpx2.Client(base_url=url, transport=counting, timeout=300) as http:
        limits = http.get("/v1/info").json()["limits"]
        # Full-precision JSON is ~20 bytes a number: keep each body well under the limit.
        rows = min(limits["max_elements"], limits["max_body_bytes"] // 25) // CLASSES
        losses, probabilities = [], []
        for begin in range(0, ROWS, rows):
            x, y = logits[begin : begin + rows], labels[begin : begin + rows]
            loss = _post(
                http,
                "/v1/losses/cross_entropy",
                {"input": x.tolist(), "target": y.tolist(), "reduction": "none"},
            )
            losses.append(np.array(loss["loss"]))
            softmax = _post(http, "/v1/activations/softmax", {"input": x.tolist(), "dim": 1})
            probabilities.append(np.array(softmax["output"]))
    p = np.concatenate(probabilities)
    _scores(p, labels)
    wall = time.perf_counter() - start
    return Way("hand-written JSON", wall, counting.bytes_sent, counting.requests)


def _post(http: httpx2.Client, path: str, body: dict) -> dict:
    for attempt in range(8):
        response = http.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        if response.status_code != 503:
            response.raise_for_status()
            return response.json()
        time.sleep(0.1 * 2**attempt)
    raise RuntimeError("the server stayed busy")


def _scores(p: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The scores a pipeline without label_quality works out from softmax probabilities."""
    index = np.arange(len(labels))
    confidence = p[index, labels]
    others = p.copy()
    others[index, labels] = -np.inf
    margin = (confidence - others.max(1) + 1) / 2
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(1) / math.log(p.shape[1])
    ratio = entropy / np.clip(confidence, 1e-6, None)
    weighted = np.log(ratio + 1) / np.clip(ratio, 1e-6, None)
    return {
        "self_confidence": confidence,
        "normalized_margin": margin,
        "confidence_weighted_entropy": weighted,
    }


def in_process(logits: np.ndarray, labels: np.ndarray) -> Way:
    torch.set_num_threads(1)
    start = time.perf_counter()
    x, y = torch.from_numpy(logits), torch.from_numpy(labels)
    F.cross_entropy(x, y, reduction="none")
    _scores(torch.softmax(x, 1).numpy(), labels)
    return Way("in-process torch", time.perf_counter() - start, 0, 0)


def measure() -> dict:
    logits, labels = data()
    with serving("service") as (url, _):
        with_client(url, logits[:1000], labels[:1000])  # warm up
        ways = [with_client(url, logits, labels), by_hand(url, logits, labels)]
    ways.append(in_process(logits, labels))
    client, hand, torch_way = ways
    return {
        "ways": [asdict(w) for w in ways],
        "json_over_client": hand.wall_s / client.wall_s,
        "client_over_in_process": client.wall_s / torch_way.wall_s,
    }


def report(section: dict) -> None:
    print(f"\npipeline: {ROWS} x {CLASSES} logits, cross entropy and label quality")
    print("way                   wall         sent       requests")
    for w in section["ways"]:
        print(
            f"{w['name']:20} {w['wall_s']:8.3f} s {w['bytes_sent'] / 1e6:9.1f} MB {w['requests']:8}"
        )
    print(
        f"hand-written JSON / client: {section['json_over_client']:.1f}"
        f"   client / in-process torch: {section['client_over_in_process']:.1f}"
    )
