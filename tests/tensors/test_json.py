"""JSON tensors to numpy: shapes, element types, and the first bad index."""

from typing import Any

import numpy as np
import orjson
import pytest

from service.errors import Invalid, PayloadTooLarge
from service.tensors.json import ElementKind, TensorReader, dumps, parse_object


def read(tensor: Any, kind: ElementKind = "float", max_elements: int = 1000) -> np.ndarray:
    """Reads {"x": tensor} as the service does, the bracket count included."""
    body = orjson.dumps({"x": tensor})
    fields = parse_object(body)
    reader = TensorReader(max_elements)
    array = reader.read(fields["x"], "x", kind)
    reader.confirm(body, {"x": fields["x"]}, {"x": kind})
    return array


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
        ([0, 1.0], "int", ("x", 1), "x[1] = 1.0 is not an integer"),
        (1.0, "int", ("x",), "x = 1.0 is not an integer"),
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


def test_a_bracket_in_another_field_does_not_fail_sound_tensors() -> None:
    body = b'{"x": [[1, 2]], "note": "[["}'
    fields = parse_object(body)
    reader = TensorReader(100)
    array = reader.read(fields["x"], "x", "float")
    reader.confirm(body, {"x": fields["x"]}, {"x": "float"})
    assert array.tolist() == [[1.0, 2.0]]


def test_counts_elements_across_tensors() -> None:
    fields = parse_object(b'{"a": [1, 2, 3], "b": [[1, 2], [3, 4]]}')
    reader = TensorReader(6)
    reader.read(fields["a"], "a", "float")
    with pytest.raises(PayloadTooLarge, match=r"more than max_elements \(6\)"):
        reader.read(fields["b"], "b", "float")


def test_dumps_writes_numpy_and_turns_non_finite_into_null() -> None:
    content = {"a": np.array([1.5, np.nan, -np.inf], np.float32), "b": np.array(0.25)}
    assert dumps(content) == b'{"a":[1.5,null,null],"b":0.25}'
