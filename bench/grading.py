"""Grading 1,000,000 x 100 float32 logits in one pass, three ways, with accuracy, top-5
accuracy, ECE (15 bins), the Brier score and macro AUROC at 100 thresholds:

- the client: one Client.grade call (binary /v2 tensors, split to the server's limits, the
  parts graded concurrently and their states merged by the server);
- in-process torchmetrics on the whole array, no server: the limit (Brier as a torch line,
  torchmetrics has no multiclass Brier);
- hand-written JSON, as a pipeline without grades does it: chunks of 50,000 rows, each
  `json.dumps(x.tolist())` POSTed to softmax, the probabilities read back, and the metrics
  worked out client-side in numpy (binned AUROC by one sort of each probability into the
  thresholds, the fastest way numpy has).

Every way's values are checked against the in-process ones. Goal: the client within 3x of
torchmetrics, and at least 20x faster than the hand-written loop.
"""

import json
import time
from dataclasses import asdict, dataclass

import httpx2
import numpy as np
import torch

from bench.harness import serving

ROWS, CLASSES, CHUNK, THRESHOLDS, BINS = 1_000_000, 100, 50_000, 100, 15
METRICS = {
    "accuracy": {},
    "top_5": {"metric": "accuracy", "top_k": 5},
    "calibration_error": {"n_bins": BINS},
    "brier_score": {},
    "auroc": {"thresholds": THRESHOLDS},
}
SERVER = {"MAX_BODY_BYTES": str(256 << 20)}
"""The hand-written loop's 50,000-row chunk is 100 MB of JSON: over the default 64 MiB."""


@dataclass
class Way:
    name: str
    wall_s: float
    values: dict[str, float]


def data(rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, rows)
    logits = rng.normal(size=(rows, CLASSES)).astype(np.float32)
    logits[np.arange(rows), labels] += 1.5  # right about a fifth of the time, top-5 four in ten
    return logits, labels


def with_client(url: str, logits: np.ndarray, labels: np.ndarray) -> Way:
    from loss_service_client import Client

    start = time.perf_counter()
    with Client(url, progress=False, timeout=600) as client:
        found = client.grade(
            METRICS, input=logits, target=labels, task="multiclass", input_kind="logits"
        )
    wall = time.perf_counter() - start
    values = {
        "accuracy": found["accuracy"].values["accuracy"],
        "top_5": found["top_5"].values["accuracy"],
        "ece": found["calibration_error"].values["ece"],
        "brier": found["brier_score"].values["brier_score"],
        "auroc": found["auroc"].values["auroc"],
    }
    return Way(f"client ({found.requests} requests)", wall, values)


def in_process(logits: np.ndarray, labels: np.ndarray) -> Way:
    from torchmetrics.functional import classification as tm

    start = time.perf_counter()
    x, y = torch.from_numpy(logits), torch.from_numpy(labels)
    p = torch.softmax(x, 1)
    values = {
        "accuracy": tm.multiclass_accuracy(p, y, CLASSES, average="micro"),
        "top_5": tm.multiclass_accuracy(p, y, CLASSES, top_k=5, average="micro"),
        "ece": tm.multiclass_calibration_error(p, y, CLASSES, n_bins=BINS),
        "brier": ((p - torch.nn.functional.one_hot(y, CLASSES)) ** 2).sum(1).mean(),
        "auroc": tm.multiclass_auroc(p, y, CLASSES, thresholds=THRESHOLDS),
    }
    wall = time.perf_counter() - start
    return Way("in-process torchmetrics", wall, {k: float(v) for k, v in values.items()})


def by_hand(url: str, logits: np.ndarray, labels: np.ndarray) -> Way:
    start = time.perf_counter()
    with httpx2.Client(base_url=url, timeout=600) as http:
        counts = _Counts()
        for begin in range(0, len(labels), CHUNK):
            x, y = logits[begin : begin + CHUNK], labels[begin : begin + CHUNK]
            response = http.post(
                "/v1/activations/softmax",
                content=json.dumps({"input": x.tolist(), "dim": 1}),
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            counts.add(np.array(response.json()["output"]), y)
    return Way("hand-written JSON", time.perf_counter() - start, counts.values())


class _Counts:
    """What a careful pipeline keeps per chunk, in numpy."""

    def __init__(self) -> None:
        self.n = self.correct = self.top5 = self.squares = 0.0
        self.bins = np.zeros((3, BINS + 1))
        self.positive = np.zeros((CLASSES, THRESHOLDS + 1))
        self.every = np.zeros((CLASSES, THRESHOLDS + 1))

    def add(self, p: np.ndarray, y: np.ndarray) -> None:
        rows = np.arange(len(y))
        self.n += len(y)
        self.correct += (p.argmax(1) == y).sum()
        mine = p[rows, y]
        self.top5 += ((p > mine[:, None]).sum(1) < 5).sum()
        self.squares += ((p**2).sum(1) - 2 * mine + 1).sum()
        confidence = p.max(1)
        index = np.searchsorted(np.linspace(0, 1, BINS + 1), confidence, side="right") - 1
        self.bins[0] += np.bincount(index, minlength=BINS + 1)
        self.bins[1] += np.bincount(index, confidence, BINS + 1)
        self.bins[2] += np.bincount(index, p.argmax(1) == y, BINS + 1)
        keys = np.searchsorted(np.linspace(0, 1, THRESHOLDS), p, side="right")
        keys += np.arange(CLASSES) * (THRESHOLDS + 1)
        size = CLASSES * (THRESHOLDS + 1)
        self.every += np.bincount(keys.ravel(), minlength=size).reshape(CLASSES, -1)
        self.positive += np.bincount(keys[rows, y], minlength=size).reshape(CLASSES, -1)

    def values(self) -> dict[str, float]:
        count, confidence, correct = self.bins
        kept = count > 0
        ece = (np.abs(confidence[kept] - correct[kept]) / self.n).sum()
        tp = self.positive[:, ::-1].cumsum(1)[:, ::-1][:, 1:]
        fp = (self.every - self.positive)[:, ::-1].cumsum(1)[:, ::-1][:, 1:]
        tpr, fpr = tp / tp[:, :1], fp / fp[:, :1]
        auroc = np.trapezoid(tpr[:, ::-1], fpr[:, ::-1], axis=1).mean()
        return {
            "accuracy": self.correct / self.n,
            "top_5": self.top5 / self.n,
            "ece": float(ece),
            "brier": self.squares / self.n,
            "auroc": float(auroc),
        }


def measure(rows: int = ROWS) -> dict:
    logits, labels = data(rows)
    limit = in_process(logits, labels)
    with serving("service", env=SERVER) as (url, _):
        with_client(url, logits[:10_000], labels[:10_000])  # warm up
        client = with_client(url, logits, labels)
        hand = by_hand(url, logits, labels)
    for way in (client, hand):
        for name, value in way.values.items():
            if abs(value - limit.values[name]) > 1e-4:
                raise RuntimeError(f"{way.name}: {name} {value} != {limit.values[name]}")
    return {
        "rows": rows,
        "ways": [asdict(w) for w in (client, limit, hand)],
        "client_over_torchmetrics": client.wall_s / limit.wall_s,
        "hand_over_client": hand.wall_s / client.wall_s,
    }


def report(section: dict) -> None:
    print(f"\ngrading: {section['rows']} x {CLASSES} logits; accuracy, top-5, ECE, Brier, AUROC")
    print("way                              wall")
    for w in section["ways"]:
        print(f"{w['name']:30} {w['wall_s']:8.2f} s")
    print(
        f"client / torchmetrics: {section['client_over_torchmetrics']:.2f} (goal <= 3)"
        f"   hand-written JSON / client: {section['hand_over_client']:.1f} (goal >= 20)"
    )


if __name__ == "__main__":
    report(measure())
