"""JSON tensors to numpy: shapes, element types, and the first bad index."""

import json
from typing import Any

import numpy as np
import orjson
import pytest

from service.errors import Invalid, PayloadTooLarge
from service.tensors.fields import parse_fields
from service.tensors.json import (
    BLOCK_ELEMENTS,
    CHUNK_BYTES,
    Budget,
    ElementKind,
    TensorReader,
    dumps,
    encode,
)


def read(
    tensor: Any, kind: ElementKind = "float", max_elements: int = 10**7, dtype: str = "float64"
) -> np.ndarray:
    """Reads {"x": tensor} as the service does."""
    fields = parse_fields(orjson.dumps({"x": tensor}, option=orjson.OPT_SERIALIZE_NUMPY))
    return TensorReader(Budget(max_elements), np.dtype(dtype)).read(fields["x"], "x", kind)


@pytest.mark.parametrize(
    ("tensor", "kind", "dtype"),
    [
        (1.5, "float", np.float64),
        (2, "int", np.int64),
        (2, "float", np.float64),
        ([1, 2.5], "float", np.float64),
        ([[1, 2], [3, 4]], "int", np.int64),
        ([[1, 2], [3, 4]], "int or float", np.int64),
        ([[1, 2], [3, 4.0]], "int or float", np.float64),
        ([[[1], [2]], [[3], [4]]], "float", np.float64),
        ([[]], "float", np.float64),
        ([], "int", np.float64),  # no element says int, and nothing is lost
    ],
)
def test_reads_shape_values_and_type(tensor: Any, kind: ElementKind, dtype: type) -> None:
    array = read(tensor, kind)
    expected = np.array(tensor, dtype=np.float64)
    assert array.shape == expected.shape
    assert array.dtype == dtype or array.size == 0
    np.testing.assert_array_equal(array, expected)


def test_reads_eight_dimensions() -> None:
    assert read(np.zeros((1, 2, 1, 2, 1, 2, 1, 2)).tolist()).shape == (1, 2, 1, 2, 1, 2, 1, 2)


@pytest.mark.parametrize(
    ("tensor", "kind", "loc", "message"),
    [
        ([[1, 2], [3]], "float", ("x", 1), "x[1] has 1 elements where 2 are expected"),
        ([[1], [2, 3]], "float", ("x", 1), "x[1] has 2 elements where 1 are expected"),
        ([[1, 2], 3], "float", ("x", 1), "x[1] is a number where an array of 2 is expected"),
        ([[[1], [2]], [3, 4]], "float", ("x", 1, 0), "x[1, 0] is a number where an array"),
        ([1, [2]], "float", ("x", 1), "x[1] = an array is not a number"),
        ([[1, [2]], [3, 4]], "float", ("x", 0, 1), "x[0, 1] = an array is not a number"),
        ([[1, [], [2, 3]]], "float", ("x", 0, 1), "x[0, 1] = an array is not a number"),
        ([1, False], "float", ("x", 1), "x[1] = false is not a number"),
        (True, "float", ("x",), "x = true is not a number"),
        (None, "float", ("x",), "x = null is not a number"),
        ("1", "float", ("x",), 'x = "1" is not a number'),
        ({"a": 1}, "float", ("x",), "x = an object is not a number"),
        ([0, 1.0], "int", ("x", 1), "x[1] = 1.0 is not an integer; send integers (2, not 2.0)"),
        (1.0, "int", ("x",), "x = 1.0 is not an integer; send integers (2, not 2.0)"),
        ([[[[[[[[[0]]]]]]]]], "float", ("x",), "x has more than 8 dimensions"),
        ([2**63], "int", ("x", 0), "x[0] = 9223372036854775808 does not fit"),
    ],
)
def test_names_the_first_bad_index(
    tensor: Any, kind: ElementKind, loc: tuple, message: str
) -> None:
    with pytest.raises(Invalid) as raised:
        read(tensor, kind)
    assert raised.value.errors[0].loc == loc
    assert raised.value.detail.startswith(message)


BIG = [(3000, 100), (200, 50, 30), (400_000,)]  # each over CHUNK_BYTES as JSON: read in chunks


@pytest.mark.parametrize("shape", BIG)
def test_reads_large_tensors_in_chunks(shape: tuple[int, ...]) -> None:
    array = np.round(np.random.default_rng(0).normal(size=shape), 4)
    assert len(orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)) > 2 * CHUNK_BYTES
    np.testing.assert_array_equal(read(array), array)
    np.testing.assert_array_equal(read(array, dtype="float32"), array.astype(np.float32))
    integers = (array * 1000).astype(np.int64)
    assert read(integers, "int").dtype == np.int64
    np.testing.assert_array_equal(read(integers, "int or float"), integers)


@pytest.mark.parametrize("shape", BIG)
def test_sound_large_tensors_take_the_fast_path(shape: tuple[int, ...]) -> None:
    """The slow path gives the same numbers, only 50 times slower: check it is not taken."""
    array = np.round(np.random.default_rng(0).normal(size=shape), 4)
    raw = parse_fields(orjson.dumps({"x": array}, option=orjson.OPT_SERIALIZE_NUMPY))["x"]
    fast = FastOnly(Budget(10**8), np.dtype(np.float32)).read(raw, "x", "float")
    np.testing.assert_array_equal(fast, array.astype(np.float32))


class FastOnly(TensorReader):
    """A reader that fails where a chunk would be read slowly."""

    def _slowly(self, *args: Any) -> np.ndarray:
        raise AssertionError("a chunk took the slow path")


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        (lambda t: t.__setitem__(2900, t[2900][:-1]), ("x", 2900), "x[2900] has 99 elements"),
        (lambda t: t[2999].__setitem__(5, [1.0]), ("x", 2999, 5), "x[2999, 5] = an array"),
        (lambda t: t[1500].__setitem__(7, None), ("x", 1500, 7), "x[1500, 7] = null"),
        (lambda t: t[2500].__setitem__(1, 1e39), ("x", 2500, 1), "x[2500, 1] = 1e+39 is beyond"),
    ],
)
def test_names_the_index_of_a_fault_in_a_late_chunk(change: Any, loc: tuple, message: str) -> None:
    tensor = np.round(np.random.default_rng(1).normal(size=(3000, 100)), 4).tolist()
    change(tensor)
    with pytest.raises(Invalid) as raised:
        read(tensor, dtype="float32")
    assert raised.value.errors[0].loc == loc
    assert raised.value.detail.startswith(message)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def test_float32_s_largest_as_orjson_writes_it_is_read_as_itself() -> None:
    """orjson writes float32's largest as 3.4028235e+38, above it as a float64, which rounds
    back to it: float32 can hold it, so it is no overflow."""
    extremes = np.array([np.finfo(np.float32).max, np.finfo(np.float32).min])
    text = orjson.dumps(extremes, option=orjson.OPT_SERIALIZE_NUMPY)
    assert text == b"[3.4028235e+38,-3.4028235e+38]"
    fields = parse_fields(b'{"x": ' + text + b"}")
    array = TensorReader(Budget(10), np.dtype(np.float32)).read(fields["x"], "x", "float")
    np.testing.assert_array_equal(array, np.array([FLOAT32_MAX, -FLOAT32_MAX], np.float32))


@pytest.mark.parametrize("size", [2, 200_000])  # one chunk, and the last of several
def test_a_number_that_float32_rounds_to_infinity_is_named(size: int) -> None:
    """Half an ulp above float32's largest rounds to infinity; just below, to the largest."""
    halfway = 2.0**128 - 2.0**103
    below = float(np.nextafter(halfway, 0))
    tensor = np.full(size, -below)
    assert np.all(read(tensor.tolist(), dtype="float32") == np.float32(-FLOAT32_MAX))
    tensor[-1] = -halfway
    with pytest.raises(Invalid) as raised:
        read(tensor.tolist(), dtype="float32")
    assert raised.value.errors[0].loc == ("x", size - 1)
    assert raised.value.detail == (
        f"x[{size - 1}] = {-halfway!r} is beyond float32's range; send dtype float64"
    )


def test_an_integer_beyond_int64_is_read_as_a_float() -> None:
    assert read([2**63 + 1, 1], "float").tolist() == [float(2**63 + 1), 1.0]


def test_counts_elements_across_tensors() -> None:
    fields = parse_fields(b'{"a": [1, 2, 3], "b": [[1, 2], [3, 4]]}')
    reader = TensorReader(Budget(6), np.dtype(np.float64))
    reader.read(fields["a"], "a", "float")
    with pytest.raises(PayloadTooLarge, match=r"more than max_elements \(6\)"):
        reader.read(fields["b"], "b", "float")


def test_dumps_writes_numpy_and_turns_non_finite_into_null() -> None:
    content = {"a": np.array([1.5, np.nan, -np.inf], np.float32), "b": np.array(0.25)}
    assert dumps(content) == b'{"a":[1.5,null,null],"b":0.25}'


@pytest.mark.parametrize("shape", [(BLOCK_ELEMENTS + 1,), (700, 100), (3, 200, 150), (70000, 1)])
def test_encode_writes_large_results_in_pieces_that_join_to_the_same_json(shape: tuple) -> None:
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    content = {"loss": np.float32(1.5), "grad": {"input": array, "other": array[:2]}, "n": 1}
    pieces = encode(content)
    assert not isinstance(pieces, bytes)
    assert b"".join(pieces) == dumps(content)


def test_encode_writes_small_results_at_once() -> None:
    content = {"loss": np.zeros((10, 10), np.float32)}
    assert encode(content) == dumps(content)


def test_a_tensor_read_again_slowly_is_counted_once() -> None:
    """A late fault sends a large tensor down the slow path after its first chunks counted."""
    tensor = np.zeros((3000, 100)).tolist()
    tensor[2999][5] = 2**64 + 1  # beyond 64 bits: simdjson fails on the last chunk
    fields = parse_fields(json.dumps({"x": tensor}).encode())
    array = TensorReader(Budget(300_000), np.dtype(np.float64)).read(fields["x"], "x", "float")
    assert array[2999, 5] == float(2**64 + 1)


@pytest.mark.parametrize("fault", [None, [1.0], True, 1e39])
def test_a_body_read_in_place_is_left_as_it_came(fault: Any) -> None:
    """A writable body's commas become a chunk's brackets while it is read: afterwards, and
    after a refusal too, the body is what the client sent (a syntax check may read it again)."""
    tensor = np.round(np.random.default_rng(2).normal(size=(3000, 100)), 4).tolist()
    tensor[2999][5] = fault if fault is not None else tensor[2999][5]
    body = bytearray(json.dumps({"x": tensor, "y": 1}).encode())
    sent = bytes(body)
    raw = parse_fields(body)["x"]
    assert isinstance(raw, memoryview)
    assert not raw.readonly
    try:
        array = TensorReader(Budget(10**7), np.dtype(np.float32)).read(raw, "x", "float")
    except Invalid as error:
        assert error.errors[0].loc == ("x", 2999, 5)
    else:
        np.testing.assert_array_equal(array, np.array(tensor, dtype=np.float32))
    assert body == sent


def test_an_error_kept_does_not_hold_the_parser() -> None:
    """simdjson's parser takes no new body while one of its documents is alive: an error
    that kept the document as context (a test's pytest.raises, a log record) would send
    every later tensor of the thread down the slow path."""
    with pytest.raises(Invalid) as raised:
        read([[1, 2], [3, "a"]])
    fields = parse_fields(b'{"x": [[1, 2], [3, 4]]}')
    reader = FastOnly(Budget(10), np.dtype(np.float64))
    np.testing.assert_array_equal(reader.read(fields["x"], "x", "float"), [[1, 2], [3, 4]])
    assert raised.value.detail.startswith('x[1, 1] = "a" is not a number')
