"""`transferlm tokenizer train|encode`: learn a tokenizer from text files, encode lines of stdin.

``train --algo wordpiece|bpe --vocab-size N FILES... --out DIR`` learns a WordPiece vocabulary
(wordpiece.py; ``--lowercase/--no-lowercase``) or a byte-level BPE (bpe.py) and writes a Hugging
Face folder (tokenizer.json plus vocab.txt, or vocab.json + merges.txt). ``encode --tokenizer DIR``
reads UTF-8 lines on stdin and writes one JSON object per line: ids, tokens, offsets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train a tokenizer on text files, or encode lines of stdin")
    s = p.add_subparsers(dest="tokenizer_cmd", required=True)

    t = s.add_parser("train", help="learn a WordPiece or byte-level BPE vocabulary from UTF-8 text files")
    t.add_argument("--algo", choices=["wordpiece", "bpe"], required=True, help="the segmentation algorithm")
    t.add_argument("--vocab-size", type=int, required=True, help="size of the vocabulary, special tokens included")
    t.add_argument("files", nargs="+", type=Path, help="UTF-8 text files (one document or sentence per line)")
    t.add_argument("--out", type=Path, required=True, help="folder to write the tokenizer files to")
    t.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                   help="lowercase and strip accents before learning (WordPiece; default: on)")
    t.add_argument("--min-frequency", type=int, default=2,
                   help="merge only pairs seen at least this often (default 2, as tokenizers' trainers)")
    t.add_argument("--score", choices=("likelihood", "frequency"), default="likelihood",
                   help="WordPiece only: merge the pair with the best freq(ab)/(freq(a)freq(b)) (the WordPiece "
                        "paper's likelihood score, default) or the most frequent pair (as tokenizers' "
                        "WordPieceTrainer; keeps common words whole at small vocabulary sizes)")
    t.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    t.set_defaults(func=_train)

    e = s.add_parser("encode", help="encode the lines of stdin; one JSON object (ids, tokens, offsets) per line")
    e.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer folder (or tokenizer.json / vocab.txt)")
    e.add_argument("--no-special-tokens", action="store_true", help="do not add [CLS]/[SEP] (or the model's template)")
    e.add_argument("--max-length", type=int, default=None, help="truncate to this many tokens (specials included)")
    e.set_defaults(func=_encode)


def _train(args: argparse.Namespace) -> int:
    if args.vocab_size <= 0:
        raise UserError(f"--vocab-size must be positive, got {args.vocab_size}")
    for f in args.files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such file")
    progress = not args.no_progress
    if args.algo == "wordpiece":
        from ..tokenization.wordpiece import WordPieceTokenizer

        tok = WordPieceTokenizer.train(args.files, args.vocab_size, lowercase=args.lowercase is not False,
                                       min_frequency=args.min_frequency, score=args.score, progress=progress)
    else:
        if args.score != "likelihood":
            raise UserError("--score applies to --algo wordpiece; byte-level BPE always merges the most frequent pair")
        if args.lowercase:
            raise UserError("--lowercase: byte-level BPE keeps the text as it is (use --algo wordpiece)")
        from ..tokenization.bpe import ByteLevelBPETokenizer

        tok = ByteLevelBPETokenizer.train(args.files, args.vocab_size, progress=progress,
                                          min_frequency=args.min_frequency)
    tok.save_pretrained(args.out)
    print(f"wrote a {args.algo} tokenizer with {tok.vocab_size} tokens to {args.out}", file=sys.stderr)
    return 0


def _encode(args: argparse.Namespace) -> int:
    from ..tokenization.io import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    out = sys.stdout
    for lineno, raw in enumerate(sys.stdin.buffer, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"<stdin>:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                            "expected UTF-8 text") from None
        enc = tok.encode(line.rstrip("\r\n"), add_special_tokens=not args.no_special_tokens,
                         max_length=args.max_length)
        out.write(json.dumps({"ids": enc.ids, "tokens": enc.tokens, "offsets": [list(o) for o in enc.offsets]},
                             ensure_ascii=False) + "\n")
    out.flush()
    return 0
