"""The upload floor: a raw ASGI app that reads the body into one buffer and answers a constant,
without a framework: what receiving a request costs at least."""

from bench.raw import app_of

app = app_of(lambda body: b'{"outputs": []}')
