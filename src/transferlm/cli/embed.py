"""`transferlm embed`: one vector per input line (.npy), or per-token vectors as JSON lines.

Reads one text per line from --input FILE or stdin (every line counts, empty ones too, so row i of
the output is line i+1 of the input) and runs `embeddings.contextual` over them: texts are
length-bucketed for speed and the rows come back in input order.

Does not: window texts longer than --max-length (they are truncated), or read pairs of texts.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from pathlib import Path
from typing import IO

import numpy as np

from ..embeddings import contextual
from ..fileio import atomic_write_bytes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="sentence vectors (.npy, one row per line) or per-token vectors (JSON lines) from an encoder",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model", default="minilm",
                   help="an asset name (minilm) or a Hugging Face encoder folder (default: minilm)")
    p.add_argument("--input", type=Path, default=None, help="text file, one text per line (default: stdin)")
    p.add_argument("--out", required=True,
                   help="output file: .npy of shape (lines, C); with --per-token a .jsonl file, or - for stdout")
    p.add_argument("--pooling", choices=["mean", "cls"], default="mean",
                   help="sentence vector: mean of the real tokens (Sentence-BERT) or [CLS] (default: mean)")
    p.add_argument("--layers", default="last",
                   help="hidden layers to mix: last, last4, all, embeddings or indices like -4,-3,-2,-1 "
                        "(0 is the embedding output; default: last)")
    p.add_argument("--combine", choices=["mean", "concat"], default="mean",
                   help="how several layers are joined (default: mean, keeps the width)")
    p.add_argument("--normalize", action="store_true",
                   help="L2-normalise each sentence vector (the sentence-transformers convention)")
    p.add_argument("--per-token", action="store_true",
                   help="write one JSON line per token: line, index, token, offsets, special, vector")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--max-length", type=int, default=None,
                   help="truncate texts to this many tokens (default: the model's position limit)")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    # argparse takes "-4,-3,-2,-1" for an option (only "-4" looks like a negative number to it);
    # widen its negative-number pattern for this command so `--layers -4,-3,-2,-1` works as typed.
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+(,\s*-?\d+)*$|^-\d*\.\d+$")
    p.set_defaults(func=run)


def read_lines(stream: IO[bytes], name: str) -> list[str]:
    """Every line of a UTF-8 byte stream (a trailing newline does not make an extra empty line)."""
    lines = []
    for lineno, raw in enumerate(stream.read().split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{name}:{lineno}: expected UTF-8 text, got byte {raw[e.start]:#04x} at column {e.start + 1}") from None
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def run(args: argparse.Namespace) -> int:
    from . import UserError

    if args.input is None:
        texts = read_lines(sys.stdin.buffer, "<stdin>")
        source = "<stdin>"
    else:
        if not args.input.is_file():
            raise FileNotFoundError(f"{args.input}: no such input file")
        with open(args.input, "rb") as f:
            texts = read_lines(f, str(args.input))
        source = str(args.input)
    if not texts:
        raise UserError(f"{source}: no lines to embed (expected one text per line)")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    contextual.parse_layers(args.layers)  # bad options fail before the model loads
    if not args.per_token:
        if args.out == "-":
            raise UserError("--out - (stdout) is for --per-token JSON lines; give a .npy file name")
        if Path(args.out).suffix != ".npy":
            raise UserError(f"--out {args.out}: sentence vectors are written as .npy; name the file *.npy")

    model, tokenizer = contextual.load(args.model)
    common = dict(layers=args.layers, batch_size=args.batch_size, combine=args.combine,
                  max_length=args.max_length, progress=args.progress)
    if args.per_token:
        rows = contextual.embed_tokens(texts, model, tokenizer, **common)
        # Held in memory and written at once (atomically): --per-token is for inspecting modest inputs.
        data = "".join(
            json.dumps({"line": lineno, "index": t, "token": tok, "offsets": list(off), "special": sp,
                        "vector": tv.vectors[t].tolist()}, ensure_ascii=False) + "\n"
            for lineno, tv in enumerate(rows, 1)
            for t, (tok, off, sp) in enumerate(zip(tv.tokens, tv.offsets, tv.special))
        ).encode("utf-8")
        if args.out == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            atomic_write_bytes(args.out, data)
            print(f"wrote per-token vectors of {len(rows)} lines ({sum(len(r.tokens) for r in rows)} tokens) "
                  f"to {args.out}", file=sys.stderr)
        return 0

    out = Path(args.out)
    vecs = contextual.embed(texts, model, tokenizer, pooling=args.pooling, normalize=args.normalize, **common)
    buf = io.BytesIO()
    np.save(buf, vecs, allow_pickle=False)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {vecs.shape[0]} x {vecs.shape[1]} vectors to {out}", file=sys.stderr)
    return 0
