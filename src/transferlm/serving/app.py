"""The HTTP API of `transferlm serve`: a FastAPI app over the served models.

    app = create_app([load_model("minilm", "minilm")], ServeOptions())
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (only those some loaded model can do are registered; each also answers under
`/models/{name}/...`, and a body may name its `model`; without one, the first model loaded that
can do the task answers):

| endpoint | body | answer |
|---|---|---|
| POST /tokenize | inputs | ids, tokens, character offsets, special mask, each token's text |
| POST /embed | inputs, pooling (mean / cls), normalize, truncate | one vector per input |
| POST /classify | inputs, pairs (pair models), truncate | per input, every label with its probability, best first |
| POST /tag | inputs | per input, entities with character offsets (end exclusive) |
| POST /generate | inputs, parameters, chat | the completion |
| POST /generate_stream | same | server-sent events: one per token, then a last one with the text |
| POST /prompt | inputs, labels (or label -> verbalizer), demonstrations, calibrate | per input, the label and every label's probability (few-shot prompting) |
| GET /health, /models, /metrics | | status; the models and what they do; Prometheus text |
| GET /, /docs, /openapi.json | | the web page; Swagger UI (served locally); the schema |

Errors are JSON `{"error": message, "error_type": ...}`: a body over `max_body_bytes` or more
than `max_inputs` inputs 413; invalid JSON, a missing or mistyped field, an input over the
model's token limit (unless truncate; taggers window long texts, so only the
server's --max-input-tokens applies to them) 422; a /prompt with an unknown demonstration label, an
empty verbalizer or a prompt longer than the decoder's context (saying by how much) 422; an unknown model, endpoint, or a task the model
cannot do 404; an exception inside the model 500 for that request only (batching.py reruns the
pass without it).

Why FastAPI (on Starlette, served by uvicorn): request bodies are declared once as typed pydantic
models, which gives the 422 validation, the OpenAPI schema and its /docs page without a second
description of the API; it is the stack of the current serving tools (vLLM, TEI's Python
clients, LitServe), streams server-sent events through Starlette's StreamingResponse, and is
plain asyncio underneath, which the batcher needs. fastapi-offline ships Swagger UI's files, so
/docs works with no network.

What this file does not do: authentication, TLS, CORS, several worker processes (one process
holds the models and batches across all its connections). /prompt reuses prompting/ (one
PromptClassifier per distinct labels + demonstrations + options, kept in a small LRU) and is not
batched across requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, Union

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import BatchOptions, Batcher, GenerationBatcher
from .metrics import ServerMetrics
from .models import (DecoderModel, EmbedInput, EncoderModel, GenerateOptions, PipelineModel, PromptSpec,
                     ServedModel, TextDecoder)

log = logging.getLogger("transferlm.serve")
STATIC = resources.files("transferlm.serving") / "static"


@dataclass
class ServeOptions:
    batching: BatchOptions = field(default_factory=BatchOptions)
    max_body_bytes: int = 1_000_000  # a request body over this is refused (413) before it is parsed
    max_inputs: int = 64  # texts in one request (TEI's max-client-batch-size is 32)
    max_new_tokens: int = 256  # the most a /generate request may ask for
    max_input_tokens: int | None = None  # a cap below each model's own limit (None: the model's)


class APIError(Exception):
    def __init__(self, status: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


ERROR_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 422: "validation",
               500: "internal"}


def _error(status: int, message: str, error_type: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type or ERROR_TYPES.get(status, "error")},
                        status_code=status)


# ---- request bodies ------------------------------------------------------------------------------
Inputs = Union[str, list[str]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str | None = Field(None, description="which served model (default: the first that can do this)")


class TokenizeRequest(_Body):
    inputs: Inputs = Field(..., description="a text or a list of texts")


class EmbedRequest(_Body):
    inputs: Inputs = Field(..., description="a text or a list of texts")
    pooling: Literal["mean", "cls"] = Field("mean", description="mean of the real tokens (Sentence-BERT) or [CLS]")
    normalize: bool = Field(False, description="unit-length vectors (the sentence-transformers convention)")
    truncate: bool = Field(False, description="cut inputs over the model's token limit instead of a 422")


class ClassifyRequest(_Body):
    inputs: Inputs = Field(..., description="a text or a list of texts")
    pairs: Inputs | None = Field(None, description="the second text of each input, for a sentence-pair classifier")
    truncate: bool = Field(False, description="cut inputs over the model's token limit instead of a 422")


class TagRequest(_Body):
    inputs: Inputs = Field(..., description="a text or a list of texts")


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = Field(20, ge=0, description="tokens to generate at most")
    do_sample: bool = Field(False, description="sample instead of greedy decoding (also on with temperature / top_k / top_p)")
    temperature: float | None = Field(None, ge=0, description="sampling temperature; 0 = greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, description="makes sampling repeatable")


class GenerateRequest(_Body):
    inputs: str = Field(..., description="the prompt")
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    chat: bool = Field(False, description="wrap the prompt as a ChatML user turn (SmolLM2-Instruct)")


class Demonstration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., description="an example text")
    label: str = Field(..., description="its label (one of `labels`)")


class PromptRequest(_Body):
    inputs: Inputs = Field(..., description="a text or a list of texts to classify")
    labels: Union[list[str], dict[str, str]] = Field(
        ..., description="the labels, or an object label -> verbalizer (the words scored for it; default: the label)")
    demonstrations: list[Demonstration] = Field(
        default_factory=list, description="labelled examples put before each text, in this order (k-shot prompting)")
    calibrate: Literal["none", "contextual", "pmi"] = Field(
        "none", description="contextual calibration (Zhao et al. 2021) or domain-conditional PMI (Holtzman et al. 2021)")
    length_normalize: bool = Field(False, description="average the label tokens' log-probs instead of summing them")
    instruction: str | None = Field(None, description="the prompt's first line; {labels} becomes the verbalizers "
                                                      "(default: 'Classify each article as one of: {labels}.')")
    input_prefix: str = Field("Article: ", description="text before each input")
    answer_cue: str = Field("Topic:", description="text after each input, before the label")
    max_text_tokens: int | None = Field(None, ge=1, description="clip every text to its first N tokens")
    overflow: Literal["error", "clip"] = Field(
        "error", description="a prompt over the context: error (422) or drop the test text's tail")
    chat: bool = Field(False, description="render the prompt with the model's own chat template")


class ErrorResponse(BaseModel):
    error: str = Field(..., description="what went wrong, naming the field or the limit")
    error_type: str = Field(..., description="not_found | payload_too_large | validation | internal")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown model, or a task the model cannot do"},
    413: {"model": ErrorResponse, "description": "body over the size limit, or too many inputs"},
    422: {"model": ErrorResponse, "description": "invalid JSON, a missing or mistyped field, an input too long"},
    500: {"model": ErrorResponse, "description": "the model raised on this request (others are unaffected)"},
}


# ---- the app ---------------------------------------------------------------------------------------
class Server:
    """The models, their batchers, the compute thread and the metrics of one app."""

    def __init__(self, models: list[ServedModel], options: ServeOptions) -> None:
        if not models:
            raise ValueError("serve needs at least one model")
        names = [m.name for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must differ; given twice: {', '.join(dup)}")
        self.models = {m.name: m for m in models}
        self.options = options
        self.metrics = ServerMetrics()
        # One compute thread for every model: torch's own threads use the cores inside each pass.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transferlm-compute")
        self.batchers: dict[tuple[str, str], Batcher] = {}
        for m in models:
            for task in ("embed", "classify", "tag"):
                if task in m.tasks:
                    self.batchers[(m.name, task)] = Batcher(
                        m.name, task, (lambda xs, m=m, task=task: m.run_batch(task, xs)), options.batching,
                        self.executor, self.metrics)
        # continuous batching of generation, one per decoder (batching off: each stream steps alone)
        self.generators = {m.name: GenerationBatcher(m, options.batching, self.executor, self.metrics)
                           for m in models if isinstance(m, DecoderModel) and options.batching.enabled}
        self.started = time.time()

    def tasks(self) -> list[str]:
        return [t for t in ("tokenize", "embed", "classify", "tag", "generate", "prompt")
                if any(t in m.tasks for m in self.models.values())]

    def pick(self, task: str, name: str | None) -> ServedModel:
        if name is None:
            for m in self.models.values():
                if task in m.tasks:
                    return m
            raise APIError(404, f"no served model can {task}", "not_found")
        m = self.models.get(name)
        if m is None:
            served = "; ".join(f"{k} ({v.kind}: {', '.join(v.tasks)})" for k, v in self.models.items())
            raise APIError(404, f"unknown model {name!r}; served: {served}", "not_found")
        if task not in m.tasks:
            raise APIError(404, f"model {name!r} is a {m.kind} and cannot {task}; it serves {', '.join(m.tasks)}",
                           "not_found")
        return m

    def texts(self, inputs: Inputs) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            raise APIError(422, "inputs: an empty list (give a text or a list of texts)", "validation")
        if len(texts) > self.options.max_inputs:
            raise APIError(413, f"inputs: {len(texts)} texts in one request; at most {self.options.max_inputs}",
                           "payload_too_large")
        return texts

    def limit(self, m: ServedModel) -> int:
        cap = self.options.max_input_tokens
        return min(m.max_tokens, cap) if cap else m.max_tokens

    def check_lengths(self, m: ServedModel, lengths: list[int], truncate: bool, limit: int | None = None) -> None:
        limit = limit or self.limit(m)
        for i, n in enumerate(lengths):
            if n > limit and not truncate:
                raise APIError(422, f"inputs[{i}]: {n} tokens; model {m.name!r} takes at most {limit} "
                               f"(shorten it, or send truncate=true where the endpoint has it)", "validation")

    async def batched(self, m: ServedModel, task: str, payloads: list[Any], lengths: list[int]) -> list[Any]:
        try:
            return await self.batchers[(m.name, task)].submit(payloads, lengths)
        except Exception as e:  # noqa: BLE001
            raise APIError(500, f"model {m.name!r} failed on this request: {type(e).__name__}: {e}", "internal") from e

    async def compute(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


UNION_TAGS = {"str": "a text", "list[str]": "a list of texts", "dict[str,str]": "an object"}
UNION_EXPECTED = {"labels": "a list of labels or an object label -> verbalizer"}


def _validation_message(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        path = [str(x) for x in err.get("loc", ()) if x != "body"]
        tag = next((i for i, x in enumerate(path) if x in UNION_TAGS), None)
        if tag is not None:  # `inputs` is str | list[str]: one message, not one per branch
            field = ".".join(path[:tag])
            msg = f"{field}: expected {UNION_EXPECTED.get(field, 'a text or a list of texts')}"
            if msg not in parts:
                parts.append(msg)
            continue
        loc = ".".join(path)
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx", {})
            parts.append(f"invalid JSON at character {err['loc'][-1] if err.get('loc') else '?'}: "
                         f"{ctx.get('error', err.get('msg'))}")
        elif err.get("type") == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            parts.append(f"{loc or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


def _endpoint_label(path: str, known: set[str]) -> str:
    if path.startswith("/models/") and path.count("/") == 3:
        path = "/" + path.rsplit("/", 1)[1]  # /models/{name}/embed counts as /embed
    return path if path in known else "other"



class Gate:
    """Plain ASGI middleware: refuses bodies over `max_body_bytes` (413, read no further) and
    records every request's status and latency (to the last byte of a stream) in the metrics."""

    def __init__(self, app, metrics: ServerMetrics, max_body_bytes: int, known: set[str]) -> None:
        self.app, self.metrics, self.limit, self.known = app, metrics, max_body_bytes, known

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        label = _endpoint_label(scope["path"], self.known)
        state = {"status": 500, "started": False}

        async def send_counted(message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.requests.inc(endpoint=label, status=str(state["status"]))
                self.metrics.latency.observe(time.perf_counter() - start, endpoint=label)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                return await _error(413, f"request body of {int(length)} bytes; at most {self.limit}")(
                    scope, receive, send_counted)
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                return await self.app(scope, receive, send_counted)
            # Every body here is JSON: read it as such whatever Content-Type says (curl -d sends
            # application/x-www-form-urlencoded), so a bad body gets the JSON error, not a puzzle.
            scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
                     + [(b"content-type", b"application/json")]}
            chunks, size, more = [], 0, True  # read the body here, counting, before anyone parses it
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.limit:
                    return await _error(413, f"request body over {self.limit} bytes")(scope, receive, send_counted)
            body, replayed = b"".join(chunks), [False]

            async def replay():
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_counted)
        except Exception as e:  # noqa: BLE001 - Starlette re-raises after sending its 500
            log.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            if not state["started"]:
                await _error(500, f"{type(e).__name__}: {e}")(scope, receive, send_counted)


def create_app(models: list[ServedModel], options: ServeOptions | None = None) -> FastAPI:
    """The ASGI app serving `models`."""
    options = options or ServeOptions()
    srv = Server(models, options)
    app = FastAPIOffline(title="transferlm serve",
                         description="Embeddings, classification, tagging and generation with transferlm models.",
                         version="0.1.0", redoc_url=None)
    app.state.server = srv
    known = {"/", "/health", "/models", "/metrics", "/docs", "/openapi.json"} | {f"/{t}" for t in srv.tasks()}
    if "generate" in srv.tasks():
        known.add("/generate_stream")

    # The gate goes outermost (outside Starlette's own error layer), so it times streamed
    # responses to their last byte and counts every answer, 413s and crashes included.
    inner = app.build_middleware_stack
    app.build_middleware_stack = lambda: Gate(inner(), srv.metrics, options.max_body_bytes, known)

    # -- errors as JSON
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return _error(exc.status, exc.message, exc.error_type)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        msg = exc.detail
        if exc.status_code == 404:
            msg = (f"no endpoint {request.method} {request.url.path}; this server has "
                   + ", ".join(sorted(p for p in known if p != "other")))
        return _error(exc.status_code, str(msg))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        return _error(500, f"{type(exc).__name__}: {exc}")

    # -- pages and status
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/health", summary="liveness and the served models")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - srv.started, 3),
                "models": [m.info() for m in srv.models.values()]}

    @app.get("/models", summary="the served models and the tasks each can do")
    async def list_models() -> dict[str, Any]:
        return {"models": [m.info() for m in srv.models.values()]}

    @app.get("/metrics", summary="Prometheus metrics (text format 0.0.4)", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(srv.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- tasks: each registered at /TASK and /models/{name}/TASK
    def route(task: str, handler, body_cls: type[BaseModel], summary: str) -> None:
        app.add_api_route(f"/{task}", handler, methods=["POST"], summary=summary, responses=ERROR_RESPONSES)

        async def named(name: str, request: Request):  # the body's own `model`, if any, must agree
            try:
                raw = json.loads(await request.body() or b"{}")
            except json.JSONDecodeError as e:
                raise APIError(422, f"invalid JSON at character {e.pos}: {e.msg}", "validation") from None
            if not isinstance(raw, dict):
                raise APIError(422, "the body must be a JSON object", "validation")
            if raw.get("model") not in (None, name):
                raise APIError(422, f"the URL names model {name!r}, the body {raw['model']!r}", "validation")
            try:
                body = body_cls.model_validate({**raw, "model": name})
            except Exception as e:  # pydantic.ValidationError
                raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
            return await handler(body)

        app.add_api_route(f"/models/{{name}}/{task}", named, methods=["POST"], include_in_schema=False)

    tasks = srv.tasks()

    if "tokenize" in tasks:
        async def tokenize(body: TokenizeRequest) -> dict[str, Any]:
            m = srv.pick("tokenize", body.model)
            return {"model": m.name, "results": [m.tokenize(t) for t in srv.texts(body.inputs)]}
        route("tokenize", tokenize, TokenizeRequest, "subword tokens with ids and character offsets")

    if "embed" in tasks:
        async def embed(body: EmbedRequest) -> Response:
            m = srv.pick("embed", body.model)
            assert isinstance(m, EncoderModel)
            texts = srv.texts(body.inputs)
            encs, lengths = m.prepare(texts, body.truncate)
            srv.check_lengths(m, lengths, body.truncate)
            payloads = [EmbedInput(e, body.pooling, body.normalize) for e in encs]
            vecs = np.stack(await srv.batched(m, "embed", payloads, [len(e.ids) for e in encs]))  # (N, C)
            # one numpy -> JSON encode (orjson), not a walk over N x C Python floats
            return Response(orjson.dumps({"model": m.name, "dim": int(vecs.shape[1]), "embeddings": vecs},
                                         option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
        route("embed", embed, EmbedRequest, "sentence vectors (mean or [CLS] pooling)")

    if "classify" in tasks:
        async def classify(body: ClassifyRequest) -> dict[str, Any]:
            m = srv.pick("classify", body.model)
            assert isinstance(m, PipelineModel)
            texts = srv.texts(body.inputs)
            pairs: list[str | None] = [None] * len(texts)
            if m.pairs:
                if body.pairs is None:
                    raise APIError(422, f"model {m.name!r} classifies sentence pairs: give `pairs`, one per input",
                                   "validation")
                pairs = [body.pairs] if isinstance(body.pairs, str) else list(body.pairs)
                if len(pairs) != len(texts):
                    raise APIError(422, f"pairs: {len(pairs)} for {len(texts)} inputs", "validation")
            elif body.pairs is not None:
                raise APIError(422, f"pairs: model {m.name!r} classifies single texts", "validation")
            lengths = [m.count_tokens(t, p) for t, p in zip(texts, pairs)]
            srv.check_lengths(m, lengths, body.truncate)
            lengths = [min(n, m.max_tokens) for n in lengths]
            results = await srv.batched(m, "classify", list(zip(texts, pairs)), lengths)
            return {"model": m.name, "results": results}
        route("classify", classify, ClassifyRequest, "class probabilities, best first")

    if "tag" in tasks:
        async def tag(body: TagRequest) -> dict[str, Any]:
            m = srv.pick("tag", body.model)
            texts = srv.texts(body.inputs)
            lengths = [m.count_tokens(t) for t in texts]
            if options.max_input_tokens:  # taggers cut long texts into overlapping windows themselves
                srv.check_lengths(m, lengths, False, options.max_input_tokens)
            return {"model": m.name, "results": await srv.batched(m, "tag", texts, lengths)}
        route("tag", tag, TagRequest, "entities (or tagged words) with character offsets")

    if "generate" in tasks:
        def prepare(body: GenerateRequest) -> tuple[DecoderModel, list[int], GenerateOptions]:
            m = srv.pick("generate", body.model)
            assert isinstance(m, DecoderModel)
            p = body.parameters
            if p.max_new_tokens > options.max_new_tokens:
                raise APIError(422, f"parameters.max_new_tokens: {p.max_new_tokens}; this server allows at most "
                               f"{options.max_new_tokens}", "validation")
            if body.chat and not m.chat:
                raise APIError(422, f"chat: the tokenizer of model {m.name!r} has no <|im_start|> / <|im_end|>",
                               "validation")
            ids = m.prompt_ids(body.inputs, body.chat)
            if not ids:
                raise APIError(422, "inputs: the prompt encodes to no tokens", "validation")
            limit = srv.limit(m)
            if len(ids) + p.max_new_tokens > limit:
                raise APIError(422, f"inputs: {len(ids)} prompt tokens + max_new_tokens {p.max_new_tokens} > "
                               f"{limit}, the most model {m.name!r} takes", "validation")
            sample = p.do_sample or (p.temperature is not None and p.temperature > 0) or p.top_k is not None \
                or p.top_p is not None
            if p.temperature == 0:
                sample = False
            opts = GenerateOptions(p.max_new_tokens, sample, p.temperature or 1.0, p.top_k, p.top_p, p.seed,
                                   m.stops(body.chat))
            return m, ids, opts

        async def run_stream(m: DecoderModel, ids: list[int], opts: GenerateOptions):
            """(token id, text piece) per step: from the decoder's continuous batch, or (batching off)
            each step of this prompt alone as its own job on the compute thread."""
            text = TextDecoder(m.tokenizer)
            if m.name in srv.generators:
                async for tok in srv.generators[m.name].stream(ids, opts):
                    srv.metrics.generated.inc(model=m.name)
                    yield tok, text.add(tok)
                return
            steps = m.steps(ids, opts)
            while True:
                tok = await srv.compute(next, steps, None)
                if tok is None:
                    return
                srv.metrics.generated.inc(model=m.name)
                yield tok, text.add(tok)

        async def generate(body: GenerateRequest) -> dict[str, Any]:
            m, ids, opts = prepare(body)
            out = []
            try:
                async for tok, _ in run_stream(m, ids, opts):
                    out.append(tok)
            except APIError:
                raise
            except Exception as e:  # noqa: BLE001
                raise APIError(500, f"model {m.name!r} failed on this request: {type(e).__name__}: {e}",
                               "internal") from e
            reason = "length" if len(out) >= opts.max_new_tokens else "stop"
            return {"model": m.name, "generated_text": m.tokenizer.decode(out), "tokens": len(out), "token_ids": out,
                    "prompt_tokens": len(ids), "finish_reason": reason}
        route("generate", generate, GenerateRequest, "a completion of the prompt")

        async def generate_stream(body: GenerateRequest) -> StreamingResponse:
            m, ids, opts = prepare(body)  # errors here are plain 4xx answers, before any event

            async def events():
                out: list[int] = []
                try:
                    async for tok, piece in run_stream(m, ids, opts):
                        out.append(tok)
                        yield "data: " + json.dumps({"token": {"id": tok, "text": piece}, "generated_text": None}) + "\n\n"
                except Exception as e:  # noqa: BLE001 - the status line is sent: say it as an event
                    yield "event: error\ndata: " + json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n\n"
                    return
                reason = "length" if len(out) >= opts.max_new_tokens else "stop"
                final = {"token": None, "generated_text": m.tokenizer.decode(out), "tokens": len(out),
                         "prompt_tokens": len(ids), "finish_reason": reason}
                yield "data: " + json.dumps(final) + "\n\n"

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        route("generate_stream", generate_stream, GenerateRequest, "the completion as server-sent events, one per token")

    if "prompt" in tasks:
        async def prompt(body: PromptRequest) -> dict[str, Any]:
            from ..prompting import PromptTooLong

            m = srv.pick("prompt", body.model)
            assert isinstance(m, DecoderModel)
            texts = srv.texts(body.inputs)
            if isinstance(body.labels, dict):
                labels, verbalizers = list(body.labels), [(k, v) for k, v in body.labels.items() if v != k]
            else:
                labels, verbalizers = list(body.labels), []
            if not labels:
                raise APIError(422, "labels: none given (a list of labels or an object label -> verbalizer)",
                               "validation")
            dup = sorted({lab for lab in labels if labels.count(lab) > 1})
            if dup:
                raise APIError(422, f"labels: given twice: {dup}", "validation")
            if len(body.demonstrations) > options.max_inputs:
                raise APIError(413, f"demonstrations: {len(body.demonstrations)}; at most {options.max_inputs}",
                               "payload_too_large")
            spec = PromptSpec(tuple(labels), tuple(verbalizers), tuple((d.text, d.label) for d in body.demonstrations),
                              body.calibrate, body.length_normalize, body.instruction, body.input_prefix,
                              body.answer_cue, body.max_text_tokens, body.overflow, body.chat)
            try:
                records = await srv.compute(m.prompt_classify, spec, texts)
            except PromptTooLong as e:
                raise APIError(422, f"prompt too long: {e}", "validation") from None
            except ValueError as e:  # unknown label, empty verbalizer, no chat template: the request's fault
                raise APIError(422, str(e), "validation") from None
            except Exception as e:  # noqa: BLE001
                raise APIError(500, f"model {m.name!r} failed on this request: {type(e).__name__}: {e}",
                               "internal") from e
            srv.metrics.inputs.inc(len(texts), model=m.name, task="prompt")
            results = [{"label": r["label"],
                        "probabilities": sorted(({"label": k, "score": float(v)} for k, v in r["probs"].items()),
                                                key=lambda d: -d["score"]),
                        "log_scores": r["scores"], "clipped_tokens": r["clipped_tokens"]} for r in records]
            return {"model": m.name, "calibrate": body.calibrate, "demonstrations": len(body.demonstrations),
                    "results": results}
        route("prompt", prompt, PromptRequest,
              "few-shot classification by prompting a decoder: each label's probability as the continuation")

    return app
