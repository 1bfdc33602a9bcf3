"""A declaration's parameters: parsed once per set of values, by type as well as value."""

import math

import pytest

from service.errors import Invalid
from service.losses import REGISTRY
from service.spec import PARSED_KEPT, LossSpec


@pytest.fixture
def spec() -> LossSpec:
    return REGISTRY["cross_entropy"]


def test_the_same_values_give_the_same_parsed_parameters(spec: LossSpec) -> None:
    first = spec.parse_options({"grad": True, "ignore_index": 3})
    again = spec.parse_options({"grad": True, "ignore_index": 3})
    assert again[0] is first[0] and again[1] is first[1]
    assert again[1].grad is True and again[0].ignore_index == 3


def test_a_value_equal_to_a_kept_one_but_of_another_type_is_parsed_anew(spec: LossSpec) -> None:
    spec.parse_options({"grad": True})  # True == 1 and hash(True) == hash(1)
    with pytest.raises(Invalid) as raised:
        spec.parse_options({"grad": 1})
    assert raised.value.errors[0].loc == ("grad",)
    assert raised.value.errors[0].type == "bool_type"


def test_a_negative_zero_is_not_taken_for_a_kept_zero(spec: LossSpec) -> None:
    assert math.copysign(1.0, spec.parse_options({"label_smoothing": 0.0})[0].label_smoothing) == 1
    kept = spec.parse_options({"label_smoothing": -0.0})[0].label_smoothing
    assert math.copysign(1.0, kept) == -1


def test_refused_values_are_refused_every_time(spec: LossSpec) -> None:
    for _ in range(2):
        with pytest.raises(Invalid, match="label_smoothing"):
            spec.parse_options({"label_smoothing": 2.0})


def test_the_kept_parameters_are_bounded(spec: LossSpec) -> None:
    for index in range(PARSED_KEPT + 10):
        assert spec.parse_options({"ignore_index": index})[0].ignore_index == index
    assert len(spec._parsed) <= PARSED_KEPT
