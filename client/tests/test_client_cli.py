"""loss-client against a real server: the catalogue, compute, label-quality, refusals."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from cleanlab.rank import get_label_quality_scores

from loss_service_client import files
from loss_service_client.cli import main
from tests.e2e.conftest import free_port

RNG = np.random.default_rng(11)
LOGITS = RNG.normal(size=(200, 5))
LABELS = RNG.integers(0, 5, 200)


def test_losses_prints_the_catalogue_within_100_columns(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["losses", "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["loss", "tensors", "summary"]
    cells = [cell.strip() for cell in lines[2].split("  ") if cell.strip()]
    assert cells[:3] == ["cross_entropy", "input, target", "Cross entropy between logits and class"]
    assert max(map(len, lines)) <= 100
    assert any(line.startswith("ctc_loss ") for line in lines)


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


def saved(tmp_path: Path) -> tuple[str, str]:
    """The module's logits and labels as .npy files."""
    np.save(tmp_path / "x.npy", LOGITS)
    np.save(tmp_path / "y.npy", LABELS)
    return str(tmp_path / "x.npy"), str(tmp_path / "y.npy")


def compute(url: str, inputs: str, target: str, *more: str) -> subprocess.CompletedProcess[str]:
    """`loss-client compute cross_entropy` of the files, with `more` flags."""
    return run(
        "--url", url, "compute", "cross_entropy", "--input", inputs, "--target", target, *more
    )


def label_quality(
    url: str, logits: str, labels: str, *more: str
) -> subprocess.CompletedProcess[str]:
    """`loss-client label-quality` of the files, with `more` flags."""
    return run("--url", url, "label-quality", "--logits", logits, "--labels", labels, *more)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """loss-client as a user runs it: its exit code and what it prints."""
    command = [sys.executable, "-m", "loss_service_client.cli", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["losses", "compute", "label-quality"])
def test_every_command_explains_itself(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0
    assert "example:" in done.stdout and "--url" in done.stdout
    assert "loss-client" in done.stdout


def test_global_options_go_before_or_after_the_command(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", LABELS)
    inputs = ["--logits", str(tmp_path / "logits.npy"), "--labels", str(tmp_path / "labels.npy")]
    after = run("label-quality", *inputs, "--out", str(tmp_path / "a.csv"), "--quiet", "--url", url)
    before = run(
        "--url", url, "--quiet", "label-quality", *inputs, "--out", str(tmp_path / "b.csv")
    )
    assert (after.returncode, before.returncode) == (0, 0), after.stderr + before.stderr
    assert after.stdout == before.stdout


def test_no_server_exits_3_with_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", LOGITS)
    done = run("--url", f"http://127.0.0.1:{free_port()}", "losses")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("loss-client: cannot reach loss-service at http://127.0.0.1:")


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"", ".npy", "x.npy: cannot be read as .npy: "),
        (b"not a zip", ".npz", "x.npz: cannot be read as .npz: "),
        (None, ".npy", "x.npy: no such file"),
        (b"1,2\n3,4\n\n5,6\n", ".csv", "x.csv line 3: a blank line inside the data"),
        (b"a,b\n1,2\n3,\n", ".csv", "x.csv line 3, column 2 (b): an empty cell"),
        (b"a,b\n1,2\n3,x\n", ".csv", "x.csv line 3, column 2 (b): 'x' is not a number"),
        (b"a,b\n1,2\n3\n", ".csv", "x.csv line 3: 1 cells where line 1 has 2"),
        (b"parquet?", ".parquet", "x.parquet: cannot be read as .parquet: "),
    ],
    ids=[
        "empty npy",
        "bad npz",
        "missing",
        "blank line",
        "empty cell",
        "word",
        "short row",
        "bad parquet",
    ],
)
def test_a_file_that_cannot_be_read_exits_2_naming_it(
    url: str, tmp_path: Path, content: bytes | None, suffix: str, message: str
) -> None:
    path = tmp_path / f"x{suffix}"
    if content is not None:
        path.write_bytes(content)
    done = run(
        "--url", url, "compute", "mse_loss", "--input", str(path), "--out", str(tmp_path / "o.npy")
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"loss-client: {tmp_path}/{message}")
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (b"label\n1\nnan\n2\n", "line 3, column 1 (label): 'nan' is not a label"),
        (
            b"label\n1\n\n2\n",
            "line 3: a blank line inside the data; remove it, or write the missing values in"
            " their cells",
        ),
        (b"label\n1\ncat\n2\n", "line 3, column 1 (label): 'cat' is not a number among numbers"),
        (b"label\ncat\n1\neel\n", "line 3, column 1 (label): '1' is a number among names"),
        (b"a,a,label\n1,2,0\n", "line 1: the header names 'a' twice"),
        (b"label\n1\n0\n\n", "line 4: a blank line after the data; remove it"),
    ],
    ids=["NaN", "blank", "word among numbers", "number among names", "name twice", "blank after"],
)
def test_a_label_file_holds_every_label(
    url: str, tmp_path: Path, labels: bytes, message: str
) -> None:
    (tmp_path / "labels.csv").write_bytes(labels)
    np.save(tmp_path / "logits.npy", LOGITS[:3])
    done = label_quality(
        url,
        str(tmp_path / "logits.npy"),
        str(tmp_path / "labels.csv"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert done.returncode == 2
    assert done.stderr == f"loss-client: {tmp_path}/labels.csv {message}\n"


def test_a_misspelt_tensor_exits_2_with_the_nearest_name(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones(5))
    done = compute(url, *saved(tmp_path), "--tensor", f"wieght={tmp_path / 'w.npy'}")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "loss-client: cross_entropy has no tensor or parameter 'wieght'; did you mean 'weight'?"
    )


def test_columns_are_taken_by_name_or_prefix(url: str, tmp_path: Path) -> None:
    """One CSV with a header: the logits by prefix, the labels by name, as words; one Parquet
    file with a list<float> column of logits, as HuggingFace `datasets` writes them."""
    names = np.array(["ant", "bee", "cow", "dog", "eel"])
    header = ",".join([*(f"logit_{i}" for i in range(5)), "id", "label"])
    lines = [
        ",".join([*(repr(float(v)) for v in row), str(i), names[y]])
        for i, (row, y) in enumerate(zip(LOGITS, LABELS, strict=True))
    ]
    (tmp_path / "data.csv").write_text("\n".join([header, *lines]) + "\n")
    table = pa.table({"logits": pa.array(LOGITS.tolist()), "label": pa.array(LABELS)})
    pq.write_table(table, tmp_path / "data.parquet")
    expected = get_label_quality_scores(
        LABELS, torch.softmax(torch.from_numpy(LOGITS), 1).numpy(), method="self_confidence"
    )
    for logits, labels in (
        (f"{tmp_path}/data.csv:logit_*", f"{tmp_path}/data.csv:label"),
        (f"{tmp_path}/data.parquet:logits", f"{tmp_path}/data.parquet:label"),
    ):
        out = tmp_path / "scores.csv"
        done = run(
            "--url",
            url,
            "--quiet",
            "label-quality",
            "--logits",
            logits,
            "--labels",
            labels,
            "--out",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        written = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8")
        np.testing.assert_allclose(written["self_confidence"], expected, atol=1e-6)
    assert written["predicted"].tolist() == LOGITS.argmax(1).tolist()
    done = label_quality(
        url,
        f"{tmp_path}/data.csv:logits_*",
        labels,
        "--out",
        str(out),
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"loss-client: {tmp_path}/data.csv:logits_*: no column 'logits_*'; it has: logit_0,"
        " logit_1, logit_2, logit_3, logit_4, id, label\n"
    )


def test_the_suspects_table_tells_close_scores_apart(url: str, tmp_path: Path) -> None:
    """Scores that agree in their first four digits get as many more as they need."""
    logits = np.zeros((6, 3))
    logits[:, 0] = [1e-7 * i for i in range(6)]  # self-confidences 1/3 + a hair apart
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "labels.npy", np.zeros(6, dtype=np.int64))
    done = label_quality(
        url,
        str(tmp_path / "logits.npy"),
        str(tmp_path / "labels.npy"),
        "--out",
        str(tmp_path / "o.csv"),
        "--scores",
        "self_confidence",
    )
    assert done.returncode == 0, done.stderr
    shown = [line.split()[-1] for line in done.stdout.splitlines()[3:]]
    assert len(set(shown)) == len(
        set(np.loadtxt(tmp_path / "o.csv", delimiter=",", skiprows=1, usecols=1).tolist())
    )


def test_usage_errors_exit_2_with_one_line(url: str, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", LOGITS)
    np.save(tmp_path / "y.npy", LABELS)
    np.savez(tmp_path / "both.npz", labels=LABELS, logits=LOGITS)
    base = ["--url", url, "compute", "cross_entropy", "--input", str(tmp_path / "x.npy")]
    cases = [
        (
            [*base, "--target", str(tmp_path / "y.npy"), "--param", 'reduction="sum"'],
            "--param reduction: give it as --reduction",
        ),
        (
            [*base, "--target", str(tmp_path / "y.npy"), "--param", "target=1"],
            "--param target: give it as --tensor target=FILE",
        ),
        (
            [
                "--url",
                url,
                "compute",
                "cross_entropy",
                "--input",
                str(tmp_path / "both.npz"),
                "--target",
                f"{tmp_path}/both.npz:labels",
            ],
            f"{tmp_path}/both.npz holds 2 arrays: pick one as {tmp_path}/both.npz:NAME, of labels,"
            " logits",
        ),
    ]
    for argv, message in cases:
        done = run(*argv)
        assert (done.returncode, done.stderr) == (2, f"loss-client: {message}\n")
    done = label_quality(url, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--top", "-1")
    assert done.returncode == 2
    assert "argument --top: '-1' is not a count (0, 1, 2, ...)" in done.stderr


def test_out_is_optional(url: str, tmp_path: Path) -> None:
    done = compute(url, *saved(tmp_path), "--dtype", "float64")
    expected = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(LABELS)).item()
    assert (done.returncode, done.stdout) == (0, f"cross_entropy (mean): {expected!r}\n")


def test_semicolons_and_tabs_separate_cells_where_commas_do_not(url: str, tmp_path: Path) -> None:
    """As spreadsheets write CSV where the comma is the decimal mark."""
    np.save(tmp_path / "x.npy", LOGITS)
    for separator, name in ((";", "semicolons.csv"), ("\t", "tabs.csv")):
        header = separator.join(["id", "label"])
        rows = [separator.join([str(i), str(y)]) for i, y in enumerate(LABELS)]
        (tmp_path / name).write_text("\n".join([header, *rows]) + "\n")
        done = run(
            "--url",
            url,
            "--quiet",
            "compute",
            "cross_entropy",
            "--input",
            str(tmp_path / "x.npy"),
            "--target",
            f"{tmp_path}/{name}:label",
            "--dtype",
            "float64",
        )
        expected = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(LABELS)).item()
        assert (done.returncode, done.stdout) == (0, f"cross_entropy (mean): {expected!r}\n")
