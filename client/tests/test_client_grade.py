"""Client.grade and `loss-client grade` against real servers: split, merged by the server's
finalize, and equal to the whole grade in one request; chunks, files, async, both wires."""

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx2
import numpy as np
import pytest

from loss_service_client import AsyncClient, Client, InvalidCall, LossServiceError

RNG = np.random.default_rng(23)
N, C = 1000, 6
LOGITS = (RNG.normal(size=(N, C)) + 2 * np.eye(C)[RNG.integers(0, C, N)]).astype(np.float32)
LABELS = RNG.integers(0, C, N)
WEIGHTS = RNG.uniform(0.5, 2.0, N)
METRICS = {
    "accuracy": {},
    "top_2": {"metric": "accuracy", "top_k": 2},
    "calibration_error": {},
    "brier_score": {},
    "log_loss": {},
    "auroc": {"thresholds": 50},
    "average_precision": {"thresholds": 50},
    "confusion_matrix": {"average": "weighted"},
}
KIND = {"task": "multiclass", "input_kind": "logits"}


def whole(url: str) -> dict:
    """The grade of everything in one /v1 request: the reference."""
    body = {"input": LOGITS.tolist(), "target": LABELS.tolist(), "sample_weight": WEIGHTS.tolist()}
    answer = httpx2.post(f"{url}/v1/grades", json=body | KIND | {"metrics": METRICS}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["grades"]


def same(found, expected: dict) -> None:
    for key, grade in expected.items():
        for name, value in grade["values"].items():
            np.testing.assert_allclose(found[key].values[name], value, rtol=1e-9, err_msg=key)
        for name, array in grade["state"]["arrays"].items():
            np.testing.assert_allclose(
                found[key].state["arrays"][name], array, rtol=1e-9, atol=1e-9, err_msg=key
            )


@pytest.mark.parametrize("binary", [True, False])
def test_a_split_grade_equals_the_whole(small: str, url: str, binary: bool) -> None:
    with Client(small, binary=binary, progress=False) as client:
        found = client.grade(METRICS, input=LOGITS, target=LABELS, sample_weight=WEIGHTS, **KIND)
    assert found.requests > 1  # the small server's limits cut it
    same(found, whole(url))
    assert found["confusion_matrix"].tables["per_class"]["support"].shape == (C,)


def test_chunks_of_an_iterator_and_async(small: str, url: str) -> None:
    chunks = (
        (LOGITS[i : i + 150], LABELS[i : i + 150], WEIGHTS[i : i + 150]) for i in range(0, N, 150)
    )
    with Client(small, progress=False) as client:
        found = client.grade(METRICS, chunks=chunks, **KIND)
    same(found, whole(url))

    async def grade() -> object:
        async with AsyncClient(small, progress=False) as client:
            parts = (
                {
                    "input": LOGITS[i : i + 400],
                    "target": LABELS[i : i + 400],
                    "sample_weight": WEIGHTS[i : i + 400],
                }
                for i in range(0, N, 400)
            )
            return await client.grade(METRICS, chunks=parts, **KIND)

    same(asyncio.run(grade()), whole(url))


def test_files_and_class_names(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "logits.npy", LOGITS)
    names = np.array(["ant", "bee", "cat", "dog", "eel", "fox"])
    (tmp_path / "labels.csv").write_text(
        "id,label\n" + "".join(f"{i},{names[y]}\n" for i, y in enumerate(LABELS))
    )
    with Client(url, progress=False) as client:
        found = client.grade(
            ["accuracy"],
            input=str(tmp_path / "logits.npy"),
            target=f"{tmp_path}/labels.csv:label",
            classes=list(names),
            **KIND,
        )
        reference = client.grade(["accuracy"], input=LOGITS, target=LABELS, **KIND)
    assert found["accuracy"].values == reference["accuracy"].values


def test_a_state_too_large_for_the_budget_is_refused_without_a_cut(url: str) -> None:
    """Its (C, C) matrix does not shrink with the batch: the refusal says so (fixed_work), and
    the client sends no pieces (it once sent 25,000, each refused again)."""
    sent = []
    transport = httpx2.HTTPTransport()

    class Counting(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            sent.append(request.url.path)
            return transport.handle_request(request)

        def close(self) -> None:
            transport.close()

    client = Client(url, progress=False, transport=Counting())
    with client, pytest.raises(LossServiceError) as refused:
        client.grade(
            ["confusion_matrix"],
            input=np.arange(5000) % 7,
            target=np.zeros(5000, int),
            task="multiclass",
            input_kind="predictions",
            num_classes=10**6,
        )
    assert refused.value.status == 413
    assert [path for path in sent if path.endswith("/infer")] == ["/v2/models/grades/infer"]


def test_binary_grades_through_the_client(url: str) -> None:
    """Binary states once failed their own finalize (num_classes 1)."""
    x, y = RNG.normal(size=2000), RNG.integers(0, 2, 2000)
    with Client(url, progress=False) as client:
        found = client.grade(
            ["accuracy", "auroc", "calibration_error", "log_loss"],
            input=x,
            target=y,
            task="binary",
            input_kind="logits",
        )
    assert found["accuracy"].values["accuracy"] == np.mean((x > 0) == y)


def test_the_cli_writes_a_report_and_pictures(url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", LABELS)
    run = [sys.executable, "-m", "loss_service_client.cli", "--url", url]
    done = subprocess.run(
        [
            *run,
            "grade",
            "accuracy,calibration_error,auroc,average_precision,confusion_matrix",
            "--task",
            "multiclass",
            "--input-kind",
            "logits",
            "--input",
            str(tmp_path / "logits.npy"),
            "--target",
            str(tmp_path / "labels.npy"),
            "--out",
            str(tmp_path / "report.json"),
            "--plot",
            str(tmp_path / "grades.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["grades"]) == {
        "accuracy",
        "calibration_error",
        "auroc",
        "average_precision",
        "confusion_matrix",
    }
    assert "accuracy           accuracy" in done.stdout
    assert done.stdout.strip().endswith("into " + str(tmp_path / "grades.png"))
    assert (tmp_path / "grades.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = subprocess.run(
        [
            *run,
            "label-quality",
            "--logits",
            str(tmp_path / "logits.npy"),
            "--labels",
            str(tmp_path / "labels.npy"),
            "--plot",
            str(tmp_path / "scores.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_refuses_bad_metrics_in_one_line(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", LABELS)
    run = [sys.executable, "-m", "loss_service_client.cli", "--url", url, "grade"]
    files = ["--input", str(tmp_path / "logits.npy"), "--target", str(tmp_path / "labels.npy")]
    done = subprocess.run(
        [*run, "accuracy,acuracy", "--task", "multiclass", "--input-kind", "logits", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr.startswith("loss-client: 422") or "unknown metric 'acuracy'" in done.stderr
    ), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = subprocess.run(
        [*run, "{not json", "--task", "multiclass", "--input-kind", "logits", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "metrics is not JSON" in done.stderr
    if importlib.util.find_spec("matplotlib") is not None:  # refused before the data is read
        plot = ["--plot", str(tmp_path / "x.png"), "--task", "multiclass", "--input-kind", "logits"]
        done = subprocess.run(
            [*run, "accuracy", *plot, "--input", "missing.npy", "--target", "missing.npy"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stderr.strip()) == (
            2,
            "loss-client: nothing to plot: --plot draws calibration_error, auroc,"
            " average_precision, confusion_matrix",
        )


def test_class_names_travel_and_chunks_must_name_the_same_classes(url: str) -> None:
    names = np.array(["ant", "bee", "cat", "dog", "eel", "fox"])
    with Client(url, progress=False) as client:
        found = client.grade(["accuracy"], input=LOGITS, target=names[LABELS], **KIND)
        assert found.classes == tuple(names)
        assert found.report()["classes"] == list(names)
        other = ["ant", "bee", "cat", "dog", "eel", "gnu"]
        parts = [(LOGITS[:6], list(names)), (LOGITS[6:12], other)]
        with pytest.raises(InvalidCall) as refused:
            client.grade(["accuracy"], chunks=parts, **KIND)
        with pytest.raises(InvalidCall) as twice:
            client.grade(
                ["accuracy"],
                input=LOGITS,
                target=names[LABELS],
                classes=[*names[:5], "ant"],
                **KIND,
            )
        empty = [(LOGITS[:0], LABELS[:0]), (LOGITS, LABELS), (LOGITS[:0], LABELS[:0])]
        skipped = client.grade(["accuracy"], chunks=empty, **KIND)
        assert (
            skipped["accuracy"].values
            == client.grade(["accuracy"], input=LOGITS, target=LABELS, **KIND)["accuracy"].values
        )
    assert str(twice.value) == "classes names 'ant' 2 times; each class has one name"
    assert str(refused.value) == (
        "the labels of chunk 1 (counting from 0) name other classes than the first chunk's"
        " (gnu here; fox not): give every class's name, in order, as classes="
    )


def test_the_report_is_strict_json_where_a_value_is_undefined(url: str) -> None:
    """Every target ignored: accuracy and the reliability table's means are NaN, which the
    report writes as null (json.dumps wrote NaN, which is not JSON)."""
    with Client(url, progress=False) as client:
        found = client.grade(
            ["accuracy", "calibration_error"],
            input=LOGITS[:10],
            target=np.full(10, -1),
            ignore_index=-1,
            **KIND,
        )
    assert np.isnan(found["accuracy"].values["accuracy"])
    report = json.loads(json.dumps(found.report(), allow_nan=False))
    assert report["grades"]["accuracy"]["values"] == {"accuracy": None}
    assert report["grades"]["calibration_error"]["tables"]["reliability"]["accuracy"][0] is None
