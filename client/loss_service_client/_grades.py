"""Grading at any scale: the data (arrays, files, or an iterator of chunks) cut to fit the
server's limits, each part graded by the server in one pass for every metric, and the parts'
states merged by the server (POST /v1/grades/finalize) into values and tables. The client
holds no formula and no merge of its own: both are the server's, in one place."""

import json
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from loss_service_client import _calls
from loss_service_client import _protocol as p
from loss_service_client._errors import InvalidCall
from loss_service_client.files import read

TENSORS = ("input", "target", "sample_weight")
Metrics = Sequence[str] | Mapping[str, Mapping[str, Any]] | str
"""Names (a list, or a string with commas), or {key: {"metric": name, **its parameters}}."""


@dataclass(frozen=True)
class Grade:
    """One metric's grade over all the data."""

    metric: str
    values: dict[str, Any]
    """Its values by name: floats, or arrays (one per class, with average "none")."""
    tables: dict[str, dict[str, np.ndarray]]
    """per_class (precision, recall, f1, support, ...), reliability (per bin), roc, pr."""
    state: dict[str, Any]
    """The merged state ({"metric", "settings", "arrays"}), which merges further with others
    of the same settings by POST /v1/grades/finalize."""


@dataclass(frozen=True)
class Grades(Mapping[str, Grade]):
    """Each metric's grade, by the key it was asked by."""

    grades: dict[str, Grade]
    requests: int = 0
    """How many parts the data went in."""
    warnings: list[str] = field(default_factory=list)
    classes: tuple[str, ...] | None = None
    """The class names the labels were given as (strings or categories), in index order: what
    the per-class tables' rows and the confusion matrix's rows and columns are."""

    def __getitem__(self, key: str) -> Grade:
        return self.grades[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.grades)

    def __len__(self) -> int:
        return len(self.grades)

    def report(self) -> dict[str, Any]:
        """Everything as JSON values: what `loss-client grade` writes."""
        return {
            "grades": {
                key: {
                    "metric": g.metric,
                    "values": _plain(g.values),
                    "tables": _plain(g.tables),
                    "state": g.state,
                }
                for key, g in self.grades.items()
            },
            "requests": self.requests,
            "warnings": self.warnings,
            "classes": None if self.classes is None else list(self.classes),
        }


def _plain(value: Any) -> Any:
    """Tables and values as JSON values: NaN (an empty bin's mean) as null, at any depth."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        found = value.astype(object)
        found[np.isnan(value)] = None
        return found.tolist()
    return None if isinstance(value, float) and value != value else value


def parameters(metrics: Metrics, options: dict[str, Any]) -> dict[str, Any]:
    """The grades call's parameters: the options given, and `metrics` as a mapping by key of
    each metric's parameters (from names: a list, or a string with commas)."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",")]
    if isinstance(metrics, Mapping):
        mapping = {str(k): dict(v) for k, v in metrics.items()}
    else:
        mapping = {name: {} for name in metrics}
    return {k: v for k, v in options.items() if v is not None} | {"metrics": mapping}


Step = p.Plan[list[p.Answer]] | p.Request
"""What grading asks its client to send: a group of parts (answered by their answers), or a
finalize request (answered by its answer)."""


def grading(
    server: p.Server,
    entry: dict[str, Any],
    parameters: dict[str, Any],
    chunks: Iterator[dict[str, Any]],
    classes: Sequence[str] | None,
) -> Generator[Step, Any, Grades]:
    """The whole grade, as the steps a client sends (Client and AsyncClient drive it alike).

    The chunks' parts go in groups of about 4 x max_concurrency; after each group its states
    and those merged so far are finalised (packed to max_body_bytes), so memory stays
    bounded."""
    dtype = parameters.get("dtype", "float32")
    result, running, sent = None, None, 0
    named: list[tuple[str, ...] | None] = []
    for group in _groups(server, entry, chunks, parameters, classes, dtype, named):
        answers = yield p.Plan(group, lambda found: found, server.max_concurrency)
        sent += len(answers)
        units = ([running] if running else []) + [states(a, server.binary) for a in answers]
        while result is None or len(units) > 1:  # until this group is merged into one
            request, used = pack(units, server.max_body_bytes)
            result = finished((yield request), sent)
            running = {key: grade.state for key, grade in result.items()}
            units = [running, *units[used:]]
    if result is None:
        raise InvalidCall("grade has no data: the chunks were empty")
    return replace(result, classes=named[0])


def _difference(names: tuple[str, ...] | None, first: tuple[str, ...] | None) -> str:
    """What one chunk's class names have that the first's lack, and the other way round."""
    if names is None or first is None:
        return "names in one, indices in the other"
    here, there = sorted(set(names) - set(first)), sorted(set(first) - set(names))
    found = [
        f"{', '.join(here[:3])} here" if here else "",
        f"{', '.join(there[:3])} not" if there else "",
    ]
    return "; ".join(part for part in found if part)


def _groups(
    server: p.Server,
    entry: dict[str, Any],
    chunks: Iterator[dict[str, Any]],
    parameters: dict[str, Any],
    classes: Sequence[str] | None,
    dtype: str,
    named: list[tuple[str, ...] | None],
) -> Iterator[list[p.Request]]:
    """The parts' requests in groups; `named` gets the class names of the first chunk's labels
    (each other chunk's must be the same)."""
    group: list[p.Request] = []
    for index, chunk in enumerate(chunks):
        found, names = call(entry, chunk, parameters, classes)
        if found.tensors["input"].size == 0:  # an empty chunk (a filtered batch) adds nothing
            continue
        if not named:
            named.append(names)
        elif names != named[0]:  # indices of other names would merge as the same classes
            raise InvalidCall(
                f"the labels of chunk {index} (counting from 0) name other classes than the"
                " first chunk's"
                f" ({_difference(names, named[0])}): give every class's name, in order, as"
                " classes="
            )
        parts, _ = p.plan(found, server, dtype)
        group += [p.encode(part, server.binary, dtype) for part in parts]
        if len(group) >= 4 * server.max_concurrency:
            yield group
            group = []
    if group:
        yield group


def chunks(
    input: Any, target: Any, sample_weight: Any, given: Iterable[Any] | None
) -> Iterator[dict[str, Any]]:
    """The data as chunks of {input, target[, sample_weight]}: arrays (or files: a path, or
    FILE:COL) as one chunk, or each item of `given` (a dict, or an (input, target[, weight])
    tuple)."""
    if given is None:
        yield _loaded({"input": input, "target": target, "sample_weight": sample_weight})
        return
    for item in given:
        if isinstance(item, Mapping):
            yield _loaded(dict(item))
        else:
            yield _loaded(dict(zip(TENSORS, item, strict=False)))


def _loaded(chunk: dict[str, Any]) -> dict[str, Any]:
    return {
        name: read(value, labels=name == "target") if isinstance(value, str | Path) else value
        for name, value in chunk.items()
        if value is not None
    }


def call(
    entry: dict[str, Any],
    chunk: dict[str, Any],
    parameters: dict[str, Any],
    classes: Sequence[str] | None,
) -> tuple[p.Call, tuple[str, ...] | None]:
    """A chunk as the `grades` call, its labels as indices (and the class names they were
    given as, or None), except for regression, whose targets are values."""
    if parameters.get("task") == "regression":
        tensors = [t | {"kind": "values"} for t in entry["tensors"]]
        entry = entry | {"tensors": tensors}
    return _calls.build("grade", "grades", entry, chunk | parameters, True, classes)


def states(answer: p.Answer, binary: bool) -> dict[str, dict[str, Any]]:
    """A part's state of each metric, from its /v2 outputs (and the settings in its
    parameters) or from its /v1 body."""
    p.check(answer)
    if not binary:
        return {key: g["state"] for key, g in json.loads(answer.content)["grades"].items()}
    part = p.decode(answer, True, "grade")
    settings = json.loads(part.parameters["grades"])
    found = {
        key: {"metric": s["metric"], "settings": s["settings"], "arrays": {}}
        for key, s in settings.items()
    }
    for name, array in part.outputs.items():
        key, _, rest = name.partition(".")
        if rest.startswith("state."):
            found[key]["arrays"][rest.removeprefix("state.")] = array.tolist()
    return found


Unit = dict[str, dict[str, Any]]
"""Each key's state of one part (or of the parts merged so far)."""


def pack(units: list[Unit], limit: int) -> tuple[p.Request, int]:
    """A finalize request of the first units that fit the server's max_body_bytes (two at
    least, where there are two: the server then says what does not fit), and how many."""
    texts = [json.dumps(unit) for unit in units]
    used, size = 0, 64
    while used < len(units) and (used < 2 or size + len(texts[used]) + 8 <= limit):
        size += len(texts[used]) + 8
        used += 1
    keys = list(units[0])
    content = json.dumps({"states": {k: [u[k] for u in units[:used]] for k in keys}}).encode()
    headers = {"content-type": "application/json"}
    return p.Request("POST", "/v1/grades/finalize", content, headers), used


def finished(answer: p.Answer, requests: int) -> Grades:
    body = json.loads(p.check(answer).content)
    grades = {
        key: Grade(
            g["metric"],
            {name: _array(v) for name, v in g["values"].items()},
            {t: {n: _array(v) for n, v in table.items()} for t, table in g["tables"].items()},
            g["state"],
        )
        for key, g in body["grades"].items()
    }
    return Grades(grades, requests, body.get("warnings", []))


def _array(value: Any) -> Any:
    """A JSON value as numpy (null: NaN, as numpy reads None into a float array)."""
    if isinstance(value, list):
        return np.asarray(value, dtype=float)
    return float("nan") if value is None else value
