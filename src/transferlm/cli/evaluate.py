"""`transferlm evaluate`: score a fine-tuned model folder on a data file.

    transferlm evaluate --model runs/bbc/model --data test.csv

The model folder is one written by `transferlm finetune` (OUT or OUT/model) or any
`Pipeline.save_pretrained`; its task decides the reader (format sniffed from the file, or
--format) and the metrics: classify / pair: accuracy, macro / micro F1, Matthews correlation;
tag: entity-level precision / recall / F1 (seqeval's default mode) and token accuracy for BIO /
BIOES models, word accuracy, macro / weighted F1 and per-tag P/R/F1 for plain tag sets (part of
speech; the scheme saved with the model is checked on the data); spans:
span-level precision / recall / F1; qa: SQuAD exact match and F1 (with HasAns / NoAns for v2.0).
A label the model does not know is an error naming the file and line.
The LAST stdout line is one JSON object of metrics (earlier lines, if any, are for people).

Does not: train, or write predictions (`transferlm predict`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.formats import FORMATS
from . import UserError


def model_folder(path: str | Path) -> Path:
    """OUT (a finetune output folder) or OUT/model -> the folder holding the pipeline."""
    from ..pipelines.base import PIPELINE_FILE

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model folder")
    if not (path / PIPELINE_FILE).is_file() and (path / "model" / PIPELINE_FILE).is_file():
        return path / "model"
    return path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a fine-tuned model on a data file (last line: JSON)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="fine-tuned model folder (finetune's OUT or OUT/model)")
    p.add_argument("--data", required=True, help="data file with gold labels")
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="input format (default: from the extension and content)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed records (counted, reported)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipelines import load
    from .finetune import evaluate_examples, read_task_data

    pipe = load(model_folder(args.model))
    data = read_task_data(pipe.task, args.data, args.format, labels=pipe.labels or None,
                          skip_bad=args.skip_bad, scheme=getattr(pipe, "scheme", None))
    if not data:
        raise UserError(f"{args.data}: no examples to evaluate")
    metrics = evaluate_examples(pipe, pipe.task, data)
    print(f"{pipe.task} model {args.model} on {args.data}: {len(data)} examples")
    print(json.dumps({"task": pipe.task, **metrics}))
    return 0
