"""loss-client: the loss catalogue, one loss of arrays in files, and label-quality scores.

    loss-client losses
    loss-client compute NAME --input FILE --target FILE [--tensor NAME=FILE ...]
                        [--param KEY=VALUE ...] [--reduction R] [--grad] --out FILE
    loss-client label-quality --logits FILE --labels FILE --out FILE [--top K]

Files are .npy, .npz, .csv or (with pyarrow) .parquet. --url and --api-key default to
LOSS_SERVICE_URL and LOSS_SERVICE_API_KEY. A refusal prints the server's detail and exits 1.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loss_service_client import files
from loss_service_client._client import DEFAULT_SCORES, Client
from loss_service_client._errors import LossServiceError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with Client(args.url, args.api_key, progress=not args.quiet) as client:
            args.run(client, args)
    except LossServiceError as error:
        print(f"loss-client: the server refused ({error.status}): {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"loss-client: {error}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loss-client", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("LOSS_SERVICE_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("LOSS_SERVICE_API_KEY"))
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    losses = commands.add_parser("losses", help="print the loss catalogue as a table")
    losses.set_defaults(run=_losses)

    compute = commands.add_parser("compute", help="compute one loss of arrays in files")
    compute.add_argument("name")
    compute.add_argument("--input", type=Path, required=True)
    compute.add_argument("--target", type=Path)
    compute.add_argument("--tensor", action="append", default=[], metavar="NAME=FILE")
    compute.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    compute.add_argument("--reduction", default="mean")
    compute.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    compute.add_argument("--grad", action="store_true")
    compute.add_argument("--out", type=Path, required=True)
    compute.set_defaults(run=_compute)

    quality = commands.add_parser("label-quality", help="score every sample's label")
    quality.add_argument("--logits", type=Path, required=True)
    quality.add_argument("--labels", type=Path, required=True)
    quality.add_argument("--scores", default=",".join(DEFAULT_SCORES))
    quality.add_argument("--multi-label", action="store_true")
    quality.add_argument("--out", type=Path, required=True)
    quality.add_argument("--top", type=int, default=10, metavar="K")
    quality.set_defaults(run=_label_quality)
    return parser


def _losses(client: Client, args: argparse.Namespace) -> None:
    rows = [
        (
            str(entry["name"]),
            ", ".join(t["name"] for t in entry["tensors"]),
            ", ".join(entry["parameters"]),
            str(entry["summary"]),
        )
        for entry in client.losses()
    ]
    _table(("loss", "tensors", "parameters", "summary"), rows)


def _compute(client: Client, args: argparse.Namespace) -> None:
    tensors: dict[str, Any] = {"input": files.read(args.input)}
    if args.target is not None:
        tensors["target"] = files.read(args.target)
    for spec in args.tensor:
        name, path = _pair(spec, "--tensor")
        tensors[name] = files.read(Path(path))
    params = dict(_param(spec) for spec in args.param)
    result = client.loss(
        args.name, reduction=args.reduction, grad=args.grad, dtype=args.dtype, **tensors, **params
    )
    files.write(args.out, {"loss": result.loss} | {f"grad_{k}": g for k, g in result.grad.items()})
    if result.loss.ndim == 0:
        print(f"{args.name} ({args.reduction}): {result.loss.item()!r}")
    else:
        print(f"{args.name} ({args.reduction}): {result.loss.shape} written to {args.out}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _label_quality(client: Client, args: argparse.Namespace) -> None:
    labels = files.read(args.labels)
    scores = [s for s in args.scores.split(",") if s]
    found = client.label_quality(
        input=files.read(args.logits), target=labels, scores=scores, multi_label=args.multi_label
    )
    files.write(args.out, {"label": labels} | found)
    first = found[scores[0]]
    suspects = np.argsort(first, kind="stable")[: args.top]
    rows = [
        (
            str(i),
            _cell(labels[i]),
            _cell(found["predicted"][i]),
            *(f"{found[s][i]:.4f}" for s in scores),
        )
        for i in suspects
    ]
    print(f"the {len(rows)} most suspect labels, lowest {scores[0]} first:")
    _table(("sample", "label", "predicted", *scores), rows)


def _cell(value: Any) -> str:
    array = np.asarray(value)
    return str(array.tolist()) if array.ndim else str(array.item())


def _pair(spec: str, flag: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"{flag} takes KEY=VALUE, not {spec!r}")
    return key, value


def _param(spec: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as JSON (2, 0.1, true, "x") or else kept as a string."""
    key, value = _pair(spec, "--param")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


if __name__ == "__main__":
    sys.exit(main())
