"""`transferlm demo`: the main job — the transfer-learning story end to end on the built-in data.

    transferlm demo                     # about 12 minutes on 2 quiet CPU cores
    transferlm demo --quick             # about 2 minutes (what CI runs)
    transferlm demo --budget-minutes 20 --model bert-mini --labels-per-class 25

1. learn a WordPiece vocabulary with our learner on unlabeled text (PTB + BBC News articles);
2. pretrain a small BERT with MLM + NSP on that text for a fixed time budget, showing the held-out
   MLM accuracy rising;
3. fine-tune on BBC News with a few labels per topic three ways — the same architecture from
   random initialisation, the model just pretrained, and the real pretrained MiniLM — plus
   TF-IDF + logistic regression; then on the same label samples ULMFiT (an LSTM LM pretrained here,
   fine-tuned on the BBC train split's text) against the same LSTM from random init, GloVe 6B 50d
   features (frozen / fine-tuned) and SmolLM2-135M few-shot prompting, calibrated;
4. print one table (accuracy, training time) and write OUT/report/ (results.json, report.md, PNG
   curves, confusion matrices, the contextual "bank" picture) and OUT/models/ (Hugging Face folders).

Ctrl-C, then the same command again: finished stages are skipped and the interrupted one resumes
from its checkpoints. The stages live in transferlm/demo/; this file only reads the options.
"""

from __future__ import annotations

import argparse

from ..models.config import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: vocabulary, pretraining, few-label fine-tuning three ways, report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo); re-running resumes it")
    p.add_argument("--quick", action="store_true",
                   help="a 2-minute run for CI: smaller vocabulary, 15 s of pretraining, 5 labels per topic, "
                        "60 test articles")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="pretraining wall time in minutes (default: 4; --quick: 0.25)")
    p.add_argument("--lstm-minutes", type=float, default=None,
                   help="wall time of the LSTM LM pretrained for the ULMFiT row, in minutes (default: 1.5; the target-text fine-tuning after it: 0.5; --quick: 0.1)")
    p.add_argument("--labels-per-class", type=int, default=None,
                   help="labelled BBC articles per topic for fine-tuning (default: 10; --quick: 5)")
    p.add_argument("--model", default=None, choices=[n for n in PRESETS if n.startswith("bert")],
                   help="the small BERT pretrained here (default: bert-tiny, 2 layers x 128)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="WordPiece vocabulary size, at most (default: 8000; --quick: 2000)")
    p.add_argument("--samples", type=int, default=None,
                   help="label samples each method is fine-tuned on; the table shows the mean (default: 3; --quick: 2)")
    p.add_argument("--precision", default=None, choices=["auto", "bf16", "fp32"],
                   help="pretraining precision (default: auto = bf16 autocast where the CPU/GPU has native "
                        "bf16 matmuls, else fp32)")
    p.add_argument("--seed", type=int, default=None, help="the split, label sample and initialisations (default: 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice, one per core; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ..demo.stages import DemoConfig, quick_config

    given = {"budget_minutes": args.budget_minutes, "labels_per_class": args.labels_per_class,
             "model": args.model, "vocab_size": args.vocab_size, "seed": args.seed, "samples": args.samples,
             "pretrain_precision": args.precision, "lstm_budget_minutes": args.lstm_minutes}
    given = {k: v for k, v in given.items() if v is not None}
    if given.get("budget_minutes", 1.0) <= 0:
        raise ValueError(f"--budget-minutes must be > 0, not {args.budget_minutes}")
    if given.get("lstm_budget_minutes", 1.0) <= 0:
        raise ValueError(f"--lstm-minutes must be > 0, not {args.lstm_minutes}")
    if given.get("labels_per_class", 1) < 1:
        raise ValueError(f"--labels-per-class must be >= 1, not {args.labels_per_class}")
    if given.get("samples", 1) < 1:
        raise ValueError(f"--samples must be >= 1, not {args.samples}")
    if given.get("vocab_size", 1000) < 200:
        raise ValueError(f"--vocab-size must be at least 200 (the alphabet and special tokens), not {args.vocab_size}")
    extra = {"out": args.out, "progress": args.progress, **given}
    return quick_config(**extra) if args.quick else DemoConfig(**extra)


def run(args: argparse.Namespace) -> int:
    from ..demo.stages import run_demo

    cfg = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, not {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    try:
        run_demo(cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {cfg.out}", flush=True)
        raise
    return 0
