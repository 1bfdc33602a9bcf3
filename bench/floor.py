"""The framework floor: a bare FastAPI endpoint that reads the body and returns a constant."""

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/v1/losses/cross_entropy")
async def cross_entropy(request: Request) -> dict:
    await request.body()
    return {"loss": 0.0}


@app.post("/v2/models/cross_entropy/infer")
async def infer(request: Request) -> dict:
    await request.body()
    return {"outputs": []}
