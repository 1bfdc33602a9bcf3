"""The loss-service command: serve, openapi, losses, catalogue."""

import argparse
import json
import os
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
    from service.config import Settings
    from service.server import serve

    # Flags become environment variables so that every worker process reads the same settings.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"LOSS_SERVICE_{name}"] = str(value)
    serve(Settings())
