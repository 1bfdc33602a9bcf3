"""loss-client against a real server: the catalogue, compute, label-quality, refusals."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cleanlab.rank import get_label_quality_scores

from loss_service_client import files
from loss_service_client.cli import main

RNG = np.random.default_rng(11)
LOGITS = RNG.normal(size=(200, 5))
LABELS = RNG.integers(0, 5, 200)


def test_losses_prints_the_catalogue(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", url, "losses"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["loss", "tensors", "parameters", "summary"]
    cells = [cell.strip() for cell in lines[2].split("  ") if cell.strip()]
    assert cells[:3] == ["cross_entropy", "input, target", "weight, ignore_index, label_smoothing"]


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".parquet"])
def test_compute_reads_and_writes_every_format(url: str, tmp_path: Path, suffix: str) -> None:
    files.write(tmp_path / f"logits{suffix}", {"logits": LOGITS})
    files.write(tmp_path / f"labels{suffix}", {"labels": LABELS})
    out = tmp_path / "out.npz"
    argv = ["--url", url, "--quiet", "compute", "cross_entropy"]
    argv += [
        "--input",
        str(tmp_path / f"logits{suffix}"),
        "--target",
        str(tmp_path / f"labels{suffix}"),
    ]
    argv += [
        "--param",
        "label_smoothing=0.2",
        "--reduction",
        "none",
        "--grad",
        "--dtype",
        "float64",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    x = torch.from_numpy(LOGITS).requires_grad_()
    loss = F.cross_entropy(x, torch.from_numpy(LABELS), reduction="none", label_smoothing=0.2)
    loss.sum().backward()
    with np.load(out) as written:
        np.testing.assert_allclose(written["loss"], loss.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(written["grad_input"], x.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_label_quality_writes_every_score_and_prints_the_suspects(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", LABELS)
    out = tmp_path / "scores.csv"
    argv = ["--url", url, "label-quality", "--logits", str(tmp_path / "logits.npy")]
    argv += ["--labels", str(tmp_path / "labels.npy"), "--out", str(out), "--top", "3"]
    assert main(argv) == 0
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert table.dtype.names == (
        "label",
        "self_confidence",
        "normalized_margin",
        "confidence_weighted_entropy",
        "predicted",
    )
    p = torch.softmax(torch.from_numpy(LOGITS), 1).numpy()
    expected = get_label_quality_scores(LABELS, p, method="self_confidence")
    np.testing.assert_allclose(table["self_confidence"], expected, atol=1e-6)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "the 3 most suspect labels, lowest self_confidence first:"
    suspects = [int(line.split()[0]) for line in lines[3:]]
    assert suspects == np.argsort(table["self_confidence"], kind="stable")[:3].tolist()


def test_a_refusal_exits_1_with_the_detail(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", LABELS + 5)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "loss_service_client.cli", "--url", url, "compute", "nll_loss"),
            *("--input", str(tmp_path / "logits.npy"), "--target", str(tmp_path / "labels.npy")),
            *("--out", str(tmp_path / "out.npy")),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"loss-client: the server refused (422): target[0] = {LABELS[0] + 5} is not a class"
        " index in [0, 5) and is not ignore_index (-100)\n"
    )


def test_a_bad_file_exits_2(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--url",
                url,
                "compute",
                "mse_loss",
                "--input",
                str(tmp_path / "x.txt"),
                "--out",
                "o.npy",
            ]
        )
        == 2
    )
    assert "the suffix must be one of .npy, .npz, .csv, .parquet" in capsys.readouterr().err
