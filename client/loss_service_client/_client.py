"""Client and AsyncClient: the same methods, blocking or as coroutines. They share _Base,
which builds every Plan (loss_service_client._protocol); each twin only sends a plan's
requests, retrying 503s, at most the server's max_concurrency at a time."""

import asyncio
import json
import random
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, TypeVar

import httpx2
import numpy as np
from tqdm import tqdm

from loss_service_client import _calls
from loss_service_client import _grades as g
from loss_service_client import _protocol as p
from loss_service_client._errors import ConnectionFailed

T = TypeVar("T")
DEFAULT_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        progress: bool = True,
        retries: int = 8,
        backoff: float = 0.25,
        binary: bool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.progress = progress
        self.retries = retries
        """How many times a 503 is retried before it is raised."""
        self.backoff = backoff
        """The first retry's delay in seconds; each next one doubles, up to 10 s."""
        self.binary = binary
        """True: /v2 binary tensors; False: /v1 JSON; None: binary when the server has it."""
        self._server: p.Server | None = None
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}

    def _delay(self, attempt: int, answer: p.Answer) -> float:
        """Jittered exponential backoff, never shorter than the server's Retry-After."""
        after = answer.headers.get("retry-after", "")
        floor = float(after) if after.replace(".", "", 1).isdigit() else 0.0
        delay: float = min(10.0, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
        return max(floor, delay)

    def _retryable(self, answer: p.Answer, attempt: int) -> bool:
        return answer.status == 503 and attempt < self.retries

    @staticmethod
    def _smaller(request: p.Request, answer: p.Answer) -> list[p.Request]:
        """The request cut smaller where the server refused it for its work; else []."""
        if answer.status != 413 or request.cut is None:
            return []
        problem = p.problem_of(answer)
        return request.cut(problem) if "max_work" in problem else []

    def _unreachable(self, request: p.Request, error: httpx2.TransportError) -> ConnectionFailed:
        """One line: what was tried, where, and what to check."""
        where = f"{self.base_url} ({request.method} {request.path})"
        if isinstance(error, httpx2.TimeoutException):
            return ConnectionFailed(
                f"no answer from loss-service at {where} within {self.timeout:g} s: a larger"
                " timeout= (--timeout) may help, or a smaller call"
            )
        reason = str(error) or type(error).__name__
        return ConnectionFailed(
            f"cannot reach loss-service at {where}: {reason}; check that it is running and"
            " that the URL is right (LOSS_SERVICE_URL, --url)"
        )

    def _grade_bar(self) -> Any:
        """A grade's progress bar, shown once the job has taken a second."""
        return tqdm(unit="request", disable=not self.progress, delay=1.0)

    def _show(self, plan: p.Plan[Any], progress: bool | None) -> bool:
        return (self.progress if progress is None else progress) and len(plan.requests) > 1

    @staticmethod
    def _server_plan() -> p.Plan[dict[str, Any]]:
        def finish(answers: list[p.Answer]) -> dict[str, Any]:
            info, v2 = answers
            limits: dict[str, Any] = json.loads(p.check(info).content)["limits"]
            extensions = json.loads(v2.content).get("extensions", []) if v2.status == 200 else []
            return limits | {"binary": "binary_tensor_data" in extensions}

        return p.Plan([p.Request("GET", "/v1/info"), p.Request("GET", "/v2")], finish, 2)

    @staticmethod
    def _get_plan(path: str) -> p.Plan[Any]:
        return p.Plan([p.Request("GET", path)], lambda a: json.loads(p.check(a[0]).content))

    def _limits(self, found: dict[str, Any]) -> p.Server:
        return p.Server(
            found["max_body_bytes"],
            found["max_elements"],
            found["max_concurrency"],
            found["binary"] if self.binary is None else self.binary,
            found.get("max_work"),
        )

    def _plan(self, call: p.Call, server: p.Server, dtype: str, join: Any) -> p.Plan[Any]:
        parts, _ = p.plan(call, server, dtype)
        requests = [p.encode(part, server.binary, dtype) for part in parts]

        def finish(answers: list[p.Answer]) -> Any:
            return join([p.decode(a, server.binary, call.kind) for a in answers], call)

        return p.Plan(requests, finish, server.max_concurrency)

    def _loss_plan(
        self,
        server: p.Server,
        entry: dict[str, Any],
        name: str,
        values: dict[str, Any],
        classes: Sequence[str] | None,
    ) -> p.Plan[p.LossResult]:
        reduction, dtype = values["reduction"], values["dtype"]
        call, named = _calls.build("loss", name, entry, values, True, classes)

        def join(parts: list[p.Part], c: p.Call) -> p.LossResult:
            return replace(p.join_loss(parts, c, reduction, dtype), classes=named)

        return self._plan(call, server, dtype, join)

    def _activation_plan(
        self, server: p.Server, entry: dict[str, Any], name: str, values: dict[str, Any]
    ) -> p.Plan[np.ndarray]:
        call, _ = _calls.build("activation", name, entry, values, True)
        dim, rank = values.get("dim"), call.tensors["input"].ndim
        call = replace(call, split=dim is None or (dim % max(rank, 1)) != 0)  # softmax over N
        return self._plan(
            call, server, values["dtype"], lambda parts, c: p.join_outputs(parts)["output"]
        )

    def _scores_plan(
        self,
        server: p.Server,
        entry: dict[str, Any],
        values: dict[str, Any],
        classes: Sequence[str] | None,
    ) -> p.Plan[dict[str, np.ndarray]]:
        call, named = _calls.build("score", "label_quality", entry, values, True, classes)

        def join(parts: list[p.Part], c: p.Call) -> dict[str, np.ndarray]:
            found = p.join_outputs(parts)
            return found | ({"classes": np.asarray(named)} if named is not None else {})

        return self._plan(call, server, values["dtype"], join)


def _answer(response: httpx2.Response) -> p.Answer:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return p.Answer(response.status_code, headers, response.content)


def _loss_values(
    reduction: str, grad: bool, dtype: str, device: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    values = kwargs | {"reduction": reduction, "grad": grad, "dtype": dtype}
    return values | ({"device": device} if device is not None else {})


def _options(dtype: str, device: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs | {"dtype": dtype} | ({"device": device} if device is not None else {})


class Client(_Base):
    """A blocking client; use it as a context manager, or close() it."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        transport: httpx2.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, api_key, timeout, **options)
        self._http = httpx2.Client(
            base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def loss(
        self,
        name: str,
        *,
        reduction: str = "mean",
        grad: bool = False,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        classes: Sequence[str] | None = None,
        **tensors_and_parameters: Any,
    ) -> p.LossResult:
        """The loss `name` of the tensors (by their PyTorch names) with its parameters.

        Tensors may be numpy arrays, torch tensors, pandas or pyarrow columns, or nested lists
        (see the README). Labels given as strings or categories become indices into `classes`
        (else the labels' sorted unique values), which the result carries."""
        values = _loss_values(reduction, grad, dtype, device, tensors_and_parameters)
        entry = self._entry("losses", name)
        return self.run(self._loss_plan(self.server(), entry, name, values, classes), progress)

    def activation(
        self,
        name: str,
        *,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        **tensors_and_parameters: Any,
    ) -> np.ndarray:
        """The activation `name` of `input` (softmax and log_softmax take `dim`)."""
        values = _options(dtype, device, tensors_and_parameters)
        entry = self._entry("activations", name)
        return self.run(self._activation_plan(self.server(), entry, name, values), progress)

    def label_quality(
        self,
        *,
        input: Any = None,
        target: Any = None,
        scores: tuple[str, ...] | list[str] = DEFAULT_SCORES,
        multi_label: bool = False,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        classes: Sequence[str] | None = None,
        **misspelt: Any,
    ) -> dict[str, np.ndarray]:
        """Each sample's scores by name (lower: more likely mislabelled), `predicted`, and
        `classes` where the labels were names (strings or categories). A misspelt keyword is
        refused with the nearest name (InvalidCall), as for a loss."""
        values = _options(dtype, device, {"input": input, "target": target} | misspelt)
        values |= {"scores": list(scores), "multi_label": multi_label}
        entry = self._entry("", "label_quality")
        return self.run(self._scores_plan(self.server(), entry, values, classes), progress)

    def grade(
        self,
        metrics: g.Metrics,
        *,
        task: str,
        input_kind: str,
        input: Any = None,
        target: Any = None,
        sample_weight: Any = None,
        chunks: Iterable[Any] | None = None,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        threshold: float | None = None,
        classes: Sequence[str] | None = None,
        dtype: str = "float32",
        device: str | None = None,
    ) -> g.Grades:
        """Every metric over all the data, in one pass (see docs/grades.md).

        metrics: names, or {key: {"metric": name, **its parameters}}. The data: input and
        target (and sample_weight) as arrays or files (a path, or FILE:COL), or `chunks`, an
        iterable of {input, target[, sample_weight]} dicts or tuples. It is cut to fit the
        server's limits, graded concurrently, and the parts' states merged by the server."""
        options: dict[str, Any] = {"task": task, "input_kind": input_kind, "dtype": dtype}
        options |= {"num_classes": num_classes, "ignore_index": ignore_index}
        options["threshold"] = threshold
        parameters = g.parameters(metrics, options | {"device": device})
        server, entry = self.server(), self._entry("grades", "grades")
        given = g.chunks(input, target, sample_weight, chunks)
        steps = g.grading(server, entry, parameters, given, classes)
        with self._grade_bar() as bar:
            answer: Any = None
            while True:
                try:
                    step = steps.send(answer)
                except StopIteration as done:
                    graded: g.Grades = done.value
                    return graded
                answer = self.run(step, bar=bar) if isinstance(step, p.Plan) else self._send(step)

    def losses(self) -> list[dict[str, Any]]:
        """The loss catalogue's entries."""
        found: list[dict[str, Any]] = self.run(self._get_plan("/v1/losses"))["losses"]
        return found

    def server(self) -> p.Server:
        """The server's limits, and whether it takes binary tensors (asked once)."""
        if self._server is None:
            self._server = self._limits(self.run(self._server_plan(), progress=False))
        return self._server

    def _entry(self, collection: str, name: str) -> dict[str, Any]:
        if (collection, name) not in self._entries:
            path = f"/v1/{collection}/{name}" if collection else f"/v1/{name}"
            self._entries[collection, name] = self.run(self._get_plan(path))
        return self._entries[collection, name]

    def run(self, plan: p.Plan[T], progress: bool | None = None, bar: Any = None) -> T:
        """Sends the plan's requests, max_concurrency at a time, and finishes it (counting
        them on `bar` where one is given)."""
        own = bar is None
        if own:
            bar = tqdm(
                total=len(plan.requests), unit="request", disable=not self._show(plan, progress)
            )
        else:
            bar.total = (bar.total or 0) + len(plan.requests)
        with (
            bar if own else nullcontext(),
            ThreadPoolExecutor(max(1, min(plan.concurrency, len(plan.requests)))) as pool,
        ):

            def send(request: p.Request) -> list[p.Answer]:
                answer = self._send(request)
                smaller = self._smaller(request, answer)
                if smaller:  # refused for its work: cut by the ratio the server named
                    bar.total = (bar.total or 0) + len(smaller) - 1
                    return [a for r in smaller for a in send(r)]
                bar.update()
                return [answer]

            answers = [a for group in pool.map(send, plan.requests) for a in group]
        return plan.finish(answers)

    def _send(self, request: p.Request) -> p.Answer:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    request.method, request.path, content=request.content, headers=request.headers
                )
            except httpx2.TransportError as error:
                raise self._unreachable(request, error) from None
            answer = _answer(response)
            if not self._retryable(answer, attempt):
                return answer
            time.sleep(self._delay(attempt, answer))
            attempt += 1


class AsyncClient(_Base):
    """The same methods as Client, as coroutines; use it as an async context manager."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, api_key, timeout, **options)
        self._http = httpx2.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def loss(
        self,
        name: str,
        *,
        reduction: str = "mean",
        grad: bool = False,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        classes: Sequence[str] | None = None,
        **tensors_and_parameters: Any,
    ) -> p.LossResult:
        """As Client.loss."""
        values = _loss_values(reduction, grad, dtype, device, tensors_and_parameters)
        entry = await self._entry("losses", name)
        plan = self._loss_plan(await self.server(), entry, name, values, classes)
        return await self.run(plan, progress)

    async def activation(
        self,
        name: str,
        *,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        **tensors_and_parameters: Any,
    ) -> np.ndarray:
        """As Client.activation."""
        values = _options(dtype, device, tensors_and_parameters)
        entry = await self._entry("activations", name)
        plan = self._activation_plan(await self.server(), entry, name, values)
        return await self.run(plan, progress)

    async def label_quality(
        self,
        *,
        input: Any = None,
        target: Any = None,
        scores: tuple[str, ...] | list[str] = DEFAULT_SCORES,
        multi_label: bool = False,
        dtype: str = "float32",
        device: str | None = None,
        progress: bool | None = None,
        classes: Sequence[str] | None = None,
        **misspelt: Any,
    ) -> dict[str, np.ndarray]:
        """As Client.label_quality."""
        values = _options(dtype, device, {"input": input, "target": target} | misspelt)
        values |= {"scores": list(scores), "multi_label": multi_label}
        entry = await self._entry("", "label_quality")
        plan = self._scores_plan(await self.server(), entry, values, classes)
        return await self.run(plan, progress)

    async def grade(
        self,
        metrics: g.Metrics,
        *,
        task: str,
        input_kind: str,
        input: Any = None,
        target: Any = None,
        sample_weight: Any = None,
        chunks: Iterable[Any] | None = None,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        threshold: float | None = None,
        classes: Sequence[str] | None = None,
        dtype: str = "float32",
        device: str | None = None,
    ) -> g.Grades:
        """As Client.grade."""
        options: dict[str, Any] = {"task": task, "input_kind": input_kind, "dtype": dtype}
        options |= {"num_classes": num_classes, "ignore_index": ignore_index}
        options["threshold"] = threshold
        parameters = g.parameters(metrics, options | {"device": device})
        server, entry = await self.server(), await self._entry("grades", "grades")
        given = g.chunks(input, target, sample_weight, chunks)
        steps = g.grading(server, entry, parameters, given, classes)
        with self._grade_bar() as bar:
            answer: Any = None
            while True:
                try:
                    step = steps.send(answer)
                except StopIteration as done:
                    graded: g.Grades = done.value
                    return graded
                if isinstance(step, p.Plan):
                    answer = await self.run(step, bar=bar)
                else:
                    answer = await self._send(step)

    async def losses(self) -> list[dict[str, Any]]:
        """As Client.losses."""
        found: list[dict[str, Any]] = (await self.run(self._get_plan("/v1/losses")))["losses"]
        return found

    async def server(self) -> p.Server:
        """As Client.server."""
        if self._server is None:
            self._server = self._limits(await self.run(self._server_plan(), progress=False))
        return self._server

    async def _entry(self, collection: str, name: str) -> dict[str, Any]:
        if (collection, name) not in self._entries:
            path = f"/v1/{collection}/{name}" if collection else f"/v1/{name}"
            self._entries[collection, name] = await self.run(self._get_plan(path))
        return self._entries[collection, name]

    async def run(self, plan: p.Plan[T], progress: bool | None = None, bar: Any = None) -> T:
        """As Client.run."""
        gate = asyncio.Semaphore(max(1, plan.concurrency))
        own = bar is None
        if own:
            bar = tqdm(
                total=len(plan.requests), unit="request", disable=not self._show(plan, progress)
            )
        else:
            bar.total = (bar.total or 0) + len(plan.requests)
        with bar if own else nullcontext():

            async def send(request: p.Request) -> list[p.Answer]:
                async with gate:
                    answer = await self._send(request)
                smaller = self._smaller(request, answer)
                if smaller:  # refused for its work: cut by the ratio the server named
                    bar.total = (bar.total or 0) + len(smaller) - 1
                    return [a for group in await asyncio.gather(*map(send, smaller)) for a in group]
                bar.update()
                return [answer]

            groups = await asyncio.gather(*(send(r) for r in plan.requests))
        return plan.finish([a for group in groups for a in group])

    async def _send(self, request: p.Request) -> p.Answer:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method, request.path, content=request.content, headers=request.headers
                )
            except httpx2.TransportError as error:
                raise self._unreachable(request, error) from None
            answer = _answer(response)
            if not self._retryable(answer, attempt):
                return answer
            await asyncio.sleep(self._delay(attempt, answer))
            attempt += 1
