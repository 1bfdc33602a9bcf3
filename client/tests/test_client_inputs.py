"""What pipelines hold, through the client against a real server: torch tensors of every float
dtype, numpy integers of every width, pandas and pyarrow columns (a HuggingFace `datasets`
column is a pyarrow list<float> column), labels stored as floats, strings or categories; and
the refusals, made before anything is sent, that name what is wrong."""

from collections.abc import Iterator

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F

from loss_service_client import Client, ConnectionFailed, InvalidCall
from tests.e2e.conftest import free_port

RNG = np.random.default_rng(5)
LOGITS = RNG.normal(size=(300, 4))
LABELS = RNG.integers(0, 4, 300)
NAMES = np.array(["bird", "cat", "dog", "fish"])


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[Client]:
    with Client(url, progress=False) as found:
        yield found


def reference(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """torch in float64 on the values as sent."""
    x = logits.detach().double().requires_grad_()
    loss = F.cross_entropy(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))
    loss.backward()
    assert x.grad is not None
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_torch_tensors_of_every_float_dtype(client: Client, dtype: torch.dtype) -> None:
    """bf16 and fp16 go out as the Protocol's BF16 and FP16, their own bits; the server
    computes on exactly those values."""
    logits = torch.from_numpy(LOGITS).to(dtype).requires_grad_()
    result = client.loss(
        "cross_entropy", input=logits, target=torch.from_numpy(LABELS), grad=True, dtype="float64"
    )
    loss, grad = reference(logits, LABELS)
    assert result.loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(result.grad["input"], grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"])
def test_numpy_labels_of_every_integer_width(client: Client, dtype: str) -> None:
    result = client.loss(
        "cross_entropy", input=LOGITS, target=LABELS.astype(dtype), dtype="float64"
    )
    assert result.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)


def test_labels_stored_as_floats_are_class_indices(client: Client) -> None:
    result = client.loss(
        "cross_entropy", input=LOGITS, target=LABELS.astype(float), dtype="float64"
    )
    assert result.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)
    with pytest.raises(InvalidCall) as refused:
        client.loss("nll_loss", input=LOGITS, target=np.where(np.arange(300) == 7, 2.5, LABELS))
    assert str(refused.value) == (
        "target[7] = 2.5 is not a whole number; target holds class indices or labels: integers"
        " (2.0 is taken as 2)"
    )


def test_a_float_target_of_the_input_shape_stays_probabilities(client: Client) -> None:
    probabilities = torch.softmax(torch.from_numpy(RNG.normal(size=(300, 4))), 1).numpy()
    result = client.loss("cross_entropy", input=LOGITS, target=probabilities, dtype="float64")
    expected = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(probabilities))
    assert result.loss == pytest.approx(expected.item(), rel=1e-12)


def test_one_hot_labels_are_probabilities(client: Client) -> None:
    """As labelling tools export them: 0/1 integers of the logits' shape."""
    one_hot = np.eye(4, dtype=np.int64)[LABELS]
    result = client.loss("cross_entropy", input=LOGITS, target=one_hot, dtype="float64")
    assert result.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)


def test_pandas_columns(client: Client) -> None:
    frame = pd.DataFrame(LOGITS, columns=[f"logit_{i}" for i in range(4)])
    frame["label"] = pd.array(LABELS, dtype="Int64")  # nullable, as read from a CSV
    result = client.loss(
        "cross_entropy", input=frame.filter(like="logit_"), target=frame["label"], dtype="float64"
    )
    assert result.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)
    frame.loc[[3, 17], "label"] = pd.NA
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=frame.filter(like="logit_"), target=frame["label"])
    assert str(refused.value) == "target has missing values (NA) at rows 3, 17: drop or fill them"


def test_class_names_as_strings_and_categories(client: Client) -> None:
    """The names' sorted order, or the order given, or a categorical's own: the logits'
    columns must follow it, and the result says which it was."""
    expected = reference(torch.from_numpy(LOGITS), LABELS)[0]
    strings = NAMES[LABELS]
    found = client.loss("cross_entropy", input=LOGITS, target=strings, dtype="float64")
    assert (found.loss, found.classes) == (pytest.approx(expected, rel=1e-12), tuple(NAMES))
    reordered = ["fish", "dog", "cat", "bird"]
    found = client.loss(
        "cross_entropy", input=LOGITS[:, ::-1], target=strings, classes=reordered, dtype="float64"
    )
    assert (found.loss, found.classes) == (pytest.approx(expected, rel=1e-12), tuple(reordered))
    categories = pd.Series(pd.Categorical(strings, categories=list(NAMES)))
    found = client.loss("cross_entropy", input=LOGITS, target=categories, dtype="float64")
    assert found.classes == tuple(NAMES)
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=LOGITS, target=strings, classes=["bird", "cat"])
    first = int(np.argmax(LABELS >= 2))
    assert str(refused.value) == (
        f"target[{first}] = '{strings[first]}' is not one of the classes: bird, cat"
    )
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=LOGITS[:, :3], target=strings)
    assert str(refused.value) == (
        "the labels name 4 classes, but input has 3 columns: give the class names in the order"
        " of input's columns (classes=, --classes)"
    )


def test_label_quality_returns_the_class_names(client: Client) -> None:
    found = client.label_quality(input=LOGITS, target=NAMES[LABELS], dtype="float64")
    assert found["classes"].tolist() == NAMES.tolist()
    np.testing.assert_array_equal(found["predicted"], LOGITS.argmax(1))


def test_pyarrow_columns_as_datasets_and_parquet_hold_them(client: Client) -> None:
    """A list<float> column (a HuggingFace `datasets` column of logits), a chunked array, and
    a dictionary column of class names (its order is the order names first came in, so the
    names are sorted, as strings are)."""
    logits = pa.chunked_array([pa.array(LOGITS[:100].tolist()), pa.array(LOGITS[100:].tolist())])
    labels = pa.array(NAMES[LABELS]).dictionary_encode()
    found = client.loss("cross_entropy", input=logits, target=labels, dtype="float64")
    assert found.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)
    assert found.classes == tuple(NAMES)
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=pa.array([[1.0, 2.0], [3.0]]), target=[0, 1])
    assert str(refused.value) == "input is ragged: row 1 holds 1 values, row 0 2"
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=logits, target=pa.array([0, None, *LABELS[2:]]))
    assert str(refused.value) == "target has missing values (NA) at rows 1: drop or fill them"


def test_a_misspelt_name_is_refused_with_the_nearest_before_sending(client: Client) -> None:
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=LOGITS, target=LABELS, wieght=np.ones(4))
    assert str(refused.value) == (
        "cross_entropy has no tensor or parameter 'wieght'; did you mean 'weight'? it takes:"
        " input, target, weight, ignore_index, label_smoothing, reduction, grad, dtype, device"
    )
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", inputs=LOGITS, target=LABELS)
    assert str(refused.value).startswith(
        "cross_entropy has no tensor or parameter 'inputs'; did you mean 'input'?"
    )
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=LOGITS)
    assert str(refused.value).startswith("cross_entropy needs target; it takes: input, target")


def test_no_server_is_one_line_that_says_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, progress=False) as client, pytest.raises(ConnectionFailed) as failed:
        client.loss("mse_loss", input=[1.0], target=[0.0])
    assert str(failed.value).startswith(f"cannot reach loss-service at {url} (GET /v1/")
    assert str(failed.value).endswith(
        "check that it is running and that the URL is right (LOSS_SERVICE_URL, --url)"
    )
    assert "\n" not in str(failed.value)


def test_a_categorical_keeps_its_categories_order(client: Client) -> None:
    """A bare pandas Categorical, a CategoricalIndex and a Series of one: the categories, in
    their order, are the logits' columns; the order was once sorted instead."""
    order = ["fish", "bird", "dog", "cat"]
    columns = [int(np.flatnonzero(name == NAMES)[0]) for name in order]
    expected = reference(torch.from_numpy(LOGITS), LABELS)[0]
    for labels in (
        pd.Categorical(NAMES[LABELS], categories=order),
        pd.CategoricalIndex(NAMES[LABELS], categories=order),
    ):
        found = client.loss(
            "cross_entropy", input=LOGITS[:, columns], target=labels, dtype="float64"
        )
        assert (found.loss, found.classes) == (pytest.approx(expected, rel=1e-12), tuple(order))


def test_polars_series_and_frames(client: Client) -> None:
    frame = pl.DataFrame({f"logit_{i}": LOGITS[:, i] for i in range(4)})
    names = pl.Series(NAMES[LABELS].tolist(), dtype=pl.Categorical)
    found = client.loss("cross_entropy", input=frame, target=names, dtype="float64")
    assert found.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)
    assert found.classes == tuple(NAMES)
    rows = pl.Series([row.tolist() for row in LOGITS])  # a list column
    found = client.loss("cross_entropy", input=rows, target=pl.Series(LABELS), dtype="float64")
    assert found.loss == pytest.approx(reference(torch.from_numpy(LOGITS), LABELS)[0], rel=1e-12)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([2, "a", 0], "target mixes numbers and names: target[1] = 'a'"),
        (["a", "b", 0], "target mixes numbers and names: target[2] = 0"),
        ([2, None, 0], "target has missing values (NA) at rows 1: drop or fill them"),
    ],
)
def test_labels_that_are_not_all_of_one_kind(client: Client, target: list, message: str) -> None:
    """[2, "a", 0] once became the names '2', 'a', '0', and 2 the class at index 1."""
    with pytest.raises(InvalidCall) as refused:
        client.loss("cross_entropy", input=np.eye(3), target=target)
    assert str(refused.value) == message


def test_label_quality_refuses_a_misspelt_keyword_with_the_nearest(client: Client) -> None:
    with pytest.raises(InvalidCall) as refused:
        client.label_quality(logits=LOGITS, target=LABELS)
    assert str(refused.value).startswith("label_quality has no tensor or parameter 'logits';")
    with pytest.raises(InvalidCall) as refused:
        client.label_quality(input=LOGITS, target=LABELS, methd="x")
    assert "'methd'" in str(refused.value)
    with pytest.raises(InvalidCall) as refused:
        client.label_quality(input=LOGITS)
    assert str(refused.value).startswith("label_quality needs target;")
