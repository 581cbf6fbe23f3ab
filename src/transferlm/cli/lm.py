"""`transferlm lm`: train and evaluate word-level LSTM language models (models/lstm.py).

    transferlm lm train --train ptb:train --valid ptb:valid --out runs/ptb-small            # Zaremba small, tied
    transferlm lm train --preset awd-small --train ptb:train --valid ptb:valid --out runs/ptb-awd
    transferlm lm train --train ptb:train bbc.txt --tokenizer words --max-vocab 30000 --out runs/general
    transferlm lm train --init runs/general/model --train bbc.txt --preset ulmfit-finetune --out runs/target
    transferlm lm evaluate --model runs/ptb-small/model --text ptb:test

A corpus is `ptb:train|valid|test` (the PTB asset) or a UTF-8 text file; each non-empty line ends
with <eos>. The vocabulary is built from the training corpora (`--max-vocab`, `--min-count`), or
taken from `--init` (a saved LSTM folder to continue from: ULMFiT's target-domain LM fine-tuning).
OUT/model is the LSTM folder (config.json, model.safetensors, vocab.txt); OUT/metrics.jsonl the
train loss and the valid perplexity each epoch; running the same command again resumes from
OUT/checkpoints, and `--stop-at STEP` ends a run early (train long runs in resumable chunks).
The last stdout line is one JSON object.

Presets (flags given on the command line win):
  zaremba-small    2 x 200 LSTM, tied, BPTT 20, batch 20, 13 epochs, SGD lr 1 halved from epoch 5, clip 5
                   on the loss summed over BPTT steps = lr 20, clip 0.25 on our mean per-token loss
  awd-small        zaremba-small + AWD-LSTM regularisers scaled to a 200-wide model: dropout 0.2, dropouth
                   0.15, dropouti 0.25, dropoute 0.05, wdrop 0.2, AR 2, TAR 1 (PTB, 7 epochs: test ppl 101.3
                   against 109.7 without them; Merity et al.'s strengths x ~0.75 gave 115.6: docs/benchmarks.md)
  ulmfit-finetune  Adam(0.7, 0.99) lr 4e-3, slanted triangular, discriminative rates / 2.6, 1 epoch
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

PRESETS: dict[str, dict] = {
    # Zaremba et al.'s lr 1 and clip 5 act on the loss summed over the 20 BPTT steps (the TF code:
    # reduce_sum(loss) / batch_size); our loss is the mean per token, so the same updates take
    # lr 1 x 20 and clip 5 / 20 (AWD-LSTM's lr 30 / clip 0.25 are on the same mean-loss scale)
    "zaremba-small": {"lr": 20.0, "max_grad_norm": 0.25},
    "awd-small": {"lr": 20.0, "max_grad_norm": 0.25, "dropout": 0.2, "dropouth": 0.15, "dropouti": 0.25,
                  "dropoute": 0.05, "wdrop": 0.2, "alpha": 2.0, "beta": 1.0},
    "ulmfit-finetune": {"optimizer": "adam", "lr": 4e-3, "schedule": "slanted_triangular", "layer_decay": 2.6,
                        "epochs": 1.0, "max_grad_norm": 1.0},
}
MODEL_FLAGS = ("emb_dim", "hidden_size", "num_layers", "dropout", "dropouth", "dropouti", "dropoute", "wdrop",
               "alpha", "beta", "tokenizer")
TRAIN_FLAGS = ("epochs", "batch_size", "bptt", "optimizer", "lr", "schedule", "decay_start", "decay_factor",
               "layer_decay", "max_grad_norm", "seed", "stop_at", "save_every", "precision")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm", help="train / evaluate word-level LSTM language models (PTB, ULMFiT)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="lm_command", required=True)
    t = s.add_parser("train", help="train an LSTM LM (from scratch or from --init)")
    t.add_argument("--train", nargs="+", required=True, help="training corpora: ptb:train or text files")
    t.add_argument("--valid", default=None, help="valid corpus: perplexity every epoch")
    t.add_argument("--out", required=True, help="output folder (model/, metrics.jsonl, checkpoints/)")
    t.add_argument("--preset", choices=sorted(PRESETS), default="zaremba-small")
    t.add_argument("--init", default=None, help="an LSTM LM folder to continue from (keeps its vocabulary)")
    t.add_argument("--max-vocab", type=int, default=None, help="vocabulary size incl. <unk>, <eos>")
    t.add_argument("--min-count", type=int, default=1)
    for name in MODEL_FLAGS:
        typ = str if name == "tokenizer" else (int if name in ("emb_dim", "hidden_size", "num_layers") else float)
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=None)
    t.add_argument("--no-tie", action="store_true", help="untied input / output embeddings")
    for name in TRAIN_FLAGS:
        typ = (str if name in ("optimizer", "schedule", "precision") else
               int if name in ("batch_size", "bptt", "decay_start", "seed", "stop_at", "save_every") else float)
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=None)
    t.add_argument("--no-progress", dest="progress", action="store_false")
    t.set_defaults(func=run_train)
    e = s.add_parser("evaluate", help="perplexity of a saved LSTM LM on a corpus")
    e.add_argument("--model", required=True, help="an LSTM LM folder")
    e.add_argument("--text", required=True, help="ptb:test or a text file")
    e.add_argument("--batch-size", type=int, default=1, help="parallel streams (1: the exact sequence)")
    e.add_argument("--bptt", type=int, default=35)
    e.set_defaults(func=run_evaluate)


def read_corpus(spec: str) -> str:
    if spec.startswith("ptb:"):
        from ..data.assets import ptb_text

        return ptb_text(spec[4:])
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such file (give ptb:train|valid|test or a text file)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ValueError(f"{spec}:{line}: not UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"{spec}: the corpus is empty")
    return text


def run_train(args: argparse.Namespace) -> int:
    import torch

    from ..models.lstm import LSTMConfig, LSTMLanguageModel, WordVocab
    from ..pipelines.ulmfit import LMTrainConfig, train_lm

    preset = PRESETS[args.preset]
    given = lambda name: getattr(args, name) if getattr(args, name) is not None else preset.get(name)  # noqa: E731
    texts = [read_corpus(s) for s in args.train]
    if args.init:
        lm, vocab = LSTMLanguageModel.from_pretrained(args.init)
        changes = {n: given(n) for n in MODEL_FLAGS if given(n) is not None and n not in
                   ("emb_dim", "hidden_size", "num_layers", "tokenizer")}
        lm.config = dataclasses.replace(lm.config, **changes)  # regularisers may change, sizes not
    else:
        tok = given("tokenizer") or "whitespace"
        vocab = WordVocab.build((line for t in texts for line in t.splitlines()), tok, args.max_vocab, args.min_count)
        mc = {n: given(n) for n in MODEL_FLAGS if given(n) is not None}
        torch.manual_seed(given("seed") or 0)
        lm = LSTMLanguageModel(LSTMConfig(vocab_size=len(vocab), tie_weights=not args.no_tie, **mc))
    tok = lm.config.tokenizer
    train_ids = torch.cat([vocab.encode_corpus(t, tok) for t in texts])
    valid_ids = vocab.encode_corpus(read_corpus(args.valid), tok) if args.valid else None
    tc = {n: given(n) for n in TRAIN_FLAGS if given(n) is not None}
    cfg = LMTrainConfig(out=args.out, progress=args.progress, **tc)
    print(f"vocabulary {len(vocab)}, {train_ids.numel():,} training tokens, "
          f"{sum(p.numel() for p in lm.parameters()):,} parameters", file=sys.stderr)
    result = train_lm(lm, vocab, train_ids, valid_ids, cfg)
    result = {"model": str(Path(args.out) / "model") if result["step"] >= result["total_steps"] else None,
              **{k: v for k, v in result.items()}}
    print(json.dumps(result))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..models.lstm import LSTMLanguageModel, perplexity

    lm, vocab = LSTMLanguageModel.from_pretrained(args.model)
    ids = vocab.encode_corpus(read_corpus(args.text), lm.config.tokenizer)
    ppl = perplexity(lm, ids, args.batch_size, args.bptt)
    print(json.dumps({"model": args.model, "text": args.text, "tokens": int(ids.numel()), "perplexity": ppl}))
    return 0
