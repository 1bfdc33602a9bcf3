"""Each metric against its reference in float64, property-tested: torchmetrics 1.9 for
accuracy, calibration, AUROC and AP at thresholds, the confusion matrix and the averages;
scikit-learn for Brier, log loss, precision, recall, F1, kappa, MCC and R2, and for weighted
results (sample_weight)."""

import os
import warnings

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from torchmetrics.functional import classification as tm

from tests.grades.conftest import grades, labels, multiclass, value

EXAMPLES = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")))
"""25 seeded examples in `make test`; `make fuzz` runs FUZZ_EXAMPLES, unseeded."""
T = torch.from_numpy


@EXAMPLES
@given(multiclass(), st.integers(1, 3), st.sampled_from(["micro", "macro", "weighted", "none"]))
def test_multiclass_accuracy(client: TestClient, batch, top_k, average) -> None:
    p, y, w = batch["probabilities"], batch["target"], batch["weight"]
    top_k = min(top_k, p.shape[1])
    asked = {"acc": {"metric": "accuracy", "top_k": top_k, "average": average}}
    found = grades(
        client, asked, input=batch["logits"], target=y, task="multiclass", input_kind="logits"
    )
    expected = tm.multiclass_accuracy(T(p), T(y), p.shape[1], top_k=top_k, average=average)
    np.testing.assert_allclose(value(found["acc"], "accuracy"), expected.numpy(), atol=1e-6)
    weighted = grades(
        client,
        ["accuracy"],
        input=p,
        target=y,
        sample_weight=w,
        task="multiclass",
        input_kind="probabilities",
    )
    reference = sk.accuracy_score(y, p.argmax(1), sample_weight=w)
    assert value(weighted["accuracy"], "accuracy") == pytest.approx(reference, rel=1e-12)


@EXAMPLES
@given(st.booleans(), st.data(), st.sampled_from([0.3, 0.5]))
def test_binary_and_multilabel_accuracy(client: TestClient, binary, data, threshold) -> None:
    batch = data.draw(labels(binary))
    p, y = batch["probabilities"], batch["target"]
    task = "binary" if binary else "multilabel"
    asked = {"accuracy": {"average": "micro"}, "macro": {"metric": "accuracy", "average": "macro"}}
    found = grades(
        client,
        asked,
        input=batch["logits"],
        target=y,
        task=task,
        input_kind="logits",
        threshold=threshold,
    )
    if binary:
        expected = tm.binary_accuracy(T(p), T(y), threshold=threshold)
        macro = expected
    else:
        labels_ = y.shape[1]
        expected = tm.multilabel_accuracy(T(p), T(y), labels_, threshold=threshold, average="micro")
        macro = tm.multilabel_accuracy(T(p), T(y), labels_, threshold=threshold, average="macro")
    assert value(found["accuracy"], "accuracy") == pytest.approx(float(expected), abs=1e-6)
    assert value(found["macro"], "accuracy") == pytest.approx(float(macro), abs=1e-6)


@EXAMPLES
@given(multiclass(), st.sampled_from(["l1", "l2", "max"]), st.sampled_from([5, 15]))
def test_multiclass_calibration_error(client: TestClient, batch, norm, n_bins) -> None:
    """In float32 on both sides: torchmetrics bins float32 confidences (a float64 confidence
    of 1 - 1e-9 is 1.0 there, in the last bin)."""
    p, y = batch["probabilities"].astype(np.float32), batch["target"]
    asked = {"c": {"metric": "calibration_error", "norm": norm, "n_bins": n_bins}}
    found = grades(
        client,
        asked,
        input=p,
        target=y,
        task="multiclass",
        input_kind="probabilities",
        dtype="float32",
    )
    expected = tm.multiclass_calibration_error(T(p), T(y), p.shape[1], n_bins=n_bins, norm=norm)
    assert value(found["c"], "calibration_error") == pytest.approx(
        float(expected), abs=1e-6
    )  # torchmetrics answers float32
    table = found["c"]["tables"]["reliability"]
    assert sum(table["count"]) == len(y)


@EXAMPLES
@given(labels(binary=True), st.sampled_from(["l1", "l2", "max"]))
def test_binary_calibration_error(client: TestClient, batch, norm) -> None:
    p, y = batch["probabilities"].astype(np.float32), batch["target"]
    found = grades(
        client,
        {"c": {"metric": "calibration_error", "norm": norm}},
        input=p,
        target=y,
        task="binary",
        input_kind="probabilities",
        dtype="float32",
    )
    expected = tm.binary_calibration_error(T(p), T(y), n_bins=15, norm=norm)
    assert value(found["c"], "calibration_error") == pytest.approx(
        float(expected), abs=1e-6
    )  # torchmetrics answers float32


@EXAMPLES
@given(multiclass(), st.sampled_from([10, 100]), st.sampled_from(["macro", "weighted", "none"]))
def test_multiclass_curves_at_thresholds(client: TestClient, batch, thresholds, average) -> None:
    """In float32 on both sides: torchmetrics compares float32 probabilities with float32
    thresholds."""
    p, y = batch["probabilities"].astype(np.float32), batch["target"]
    own = {"thresholds": thresholds, "average": average}
    asked = {"auroc": own, "average_precision": own}
    found = grades(
        client,
        asked,
        input=p,
        target=y,
        task="multiclass",
        input_kind="probabilities",
        dtype="float32",
    )
    c = p.shape[1]
    auroc = tm.multiclass_auroc(T(p), T(y), c, average=average, thresholds=thresholds)
    ap = tm.multiclass_average_precision(T(p), T(y), c, average=average, thresholds=thresholds)
    np.testing.assert_allclose(value(found["auroc"], "auroc"), auroc.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        value(found["average_precision"], "average_precision"), ap.numpy(), atol=1e-5
    )


@EXAMPLES
@given(st.booleans(), st.data(), st.sampled_from([10, 50]))
def test_binary_and_multilabel_curves(client: TestClient, binary, data, thresholds) -> None:
    batch = data.draw(labels(binary))
    p, y = batch["probabilities"].astype(np.float32), batch["target"]
    task = "binary" if binary else "multilabel"
    asked = {"auroc": {"thresholds": thresholds}, "average_precision": {"thresholds": thresholds}}
    found = grades(
        client, asked, input=p, target=y, task=task, input_kind="probabilities", dtype="float32"
    )
    if binary:
        auroc = tm.binary_auroc(T(p), T(y), thresholds=thresholds)
        ap = tm.binary_average_precision(T(p), T(y), thresholds=thresholds)
    else:
        n = y.shape[1]
        auroc = tm.multilabel_auroc(T(p), T(y), n, thresholds=thresholds)
        ap = tm.multilabel_average_precision(T(p), T(y), n, thresholds=thresholds)
    assert value(found["auroc"], "auroc") == pytest.approx(float(auroc), abs=1e-5)
    assert value(found["average_precision"], "average_precision") == pytest.approx(
        float(ap), abs=1e-5
    )


@EXAMPLES
@given(multiclass())
def test_brier_and_log_loss_weighted(client: TestClient, batch) -> None:
    p, y, w = batch["probabilities"], batch["target"], batch["weight"]
    classes = list(range(p.shape[1]))
    for kind, given_ in (("probabilities", p), ("logits", batch["logits"])):
        found = grades(
            client,
            ["brier_score", "log_loss"],
            input=given_,
            target=y,
            sample_weight=w,
            task="multiclass",
            input_kind=kind,
        )
        brier = sk.brier_score_loss(y, p, sample_weight=w, labels=classes, scale_by_half=False)
        assert value(found["brier_score"], "brier_score") == pytest.approx(brier, rel=1e-9)
        assert value(found["log_loss"], "log_loss") == pytest.approx(
            _log_loss(kind, batch["logits"], p, y, w), rel=1e-9
        )


def _log_loss(kind: str, logits: np.ndarray, p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """scikit-learn's for probabilities (clipped to float64's eps); for logits torch's cross
    entropy as it is, which a clipped probability cannot give past -log(eps) = 36 (`make fuzz`
    found logits 40 apart)."""
    if kind == "probabilities":
        return float(sk.log_loss(y, p, sample_weight=w, labels=list(range(p.shape[1]))))
    each = torch.nn.functional.cross_entropy(T(logits), T(y), reduction="none").numpy()
    return float((each * w).sum() / w.sum())


@EXAMPLES
@given(labels(binary=True))
def test_binary_brier_and_log_loss(client: TestClient, batch) -> None:
    p, y, w = batch["probabilities"], batch["target"], batch["weight"]
    found = grades(
        client,
        ["brier_score", "log_loss"],
        input=batch["logits"],
        target=y,
        sample_weight=w,
        task="binary",
        input_kind="logits",
    )
    assert value(found["brier_score"], "brier_score") == pytest.approx(
        sk.brier_score_loss(y, p, sample_weight=w, labels=[0, 1]), rel=1e-9
    )
    each = torch.nn.functional.binary_cross_entropy_with_logits(
        T(batch["logits"]), T(y.astype(float)), reduction="none"
    ).numpy()
    assert value(found["log_loss"], "log_loss") == pytest.approx(
        (each * w).sum() / w.sum(), rel=1e-9
    )
    assert value(found["log_loss"], "log_loss") == pytest.approx(
        sk.log_loss(y, p, sample_weight=w, labels=[0, 1]),
        rel=1e-6,  # p is not clipped here
    )


@EXAMPLES
@given(multiclass(), st.sampled_from(["micro", "macro", "weighted"]))
def test_confusion_matrix_and_what_it_gives(client: TestClient, batch, average) -> None:
    p, y, w = batch["probabilities"], batch["target"], batch["weight"]
    found = grades(
        client,
        {"cm": {"metric": "confusion_matrix", "average": average}},
        input=p,
        target=y,
        sample_weight=w,
        task="multiclass",
        input_kind="probabilities",
    )["cm"]
    predicted = p.argmax(1)
    classes = list(range(p.shape[1]))
    matrix = sk.confusion_matrix(y, predicted, labels=classes, sample_weight=w)
    np.testing.assert_allclose(found["state"]["arrays"]["matrix"], matrix, rtol=1e-12)
    for name, reference in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        expected = reference(y, predicted, average=average, sample_weight=w, zero_division=0)
        assert value(found, name) == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    kappa = sk.cohen_kappa_score(y, predicted, sample_weight=w)
    assert value(found, "cohen_kappa") == pytest.approx(kappa, rel=1e-9, abs=1e-12)
    with warnings.catch_warnings():  # its weighted sums can round a zero spread below 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mcc = sk.matthews_corrcoef(y, predicted, sample_weight=w)
    expected = 0.0 if np.isnan(mcc) else mcc  # 0 where every prediction is one class
    assert value(found, "matthews_corrcoef") == pytest.approx(expected, rel=1e-9, abs=1e-12)
    unweighted = grades(
        client,
        ["confusion_matrix"],
        input=p,
        target=y,
        task="multiclass",
        input_kind="probabilities",
    )
    expected = tm.multiclass_confusion_matrix(T(p), T(y), p.shape[1])
    np.testing.assert_array_equal(
        unweighted["confusion_matrix"]["state"]["arrays"]["matrix"], expected.numpy()
    )


@EXAMPLES
@given(labels(binary=False))
def test_multilabel_confusion_matrix(client: TestClient, batch) -> None:
    p, y = batch["probabilities"], batch["target"]
    found = grades(
        client,
        ["confusion_matrix"],
        input=p,
        target=y,
        task="multilabel",
        input_kind="probabilities",
    )
    expected = tm.multilabel_confusion_matrix(T(p), T(y), y.shape[1])
    np.testing.assert_array_equal(
        found["confusion_matrix"]["state"]["arrays"]["matrix"], expected.numpy()
    )
    f1 = sk.f1_score(y, (p > 0.5).astype(int), average="macro", zero_division=0)
    assert value(found["confusion_matrix"], "f1") == pytest.approx(f1, rel=1e-9)


@EXAMPLES
@given(multiclass(), labels(binary=False))
def test_ignore_index(client: TestClient, batch, multilabel) -> None:
    """Whole samples left out (multiclass), single labels left out (multilabel)."""
    p, y = batch["probabilities"].astype(np.float32), batch["target"].copy()
    y[::3] = -1
    asked = {"accuracy": {"average": "macro"}, "calibration_error": {}}
    found = grades(
        client,
        asked,
        input=p,
        target=y,
        task="multiclass",
        input_kind="probabilities",
        ignore_index=-1,
        dtype="float32",
    )
    c = p.shape[1]
    accuracy = tm.multiclass_accuracy(T(p), T(y), c, average="macro", ignore_index=-1)
    assert value(found["accuracy"], "accuracy") == pytest.approx(float(accuracy), abs=1e-6)
    calibration = tm.multiclass_calibration_error(T(p), T(y), c, ignore_index=-1)
    assert value(found["calibration_error"], "calibration_error") == pytest.approx(
        float(calibration), abs=1e-6
    )
    q, z = multilabel["probabilities"], multilabel["target"].copy()
    z[::2, 0] = -1
    asked = {"accuracy": {"average": "macro"}, "auroc": {"thresholds": 20}}
    found = grades(
        client,
        asked,
        input=q.astype(np.float32),
        target=z,
        task="multilabel",
        input_kind="probabilities",
        ignore_index=-1,
        dtype="float32",
    )
    labels_ = z.shape[1]
    accuracy = tm.multilabel_accuracy(T(q), T(z), labels_, average="macro", ignore_index=-1)
    assert value(found["accuracy"], "accuracy") == pytest.approx(float(accuracy), abs=1e-6)
    auroc = tm.multilabel_auroc(
        T(q.astype(np.float32)), T(z), labels_, thresholds=20, ignore_index=-1
    )
    assert value(found["auroc"], "auroc") == pytest.approx(float(auroc), abs=1e-5)


@EXAMPLES
@given(st.integers(0, 2**32 - 1), st.integers(2, 400), st.sampled_from([0.0, 1e6]))
def test_regression(client: TestClient, seed, n, offset) -> None:
    rng = np.random.default_rng(seed)
    y = offset + rng.normal(size=n)
    x = y + rng.normal(scale=0.3, size=n)
    w = rng.uniform(0.1, 3.0, n)
    found = grades(
        client,
        ["regression"],
        input=x,
        target=y,
        sample_weight=w,
        task="regression",
        input_kind="predictions",
    )["regression"]
    assert value(found, "mse") == pytest.approx(
        sk.mean_squared_error(y, x, sample_weight=w), rel=1e-9
    )
    assert value(found, "mae") == pytest.approx(
        sk.mean_absolute_error(y, x, sample_weight=w), rel=1e-9
    )
    assert value(found, "r2") == pytest.approx(sk.r2_score(y, x, sample_weight=w), rel=1e-9)
    covariance = np.cov(x, y, aweights=w)
    pearson = covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1])
    assert value(found, "pearson") == pytest.approx(pearson, rel=1e-9)


def test_mcc_where_every_prediction_is_one_class(client: TestClient) -> None:
    """Found by `make fuzz`: weighted sums rounded a zero spread to -5e-13, and its root was
    NaN: null in the answer, and a 500 where warnings are errors."""
    rng = np.random.default_rng(180)  # a seed whose spread rounds below 0
    w = rng.uniform(0.1, 3.0, 40)
    y = rng.integers(0, 3, 40)
    p = np.tile([0.9, 0.05, 0.05], (40, 1))
    found = grades(
        client,
        ["confusion_matrix"],
        input=p,
        target=y,
        sample_weight=w,
        task="multiclass",
        input_kind="probabilities",
    )["confusion_matrix"]
    # 0 where every prediction is one class, as scikit-learn defines it (whose own weighted
    # sums round into the same NaN on this seed)
    assert value(found, "matthews_corrcoef") == 0.0
