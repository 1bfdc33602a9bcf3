"""The small-request peer: a lean FastAPI endpoint that parses the body with simdjson into
numpy and computes the same cross entropy, without validation. uvicorn serves it as it serves
the service: one worker, httptools and uvloop; torch gets one thread."""

from fastapi import FastAPI, Request, Response

from bench.simdjson_floor import compute

app = FastAPI()


@app.post("/v1/losses/cross_entropy")
async def cross_entropy(request: Request) -> Response:
    return Response(compute(bytearray(await request.body())), media_type="application/json")
