"""The engine without HTTP: devices, computations, and CUDA where there is one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.config import Settings
from service.engine import Engine
from service.errors import Invalid
from service.losses import REGISTRY

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_auto_is_the_cpu_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    engine = Engine(Settings())
    assert engine.devices == ["cpu"]
    assert engine.device(None) == engine.device("auto") == torch.device("cpu")


def test_a_default_device_the_machine_lacks_fails_at_startup() -> None:
    with pytest.raises(Invalid, match="LOSS_SERVICE_DEVICE 'cuda:7' is not available"):
        Engine(Settings(device="cuda:7"))


def test_settings_reject_an_unknown_device_name() -> None:
    with pytest.raises(ValueError, match="LOSS_SERVICE_DEVICE must be auto, cpu, cuda or cuda:N"):
        Settings(device="gpu")


def test_compute_returns_numpy_loss_and_gradients() -> None:
    engine = Engine(Settings())
    spec = REGISTRY["cross_entropy"]
    params, options = spec.parse_options({"grad": True, "dtype": "float64"})
    arrays = {"input": np.array([[1.0, 2.0, 3.0]]), "target": np.array([2])}
    result = engine.compute(spec, arrays, params, options)
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(x, torch.tensor([2]))
    expected.backward()
    assert result.outputs["loss"] == expected.item()
    np.testing.assert_array_equal(result.outputs["grad_input"], x.grad.numpy())
    assert result.device == "cpu"


@CUDA
@pytest.mark.cuda
def test_cuda_matches_the_cpu_and_bad_indices_never_reach_the_device() -> None:
    engine = Engine(Settings(device="cuda"))
    spec = REGISTRY["cross_entropy"]
    arrays = {"input": np.random.default_rng(0).normal(size=(8, 5)), "target": np.arange(8) % 5}
    for device in ("cpu", "cuda:0"):
        params, options = spec.parse_options({"grad": True, "dtype": "float64", "device": device})
        result = engine.compute(spec, arrays, params, options)
        assert result.device == device
        if device == "cpu":
            cpu = result
    np.testing.assert_allclose(result.outputs["loss"], cpu.outputs["loss"], rtol=1e-12)
    np.testing.assert_allclose(result.outputs["grad_input"], cpu.outputs["grad_input"], rtol=1e-10)
    params, options = spec.parse_options({"device": "cuda"})
    with pytest.raises(Invalid, match="is not a class index"):  # the data plane's check
        spec.validate(arrays | {"target": np.full(8, 9)}, params, options)
    engine.compute(spec, arrays, params, options)  # the process is still healthy


def test_float64_arrays_beyond_float32_are_rejected_for_a_float32_computation() -> None:
    """Adapters may hand the engine float64 arrays; a float32 run must not turn them into inf."""
    engine = Engine(Settings())
    spec = REGISTRY["mse_loss"]
    params, options = spec.parse_options({"dtype": "float32"})
    arrays = {"input": np.array([1.0, 1e39]), "target": np.array([0.0, 0.0])}
    with pytest.raises(Invalid, match=r"input\[1\] = 1e\+39 is beyond float32's range"):
        engine.compute(spec, arrays, params, options)
    largest = np.array([3.4028235e38, 0.0])  # float32's largest as orjson writes it
    assert engine.compute(spec, arrays | {"input": largest}, params, options).outputs["loss"] > 0
    halfway = np.array([0.0, -(2.0**128 - 2.0**103)])  # rounds to -inf in float32
    with pytest.raises(Invalid, match=r"input\[1\] = -3.402823567797\d+e\+38 is beyond"):
        engine.compute(spec, arrays | {"input": halfway}, params, options)
