"""loss-client: losses, label-quality scores and grades of arrays in files, through
loss-service.

Exit codes: 0 done; 1 the server refused the call (its detail is printed); 2 a usage error, a
file that cannot be read, or a call refused before it was sent; 3 the server cannot be reached.
Every error is one line on stderr.
"""

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loss_service_client import files
from loss_service_client._client import DEFAULT_SCORES, Client
from loss_service_client._errors import ConnectionFailed, InvalidCall, LossServiceError

WIDTH = 100
"""Tables fit this many columns."""
FILES = textwrap.fill(
    "FILE is .npy, .npz, .csv or (with pyarrow) .parquet; FILE:COL, FILE:COL,COL or"
    " FILE:PREFIX* take columns of a CSV or Parquet file by name (or an array of an .npz)."
    " A CSV's blank line, empty cell or word among numbers is an error naming its line.",
    78,
)
EXAMPLES = {
    "losses": "  loss-client losses",
    "compute": (
        "  loss-client compute cross_entropy --input logits.npy --target labels.csv:label \\\n"
        "      --reduction none --grad --out loss.npz\n"
        "  loss-client compute cross_entropy --input data.parquet:logit_* \\\n"
        "      --target data.parquet:label --param label_smoothing=0.1 --out loss.csv"
    ),
    "label-quality": (
        "  loss-client label-quality --logits logits.npy --labels labels.csv:label \\\n"
        "      --out scores.csv --top 20 --plot scores.png"
    ),
    "grade": (
        "  loss-client grade accuracy,calibration_error,auroc,confusion_matrix \\\n"
        "      --task multiclass --input-kind logits \\\n"
        "      --input logits.npy --target labels.csv:label \\\n"
        "      --out report.json --plot grades.png\n"
        '  loss-client grade \'{"top_5": {"metric": "accuracy", "top_k": 5}}\' ...'
    ),
}


OWN_FLAGS = frozenset({"reduction", "grad", "dtype", "classes", "name", "progress"})
"""What `compute` takes as flags of its own, not as --param."""


class Usage(Exception):
    """A usage error: exit 2."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with Client(args.url, args.api_key, args.timeout, progress=not args.quiet) as client:
            args.run(client, args)
    except ConnectionFailed as error:
        return _fail(error, 3)
    except InvalidCall as error:
        return _fail(error, 2)
    except LossServiceError as error:
        return _fail(f"the server refused ({error.status}): {error}", 1)
    except BrokenPipeError:  # the reader left (`| head`): as a shell's SIGPIPE, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (Usage, files.FileError, OSError) as error:
        return _fail(error, 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return 0


def _fail(message: object, code: int) -> int:
    print(f"loss-client: {message}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loss-client",
        description=__doc__,
        parents=[_global(top=True)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\n{FILES}" if name != "losses" else summary + ".",
            epilog=f"example:\n{EXAMPLES[name]}",
            parents=[_global(top=False)],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    losses = command("losses", "print the loss catalogue: each loss, its tensors, what it is")
    losses.set_defaults(run=_losses)

    compute = command("compute", "compute one loss of the arrays in files, and write it out")
    compute.add_argument("name", help="the loss, as torch.nn.functional names it")
    compute.add_argument("--input", required=True, metavar="FILE", help="the predictions")
    compute.add_argument("--target", metavar="FILE", help="the targets (labels, values, ...)")
    compute.add_argument(
        "--tensor",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="another tensor by its name, e.g. weight=w.npy (repeat for more)",
    )
    compute.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter, its value read as JSON, e.g. label_smoothing=0.1 (repeat for more)",
    )
    compute.add_argument(
        "--reduction",
        default="mean",
        choices=["none", "mean", "sum"],
        help="as in PyTorch (default: mean)",
    )
    compute.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="the computation's precision (default: float32)",
    )
    compute.add_argument("--grad", action="store_true", help="also write the gradients")
    _classes(compute)
    compute.add_argument(
        "--out", type=Path, metavar="FILE", help="where the loss (and gradients) go"
    )
    compute.set_defaults(run=_compute)

    quality = command(
        "label-quality", "score every sample's label (lower: more likely mislabelled)"
    )
    quality.add_argument("--logits", required=True, metavar="FILE", help="(N, C) logits")
    quality.add_argument(
        "--labels", required=True, metavar="FILE", help="N labels: class indices or names"
    )
    quality.add_argument(
        "--scores",
        default=",".join(DEFAULT_SCORES),
        help=f"comma-separated (default: {','.join(DEFAULT_SCORES)}); also entropy,cross_entropy",
    )
    quality.add_argument("--multi-label", action="store_true", help="(N, C) labels, 0 or 1")
    _classes(quality)
    quality.add_argument("--out", type=Path, metavar="FILE", help="every sample's scores")
    quality.add_argument(
        "--top",
        type=_count,
        default=10,
        metavar="K",
        help="print the K most suspect (default 10)",
    )
    quality.add_argument(
        "--plot", type=Path, metavar="PNG", help="a histogram of the scores, suspects marked"
    )
    quality.set_defaults(run=_label_quality)

    grade = command("grade", "grade predictions against targets with several metrics at once")
    grade.add_argument(
        "metrics",
        help="metric names with commas (accuracy,auroc), or JSON: {key: {metric, params}}",
    )
    grade.add_argument(
        "--task", required=True, choices=["binary", "multiclass", "multilabel", "regression"]
    )
    grade.add_argument(
        "--input-kind", required=True, choices=["logits", "probabilities", "predictions"]
    )
    grade.add_argument("--input", required=True, metavar="FILE", help="the model's outputs")
    grade.add_argument("--target", required=True, metavar="FILE", help="labels or values")
    grade.add_argument("--sample-weight", metavar="FILE", help="a weight per sample")
    grade.add_argument("--num-classes", type=int, help="C, needed for class predictions")
    grade.add_argument("--ignore-index", type=int, help="targets to leave out")
    grade.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"], help="(default: float32)"
    )
    _classes(grade)
    grade.add_argument(
        "--out", type=Path, metavar="JSON", help="the report: values, tables, states"
    )
    grade.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="reliability diagram, ROC and PR curves, confusion matrix (needs [plot])",
    )
    grade.set_defaults(run=_grade)
    return parser


def _global(top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. After it they have no
    default, so that one given before is kept; argparse shares a parent's actions, so each
    parser gets its own."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    shared = argparse.ArgumentParser(add_help=False)
    url = os.environ.get("LOSS_SERVICE_URL", "http://127.0.0.1:8000")
    shared.add_argument(
        "--url",
        default=default(url),
        help="the service's base URL (default: $LOSS_SERVICE_URL or http://127.0.0.1:8000)",
    )
    shared.add_argument(
        "--api-key",
        default=default(os.environ.get("LOSS_SERVICE_API_KEY")),
        help="an API key (default: $LOSS_SERVICE_API_KEY)",
    )
    shared.add_argument(
        "--timeout",
        type=float,
        default=default(60.0),
        help="seconds to wait for each answer (default: 60)",
    )
    shared.add_argument(
        "--quiet", action="store_true", default=default(False), help="no progress bar on stderr"
    )
    return shared


def _classes(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--classes",
        metavar="NAME,NAME,...",
        help="the class names in the order of the logits' columns, where labels are names"
        " (default: the labels' names, sorted)",
    )


def _losses(client: Client, args: argparse.Namespace) -> None:
    rows = [
        (str(e["name"]), ", ".join(t["name"] for t in e["tensors"]), str(e["summary"]))
        for e in client.losses()
    ]
    _table(("loss", "tensors", "summary"), rows, wrap=(None, 20, None))


def _compute(client: Client, args: argparse.Namespace) -> None:
    tensors: dict[str, Any] = {"input": files.read(args.input)}
    if args.target is not None:
        tensors["target"] = files.read(args.target, labels=True)
    for spec in args.tensor:
        name, path = _pair(spec, "--tensor")
        tensors[name] = files.read(path)
    params = dict(_param(spec) for spec in args.param)
    for key in params.keys() & (OWN_FLAGS | tensors.keys()):
        flag = f"--{key}" if key in OWN_FLAGS else f"--tensor {key}=FILE"
        raise Usage(f"--param {key}: give it as {flag}")
    result = client.loss(
        args.name,
        reduction=args.reduction,
        grad=args.grad,
        dtype=args.dtype,
        device=params.pop("device", None),
        classes=_names(args.classes),
        **tensors,
        **params,
    )
    written = {"loss": result.loss} | {f"grad_{k}": g for k, g in result.grad.items()}
    if args.out is not None:
        files.write(args.out, written)
    if result.loss.ndim == 0:
        print(f"{args.name} ({args.reduction}): {result.loss.item()!r}")
    else:
        where = f"written to {args.out}" if args.out else "(--out FILE writes it)"
        print(f"{args.name} ({args.reduction}): {result.loss.shape} {where}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _label_quality(client: Client, args: argparse.Namespace) -> None:
    labels = files.read(args.labels, labels=True)
    scores = [s for s in args.scores.split(",") if s]
    found = client.label_quality(
        input=files.read(args.logits),
        target=labels,
        scores=scores,
        multi_label=args.multi_label,
        classes=_names(args.classes),
    )
    classes = found.pop("classes", None)
    predicted = found["predicted"] if classes is None else classes[found["predicted"]]
    if args.out is not None:
        files.write(args.out, {"label": labels} | found | {"predicted": predicted})
    first = found[scores[0]]
    suspects = np.argsort(first, kind="stable")[: args.top]
    digits = [_digits(found[s][suspects]) for s in scores]
    rows = [
        (
            str(i),
            _cell(labels[i]),
            _cell(predicted[i]),
            *(f"{found[s][i]:.{d}g}" for s, d in zip(scores, digits, strict=True)),
        )
        for i in suspects
    ]
    print(f"the {len(rows)} most suspect labels, lowest {scores[0]} first:")
    _table(("sample", "label", "predicted", *scores), rows)
    if args.plot is not None:
        from loss_service_client import plots

        plots.scores(first, suspects, scores[0], args.plot)
        print(f"drew the {scores[0]} histogram into {args.plot}")


def _grade(client: Client, args: argparse.Namespace) -> None:
    text = args.metrics.strip()
    try:
        metrics = json.loads(text) if text.startswith("{") else text
    except ValueError as error:
        raise Usage(f"metrics is not JSON: {error}") from None
    if args.plot is not None:  # before the data goes: a picture needs something to draw
        from loss_service_client import plots

        plots.check_plottable(metrics)
    names = _names(args.classes)
    target = files.read(args.target, labels=args.task != "regression")
    found = client.grade(
        metrics,
        task=args.task,
        input_kind=args.input_kind,
        input=files.read(args.input),
        target=target,
        sample_weight=None if args.sample_weight is None else files.read(args.sample_weight),
        num_classes=args.num_classes,
        ignore_index=args.ignore_index,
        classes=names,
        dtype=args.dtype,
    )
    report = found.report()
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    rows = [
        (key, name, _number(value))
        for key, grade in report["grades"].items()
        for name, value in grade["values"].items()
    ]
    _table(("grade", "name", "value"), rows)
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.plot is not None:
        drawn = plots.grades(found, args.plot)
        print(f"drew {', '.join(drawn)} into {args.plot}")


def _number(value: Any) -> str:
    if isinstance(value, list):
        return (
            "[" + ", ".join(_number(v) for v in value[:8]) + (", ...]" if len(value) > 8 else "]")
        )
    return "null" if value is None else f"{value:.6g}"


def _digits(values: np.ndarray) -> int:
    """The fewest significant digits (4 at least) that print distinct values distinctly."""
    distinct = len(set(values.tolist()))
    for digits in range(4, 17):
        if len({f"{v:.{digits}g}" for v in values.tolist()}) == distinct:
            return digits
    return 17


def _count(text: str) -> int:
    """A whole number, 0 or more (argparse says so for anything else)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return int(text)


def _names(classes: str | None) -> list[str] | None:
    return [c.strip() for c in classes.split(",")] if classes else None


def _cell(value: Any) -> str:
    array = np.asarray(value)
    return str(array.tolist()) if array.ndim else str(array.item())


def _pair(spec: str, flag: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise Usage(f"{flag} takes KEY=VALUE, not {spec!r}")
    return key, value


def _param(spec: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as JSON (2, 0.1, true, "x") or else kept as a string."""
    key, value = _pair(spec, "--param")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    wrap: Sequence[int | None] | None = None,
) -> None:
    """Columns two spaces apart, within WIDTH: a column given a width in `wrap` is wrapped
    to it, and the last column to what is left."""
    wrap = wrap or [None] * len(header)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    widths = [min(w, cap) if cap else w for w, cap in zip(widths, wrap, strict=True)]
    widths[-1] = max(len(header[-1]), min(widths[-1], WIDTH - sum(widths[:-1]) - 2 * len(widths)))
    for row in (header, tuple("-" * w for w in widths), *rows):
        cells = [textwrap.wrap(c, w) or [""] for c, w in zip(row, widths, strict=True)]
        for line in range(max(map(len, cells))):
            parts = [c[line] if line < len(c) else "" for c in cells]
            print("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
