"""`transferlm predict`: JSON lines in on stdin, JSON lines out on stdout, one per input line.

    echo '{"text": "Shares rose 5% after the results."}' | transferlm predict --model runs/bbc

What each task reads and writes (input keys not listed are ignored; "id" is copied through):
  classify   {"text"}                    -> {"label", "score"}
  pair       {"text", "text_b"}          -> {"label", "score"}  (text_a / sentence1 / sentence2 too)
  tag        {"text"}                    -> {"entities": [{"label", "text", "start", "end", "score"}]}
             {"tokens": [...]}           -> {"tags", "entities"} (start / end: token indices)
   plain tags (part of speech):
             {"text"}                    -> {"words": [{"tag", "text", "start", "end", "score"}]}
             {"tokens": [...]}           -> {"tags", "scores"} (one per token; no entities)
  spans      {"text"} or {"tokens"}      -> {"entities": [...]} (nested and overlapping)
  qa         {"question", "context"}     -> {"answer", "start", "end", "score"} ("" / -1: no answer)
Character offsets are into the input text (end exclusive). A line that is not a JSON object with
the keys the task needs is an error naming `<stdin>:LINE`; blank lines are skipped.

Does not: read files other than stdin (`transferlm evaluate` scores files), or stream: all lines
are read, then predicted in length-sorted batches.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict with a fine-tuned model: JSON lines on stdin -> stdout",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="fine-tuned model folder (finetune's OUT or OUT/model)")
    p.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")
    p.set_defaults(func=run)


def _first(obj: dict, keys: tuple[str, ...]) -> Any:
    return next((obj[k] for k in keys if k in obj), None)


def read_requests(stream, task: str, name: str = "<stdin>") -> list[tuple[int, dict]]:
    out = []
    for lineno, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise UserError(f"{name}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{name}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        need = None
        if task in ("classify", "pair"):
            text = _first(obj, ("text", "text_a", "sentence1", "sentence"))
            if not isinstance(text, str) or not text.strip():
                need = '{"text": "<non-empty string>"}'
            elif task == "pair" and not isinstance(_first(obj, ("text_b", "sentence2")), str):
                need = '{"text": str, "text_b": str} (a sentence pair)'
        elif task in ("tag", "spans"):
            toks = obj.get("tokens")
            if toks is not None:
                if not isinstance(toks, list) or not toks or not all(isinstance(t, str) and t for t in toks):
                    need = '"tokens": a non-empty list of non-empty strings'
            elif not isinstance(obj.get("text"), str):
                need = '{"text": str} or {"tokens": [str, ...]}'
        elif not isinstance(obj.get("question"), str) or not isinstance(obj.get("context"), str) \
                or not obj["context"].strip():
            need = '{"question": str, "context": "<non-empty string>"}'
        if need:
            raise UserError(f"{name}:{lineno}: expected {need}, got keys {sorted(obj)}")
        out.append((lineno, obj))
    return out


def predict(pipe, requests: list[dict], batch_size: int = 32) -> list[dict]:
    task = pipe.task
    if task in ("classify", "pair"):
        texts = [_first(r, ("text", "text_a", "sentence1", "sentence")) for r in requests]
        pairs = [_first(r, ("text_b", "sentence2")) for r in requests] if task == "pair" else None
        return pipe.predict(texts, pairs=pairs, batch_size=batch_size) if texts else []
    if task in ("tag", "spans"):
        res: list[dict] = [{} for _ in requests]
        tok_idx = [i for i, r in enumerate(requests) if r.get("tokens") is not None]
        txt_idx = [i for i, r in enumerate(requests) if r.get("tokens") is None]
        if tok_idx:
            got = pipe.predict_tokens([requests[i]["tokens"] for i in tok_idx], batch_size=batch_size)
            plain = task == "tag" and pipe.scheme == "plain"
            for i, g in zip(tok_idx, got):
                res[i] = ({"tags": g["tags"], "scores": g["scores"]} if plain
                          else {"tags": g["tags"], "entities": g["entities"]} if task == "tag"
                          else {"entities": g})
        if txt_idx:
            got = pipe.predict([requests[i]["text"] for i in txt_idx], batch_size=batch_size)
            key = "words" if task == "tag" and pipe.scheme == "plain" else "entities"
            for i, g in zip(txt_idx, got):
                res[i] = {key: g}
        return res
    return pipe.predict([{"question": r["question"], "context": r["context"]} for r in requests],
                        batch_size=batch_size)


def run(args: argparse.Namespace) -> int:
    from ..pipelines import load
    from .evaluate import model_folder

    pipe = load(model_folder(args.model))
    reqs = read_requests(sys.stdin, pipe.task)
    outs = predict(pipe, [r for _, r in reqs], args.batch_size)
    for (_, req), out in zip(reqs, outs):
        if "id" in req:
            out = {"id": req["id"], **out}
        sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0
