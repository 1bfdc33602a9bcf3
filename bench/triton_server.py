"""The Triton peer: cross entropy with its gradient as a Python function bound to a real
Triton server (nvidia-pytriton, which bundles tritonserver), torch on one thread as the
service's. Run by bench/triton.py with the peer's own interpreter:

    .bench-triton/bin/python bench/triton_server.py HTTP_PORT GRPC_PORT METRICS_PORT
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def cross_entropy(requests: list) -> list[dict[str, np.ndarray]]:
    """The mean cross entropy of each request's logits and targets, and its gradient."""
    answers = []
    for request in requests:
        logits = torch.from_numpy(request["input"]).requires_grad_()
        loss = F.cross_entropy(logits, torch.from_numpy(request["target"]))
        loss.backward()
        answers.append(
            {"loss": loss.detach().numpy().reshape(1), "grad_input": logits.grad.numpy()}
        )
    return answers


def main() -> None:
    http, grpc, metrics = (int(port) for port in sys.argv[1:4])
    torch.set_num_threads(1)
    config = TritonConfig(http_port=http, grpc_port=grpc, metrics_port=metrics, log_verbose=0)
    with Triton(config=config) as triton:
        triton.bind(
            model_name="cross_entropy",
            infer_func=cross_entropy,
            inputs=[
                Tensor(name="input", dtype=np.float32, shape=(-1, -1)),
                Tensor(name="target", dtype=np.int64, shape=(-1,)),
            ],
            outputs=[
                Tensor(name="loss", dtype=np.float32, shape=(1,)),
                Tensor(name="grad_input", dtype=np.float32, shape=(-1, -1)),
            ],
            config=ModelConfig(batching=False),
        )
        triton.serve()


if __name__ == "__main__":
    main()
