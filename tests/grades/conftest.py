"""Grading through the real app: one upload, several metrics, answers as numpy."""

import itertools
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import strategies as st


def grades(client: TestClient, metrics: dict[str, Any], **body: Any) -> dict[str, Any]:
    """POST /v1/grades with numpy arrays (float64 unless dtype says), each grade's values."""
    sent = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in body.items()}
    response = client.post("/v1/grades", json={"dtype": "float64", "metrics": metrics} | sent)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["grades"]
    return found


def value(grade: dict[str, Any], name: str) -> Any:
    found = grade["values"][name]
    return np.asarray(found, dtype=float) if isinstance(found, list) else found


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@st.composite
def multiclass(draw: st.DrawFn, low: int = 2, high: int = 12) -> dict[str, np.ndarray]:
    """logits, their softmax, targets and sample weights of a random batch."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, c = draw(st.integers(5, 300)), draw(st.integers(low, high))
    logits = rng.normal(scale=draw(st.sampled_from([0.5, 2.0, 6.0])), size=(n, c))
    return {
        "logits": logits,
        "probabilities": softmax(logits),
        "target": rng.integers(0, c, n),
        "weight": rng.uniform(0.1, 3.0, n),
    }


@st.composite
def labels(draw: st.DrawFn, binary: bool) -> dict[str, np.ndarray]:
    """binary (N) or multilabel (N, L): logits, sigmoids, 0/1 targets, weights."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(5, 300))
    shape = (n,) if binary else (n, draw(st.integers(2, 8)))
    logits = rng.normal(scale=2.0, size=shape)
    return {
        "logits": logits,
        "probabilities": 1 / (1 + np.exp(-logits)),
        "target": rng.integers(0, 2, shape),
        "weight": rng.uniform(0.1, 3.0, n),
    }


def splits(n: int, data: st.DataObject) -> list[slice]:
    """1 to 50 uneven consecutive parts of range(n), none empty."""
    parts = data.draw(st.integers(1, min(50, n)))
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), min_size=parts - 1, max_size=parts - 1)))
    return [slice(a, b) for a, b in itertools.pairwise([0, *cuts, n])]
