"""The loss-service command: serve, openapi, losses, catalogue."""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

OPENAPI_PATH = Path("openapi/openapi.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="loss-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service with uvicorn")
    serve.add_argument("--host", help="bind address (LOSS_SERVICE_HOST)")
    serve.add_argument("--port", type=int, help="TCP port (LOSS_SERVICE_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (LOSS_SERVICE_WORKERS)")
    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", type=Path, default=OPENAPI_PATH)
    commands.add_parser("losses", help="print the loss catalogue as JSON")
    commands.add_parser("catalogue", help="print every kind's catalogue (losses, ...) as JSON")
    args = parser.parse_args(argv)

    if args.command == "serve":
        _serve(args.host, args.port, args.workers)
    elif args.command == "openapi":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(openapi_json())
        print(f"wrote {args.output}")
    else:
        from service.kinds import KINDS

        found = {kind.path: [spec.entry() for spec in kind.specs.values()] for kind in KINDS}
        print(json.dumps(found["losses"] if args.command == "losses" else found, indent=2))


def openapi_json() -> str:
    """The checked-in document's exact text."""
    from service.app import create_app

    return json.dumps(create_app().openapi(), indent=2, sort_keys=False) + "\n"


def _serve(host: str | None, port: int | None, workers: int | None) -> None:
    import uvicorn

    from service.config import Settings
    from service.http import GuardedHttpTools

    # Flags become environment variables so that every worker process reads the same settings.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"LOSS_SERVICE_{name}"] = str(value)
    settings = Settings()
    # uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
    # handler it found installed: this one, so that a graceful stop exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the service writes its own (service.metrics.Observe)
        http=GuardedHttpTools,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
