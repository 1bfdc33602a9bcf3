"""The tutorial-style service the benchmark compares against: what a first FastAPI version of
this service looks like: a pydantic body model of nested lists, torch.tensor(list), .tolist()
and FastAPI's default JSON response. torch gets one thread, as the service does, so the
comparison is of everything around the computation."""

import torch
import torch.nn.functional as F
from fastapi import FastAPI
from pydantic import BaseModel

torch.set_num_threads(1)
app = FastAPI()


class Request(BaseModel):
    input: list[list[float]]
    target: list[int]
    grad: bool = False


@app.post("/v1/losses/cross_entropy")
def cross_entropy(request: Request):
    # No return annotation, as tutorials write it: FastAPI's default response, which passes
    # the dict through jsonable_encoder (a `-> dict` would serialise it with pydantic).
    input = torch.tensor(request.input, requires_grad=request.grad)
    loss = F.cross_entropy(input, torch.tensor(request.target))
    response: dict = {"loss": loss.item()}
    if request.grad:
        loss.backward()
        response["grad"] = {"input": input.grad.tolist()}
    return response
