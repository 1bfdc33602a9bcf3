"""The JSON floor: a raw ASGI app that reads the body once, parses it with simdjson straight into
numpy, computes the cross entropy with torch and writes the result with orjson. It validates
nothing, so it is a floor, not a peer."""

from typing import Any

import numpy as np
import orjson
import simdjson
import torch
import torch.nn.functional as F

from bench.raw import app_of

torch.set_num_threads(1)
parser = simdjson.Parser()


def compute(body: bytearray) -> bytes:
    document = parser.parse(body)
    rows = document["input"]
    x = np.frombuffer(rows.as_buffer(of_type="d"), dtype="<f8").reshape(len(rows), -1)
    target = np.frombuffer(document["target"].as_buffer(of_type="i"), dtype="<i8").copy()
    grad = bool(document.get("grad", False))
    del rows, document  # the parser takes no new body while a document refers to it
    logits = torch.from_numpy(x.astype(np.float32)).requires_grad_(grad)
    loss = F.cross_entropy(logits, torch.from_numpy(target))
    answer: dict[str, Any] = {"loss": loss.item()}
    if grad:
        loss.backward()
        assert logits.grad is not None
        answer["grad"] = {"input": logits.grad.numpy()}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


app = app_of(compute)
