"""A declaration's parameters, parsed as they are given: by type as well as value."""

import math

import pytest

from service.errors import Invalid
from service.losses import REGISTRY
from service.spec import LossSpec


@pytest.fixture
def spec() -> LossSpec:
    return REGISTRY["cross_entropy"]


def test_a_value_equal_to_an_earlier_one_but_of_another_type_is_refused(spec: LossSpec) -> None:
    spec.parse_options({"grad": True})  # True == 1 and hash(True) == hash(1)
    with pytest.raises(Invalid) as raised:
        spec.parse_options({"grad": 1})
    assert raised.value.errors[0].loc == ("grad",)
    assert raised.value.errors[0].type == "bool_type"


def test_a_negative_zero_stays_negative(spec: LossSpec) -> None:
    """A cache of parsed parameters once answered -0.0 as the 0.0 it had kept."""
    assert math.copysign(1.0, spec.parse_options({"label_smoothing": 0.0})[0].label_smoothing) == 1
    kept = spec.parse_options({"label_smoothing": -0.0})[0].label_smoothing
    assert math.copysign(1.0, kept) == -1


def test_refused_values_are_refused_every_time(spec: LossSpec) -> None:
    for _ in range(2):
        with pytest.raises(Invalid, match="label_smoothing"):
            spec.parse_options({"label_smoothing": 2.0})
