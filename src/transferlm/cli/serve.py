"""`transferlm serve`: an HTTP API and a web page over one or more models, with dynamic batching.

    transferlm serve --model minilm --port 8000
    transferlm serve --model topics=runs/clf --model ner=runs/tagger --model smol=smollm2 --port 8000

Each --model is NAME=SOURCE (or SOURCE, named after the asset or folder): an asset (minilm,
smollm2), a folder written by `transferlm finetune` (a classifier -- encoder, GPT-1 decoder or
ULMFiT LSTM -- or a tagger), a Hugging Face encoder or decoder folder, or a .gguf file. Endpoints
follow what the models can do (/tokenize, /embed, /classify, /tag, /generate, /generate_stream,
/prompt), with /health, /metrics, the API
documentation at /docs and a page to try the models at /. Binds 127.0.0.1 unless --host says
otherwise. Ctrl-C stops it.

Does not: authenticate, encrypt (put a proxy in front for either), or run several processes.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve models over HTTP (JSON API, server-sent events, a web page)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]SOURCE",
                   help="a model to serve (repeatable): an asset, a fine-tuned folder, an HF folder or .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--max-batch-tokens", type=int, default=8192,
                   help="padded tokens per forward pass when batching (default: 8192)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long a lone input waits for others to batch with (default: 2 ms)")
    p.add_argument("--pass-cost-tokens", type=float, default=None,
                   help="a forward pass's fixed cost in token-equivalents, for cutting a batch of mixed lengths "
                        "into passes (default: 30, measured for MiniLM on 2 CPU cores; 0: fill each pass to the budget)")
    p.add_argument("--no-batching", action="store_true",
                   help="one request per forward pass, and each generation decoded alone (a baseline)")
    p.add_argument("--max-decode-rows", type=int, default=32,
                   help="sequences a decoder generates together (continuous batching; default: 32)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default: 1 MB)")
    p.add_argument("--max-inputs", type=int, default=64, help="most texts in one request (default: 64)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="most tokens one /generate may ask for (default: 256)")
    p.add_argument("--max-input-tokens", type=int, default=None,
                   help="cap on an input's tokens below each model's own limit (default: the model's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the forward passes (default: torch's)")
    p.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"],
                   help="uvicorn's HTTP parser (default: auto = httptools, the C parser, when installed)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default: info)")
    p.set_defaults(func=run)


def build(args: argparse.Namespace):
    """The app from parsed arguments (the models are loaded here)."""
    from ..serving import BatchOptions, ServeOptions, create_app, load_model, parse_model_spec
    from . import UserError

    for flag, v in [("--max-batch-tokens", args.max_batch_tokens), ("--max-body-bytes", args.max_body_bytes),
                    ("--max-inputs", args.max_inputs), ("--max-new-tokens", args.max_new_tokens),
                    ("--max-decode-rows", args.max_decode_rows)]:
        if v < 1:
            raise UserError(f"{flag} must be at least 1, not {v}")
    if args.max_wait_ms < 0:
        raise UserError(f"--max-wait-ms must be >= 0, not {args.max_wait_ms}")
    if args.max_input_tokens is not None and args.max_input_tokens < 2:
        raise UserError(f"--max-input-tokens must be at least 2, not {args.max_input_tokens}")
    specs = [parse_model_spec(s) for s in args.model]
    names = [n for n, _ in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--model: the name {dup[0]!r} is given twice (use NAME=SOURCE to tell them apart)")
    models = []
    for name, source in specs:
        print(f"loading {name} from {source}", file=sys.stderr)
        models.append(load_model(name, source))
    batching = BatchOptions(not args.no_batching, args.max_batch_tokens, args.max_wait_ms,
                            max_decode_rows=args.max_decode_rows)
    if args.pass_cost_tokens is not None:
        if args.pass_cost_tokens < 0:
            raise UserError(f"--pass-cost-tokens must be >= 0, not {args.pass_cost_tokens}")
        batching.pass_cost_tokens = args.pass_cost_tokens
    options = ServeOptions(batching,
                           args.max_body_bytes, args.max_inputs, args.max_new_tokens, args.max_input_tokens)
    return create_app(models, options)


def run(args: argparse.Namespace) -> int:
    import socket

    import torch
    import uvicorn

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    app = build(args)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as e:
        raise ValueError(f"--host {args.host} --port {args.port}: cannot bind ({e.strerror})") from None
    host, port = sock.getsockname()[:2]
    print(f"serving {', '.join(app.state.server.models)} on http://{host}:{port}/ (API docs at /docs)",
          file=sys.stderr, flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, http=args.http,
                                            timeout_graceful_shutdown=5)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: the normal way out
        pass
    print("stopped", file=sys.stderr)
    return 0
