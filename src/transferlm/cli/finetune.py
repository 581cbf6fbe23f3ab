"""`transferlm finetune`: fine-tune an encoder for classification, pairs, tagging, spans or QA,
or a causal decoder (GPT-2, Llama, SmolLM2) for classify / pair.

    transferlm finetune --task classify --model minilm --train train.csv --dev dev.csv --out runs/bbc
    transferlm finetune --config finetune.yaml

Reads the training and dev files with data/formats.py (format from --format, or sniffed from the
extension and content: CSV / TSV (GLUE) / JSON lines for classify and pair, CoNLL or CoNLL-U for
tag, span JSON lines for spans, SQuAD JSON for qa), builds the label set from the training data (a dev
label outside it is an error naming the file and line), trains with the shared Trainer and
writes OUT/model (a Hugging Face-style folder: config.json with id2label, model.safetensors,
tokenizer files, transferlm_pipeline.json), OUT/metrics.jsonl (train loss every few steps, dev
metrics at every evaluation) and OUT/checkpoints (running the same command again resumes). The
last stdout line is one JSON object: the dev metrics of the saved model (with --dev: the best
evaluation's weights).

Defaults (checked on BBC News and WNUT-16 with all-MiniLM-L6-v2 by benchmarks/finetune.py):
  lr 1e-4 (MiniLM-size encoders need more than BERT-base's 2e-5..5e-5), batch 16, linear decay
  after 10% warmup, weight decay 0.01, gradient clipping at 1.0;
  a budget in updates that scales with the data: the task's epochs, but at least 200 updates
  (--min-steps; at most 100 passes): small sets need many more updates than a few epochs give
  (Mosbach et al. 2021; Zhang et al. 2021; LM-BFF trains 1,000 on 16 per class); with --dev,
  early stopping: the dev set is scored every epoch, or every budget/20 updates if epochs are
  shorter (--eval-every), training stops after 5 evaluations without a gain (--patience; 0 =
  off) and the model keeps the best evaluation's weights (metric: classify / pair accuracy, tag
  entity F1, spans span F1, qa SQuAD F1); BBC News, 10 labels per class + 10 for dev: see
  docs/benchmarks.md; without --dev, the budget alone;
  classify: 4 epochs, max length 256, [CLS] pooler head (loads in transformers);
  pair: 4 epochs, max length 128;  tag: 5 epochs, max length 128 (windows overlapping by 32),
  CRF head (Flair's default; WNUT-16 entity F1 0.580 vs 0.513 for the softmax head, whose own
  head lr is 1e-3), first-subword labels and decoding;  spans: 10 epochs,
  max width 8 words, head lr 1e-3;
  qa: 2 epochs, max length 384, stride 128 (BERT's SQuAD settings).
classify / pair on a decoder (--model smollm2, a .gguf file, or a GPT-2 / Llama folder: the
family is read from config.json): GPT-1 fine-tuning, <start> text [<delim> text_b] <extract>,
a bias-free head on the last token's state, plus --aux-lm-weight (lambda, default 0.5, GPT-1
sec. 3.2) times the causal LM loss on the same inputs; 0 switches it off. The saved folder loads
in transformers' GPT2ForSequenceClassification / LlamaForSequenceClassification.
tag takes any tag set: the scheme (bio / bioes: entities, entity F1; plain: part of speech or any
other tags, word accuracy) is detected from the training tags or given with --scheme.
The YAML --config mirrors the flags (`max_length: 128` is `--max-length 128`); flags given on
the command line win; an unknown key is an error naming it.

--model may also be an LSTM LM folder (`transferlm lm train`; config.json model_type "lstm_lm"):
classify then runs ULMFiT's recipe (pipelines/ulmfit.py; see `run_ulmfit`).

Does not: pretrain (`transferlm pretrain`), or search hyper-parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..data.formats import FORMATS, SCHEMES, first_plain_tag
from ..fileio import atomic_write_text
from . import UserError
from .config import load_dataclass_config

TASKS = ("classify", "pair", "tag", "spans", "qa")
# Task defaults: epochs, max_length (see the module docstring for the reasons).
TASK_DEFAULTS = {"classify": (4.0, 256), "pair": (4.0, 128), "tag": (5.0, 128), "spans": (10.0, 128),
                 "qa": (2.0, 384)}


@dataclass
class FinetuneConfig:
    task: str = ""  # classify | pair | tag | spans | qa
    model: str = "minilm"  # an asset name, a Hugging Face BERT / GPT-2 / Llama folder or a .gguf file
    train: str = ""  # training file
    dev: str = ""  # dev file: early stopping (scored every eval_every updates and at the end)
    out: str = ""  # output folder: model/, metrics.jsonl, checkpoints/
    format: str = ""  # csv | tsv | jsonl | conll | spans | squad; "" = sniffed from the file
    epochs: float | None = None  # None: the task default above
    lr: float = 1e-4  # MiniLM-size encoders (see above)
    batch_size: int = 16  # BERT sec. A.3 grid {16, 32}
    max_length: int | None = None  # None: the task default above
    min_steps: int = 200  # the budget's floor in updates for small sets (see above)
    max_steps: int | None = None  # an explicit budget in updates (overrides epochs / min_steps)
    patience: int = 5  # dev evaluations without a gain that stop training; 0 = no early stopping
    eval_every: int | None = None  # updates between dev evaluations; None: every epoch or budget / 20
    warmup_ratio: float = 0.1  # BERT: linear warmup over the first 10% of the steps
    weight_decay: float = 0.01  # BERT appendix A.2
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular
    freeze: str = ""  # "" | encoder | embeddings | N (train only the top N layers)
    layerwise_lr_decay: float | None = None  # e.g. 0.9: layer l gets lr * 0.9^(L+1-l)
    gradual_unfreezing: bool = False  # ULMFiT: unfreeze one more layer group per epoch
    head_lr: float | None = None  # peak lr of the task head; None: lr (tag softmax, spans: 1e-3)
    seed: int = 0
    pooling: str = ""  # classify / pair: cls | mean | concat | last; "" = cls (encoders), last (decoders)
    aux_lm_weight: float | None = None  # decoders: lambda of the auxiliary LM loss; None = 0.5 (GPT-1)
    head: str = "crf"  # tag: crf | softmax (WNUT-16 entity F1 0.580 vs 0.513)
    scheme: str = ""  # tag: bio | bioes | plain; "" = detected from the training tags
    label_all_subwords: bool = False  # tag: train every subword (BIO) instead of the first
    aggregation: str = "first"  # tag: first | mean | max subword scores per word at decoding
    stride: int | None = None  # window overlap in subwords; tag: max_length // 4, qa: max_length // 3
    max_width: int = 8  # spans: longest span in words
    span_pooling: str = "mean"  # spans: mean | attention
    calibrate: bool = False  # spans: tune the span threshold on dev; qa (v2): the no-answer threshold
    skip_bad: bool = False  # skip (and report) malformed records instead of stopping
    save_every: int = 0  # steps between checkpoints (0 = only at the end)
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        if self.task and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.scheme and self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune an encoder: classify, pair, tag, spans or qa",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file whose keys are these flags (flags given here win)")
    p.add_argument("--task", choices=TASKS, default=None, help="the task family")
    p.add_argument("--model", default=None,
                   help="asset name, Hugging Face BERT / GPT-2 / Llama folder or .gguf file (default: minilm)")
    p.add_argument("--train", default=None, help="training file")
    p.add_argument("--dev", default=None,
                   help="dev file: scored during training for early stopping (the best weights are kept)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="input format (default: from the extension and content)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the training data (default: per task)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 1e-4)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per update (default: 16)")
    p.add_argument("--max-length", type=int, default=None, help="subwords per input (default: per task)")
    p.add_argument("--min-steps", type=int, default=None,
                   help="at least this many updates, at most 100 passes (default: 200: small sets need "
                        "more updates than a few epochs give)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="the budget in updates, overriding --epochs and --min-steps (default: from the data)")
    p.add_argument("--patience", type=int, default=None,
                   help="with --dev: stop after this many evaluations without a gain and keep the best "
                        "weights; 0 = no early stopping (default: 5, a quarter of ~20 evaluations)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="updates between dev evaluations (default: every epoch, or budget/20 updates "
                        "when epochs are shorter)")
    p.add_argument("--warmup-ratio", type=float, default=None, help="warmup fraction of the steps (default: 0.1)")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default: 0.01)")
    p.add_argument("--schedule", choices=["linear", "cosine", "constant", "slanted_triangular"], default=None,
                   help="learning-rate schedule (default: linear)")
    p.add_argument("--freeze", default=None,
                   help="freeze 'encoder', 'embeddings', or give N to train only the top N layers")
    p.add_argument("--layerwise-lr-decay", type=float, default=None,
                   help="discriminative fine-tuning: layer l gets lr * d^(L+1-l) (e.g. 0.9)")
    p.add_argument("--gradual-unfreezing", action="store_true", default=None,
                   help="ULMFiT: train the head first, then one more layer per epoch")
    p.add_argument("--head-lr", type=float, default=None,
                   help="peak learning rate of the task head (default: --lr; 1e-3 for the tag softmax "
                        "head and the spans FFNN scorer, which learn too slowly at 1e-4)")
    p.add_argument("--seed", type=int, default=None, help="seed for the head, dropout and data order (default: 0)")
    p.add_argument("--pooling", choices=["cls", "mean", "concat", "last"], default=None,
                   help="classify/pair: [CLS] pooler (default for encoders; loads in transformers), mean, "
                        "ULMFiT concat, or the last token (decoders: the only choice)")
    p.add_argument("--aux-lm-weight", type=float, default=None,
                   help="decoders: lambda in L = L_task + lambda * L_LM (GPT-1 sec. 3.2; default 0.5; 0 = off)")
    p.add_argument("--head", choices=["softmax", "crf"], default=None, help="tag: CRF (default; 0.580 vs 0.513 entity F1 on WNUT-16) or softmax (loads in transformers' AutoModelForTokenClassification)")
    p.add_argument("--scheme", choices=SCHEMES, default=None,
                   help="tag: bio / bioes (entities: CRF constraints, entity F1) or plain (part of "
                        "speech, any tags: word accuracy); default: detected from the training tags")
    p.add_argument("--label-all-subwords", action="store_true", default=None,
                   help="tag: train on every subword (BIO) instead of the first of each word")
    p.add_argument("--aggregation", choices=["first", "mean", "max"], default=None,
                   help="tag: word scores from the first subword (default) or the mean / max of all")
    p.add_argument("--stride", type=int, default=None, help="window overlap in subwords (tag: max length / 4, qa: max length / 3)")
    p.add_argument("--max-width", type=int, default=None, help="spans: longest span in words (default: 8)")
    p.add_argument("--span-pooling", choices=["mean", "attention"], default=None,
                   help="spans: pool the span's words by mean (default) or attention")
    p.add_argument("--calibrate", action="store_true", default=None,
                   help="spans: tune the score threshold on dev; qa (v2.0): tune the no-answer threshold")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="skip malformed records (counted and reported) instead of stopping")
    p.add_argument("--save-every", type=int, default=None, help="steps between checkpoints (default: end only)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- data


def read_task_data(task: str, path: str | Path, fmt: str | None = None, labels: list[str] | None = None,
                   skip_bad: bool = False, scheme: str | None = None):
    """Examples of a task's file; with `labels`, a label outside them is an error (file:line).
    tag: `scheme` None detects it from the file's tags (the result's `.scheme`); a given scheme
    is checked on every tag (a non-BIO tag under "bio" is an error naming file:line)."""
    from ..data import formats

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = fmt or formats.sniff_format(path)
    expect = {"classify": ("csv", "tsv", "jsonl"), "pair": ("csv", "tsv", "jsonl"), "tag": ("conll", "conllu"),
              "spans": ("spans",), "qa": ("squad",)}[task]
    if fmt not in expect:
        raise UserError(f"{path}: the {task} task reads {' / '.join(expect)} files, but this looks like "
                        f"{fmt} (give --format to override)")
    label_set = formats.LabelSet(labels) if labels else None
    if task in ("classify", "pair"):
        return formats.read_classification(path, fmt=fmt, pairs=task == "pair", label_set=label_set,
                                           skip_bad=skip_bad)
    if task == "tag":
        reader = formats.read_conllu if fmt == "conllu" else formats.read_conll
        # a plain tag set is open (472 Brown tags, rare ones absent from a training sample): a tag
        # the model does not know is counted and reported, and scored as an error, not refused
        plain = scheme == "plain"
        ex = reader(path, scheme=scheme or None, label_set=None if plain else label_set,
                    skip_bad=skip_bad)
        if plain and label_set is not None:
            unseen = Counter(t for s in ex for t in s.tags if t not in label_set)
            if unseen:
                top = ", ".join(f"{t!r} x{n}" for t, n in unseen.most_common(5))
                print(f"{path}: {sum(unseen.values())} words carry {len(unseen)} tags the model "
                      f"does not know ({top}{', ...' if len(unseen) > 5 else ''}); they count as "
                      f"errors", file=sys.stderr)
        return ex
    if task == "spans":
        return formats.read_spans(path, label_set=label_set, skip_bad=skip_bad)
    return formats.read_squad(path, skip_bad=skip_bad)


def task_labels(task: str, examples) -> list[str]:
    from ..data.formats import LabelSet

    if task in ("classify", "pair"):
        return LabelSet.from_data(str(e.label) for e in examples).labels
    if task == "tag":
        return LabelSet.from_data(t for s in examples for t in s.tags).labels
    if task == "spans":
        return LabelSet.from_data(sp.label for e in examples for sp in e.spans).labels
    return []


def evaluate_examples(pipe, task: str, examples) -> dict[str, Any]:
    """The task's metrics of a pipeline on examples read by `read_task_data` (tag, plain tags:
    with "per_tag" P/R/F1)."""
    if task in ("classify", "pair"):
        pairs = [e.text_b for e in examples] if task == "pair" else None
        return pipe.evaluate([e.text for e in examples], [e.label for e in examples], pairs=pairs)
    if task == "tag":
        return pipe.evaluate([s.tokens for s in examples], [s.tags for s in examples],
                             per_tag=pipe.scheme == "plain")
    if task == "spans":
        return pipe.evaluate([e.tokens for e in examples], [e.spans for e in examples])
    return pipe.evaluate(examples)


# ---------------------------------------------------------------------------------------------- run


def build_pipeline(cfg: FinetuneConfig, labels: list[str], scheme: str | None = None):
    from ..pipelines import QuestionAnswerer, SpanTagger, Tagger, TextClassifier

    epochs, max_length = TASK_DEFAULTS[cfg.task]
    ml = cfg.max_length or max_length
    from ..pipelines.base import is_decoder_model

    decoder = is_decoder_model(cfg.model)
    if cfg.aux_lm_weight is not None and not (decoder and cfg.task in ("classify", "pair")):
        raise UserError(f"--aux-lm-weight is for classify / pair on a causal decoder; {cfg.model} is "
                        f"{'a decoder' if decoder else 'not a decoder'} and the task is {cfg.task}")
    if cfg.task in ("classify", "pair"):
        opts: dict[str, Any] = dict(max_length=ml, pair=cfg.task == "pair")
        if cfg.pooling:
            opts["pooling"] = cfg.pooling
        if cfg.aux_lm_weight is not None:
            opts["aux_lm_weight"] = cfg.aux_lm_weight
        return TextClassifier.new(cfg.model, labels=labels, seed=cfg.seed, **opts)
    if decoder:
        raise UserError(f"--task {cfg.task} fine-tunes encoders (BERT family); {cfg.model} is a causal "
                        f"decoder (decoders: --task classify or pair)")
    if cfg.task == "tag":
        return Tagger.new(cfg.model, labels=labels, seed=cfg.seed, head=cfg.head, max_length=ml,
                          label_all_subwords=cfg.label_all_subwords, aggregation=cfg.aggregation,
                          stride=cfg.stride, scheme=scheme or cfg.scheme or None)
    if cfg.task == "spans":
        return SpanTagger.new(cfg.model, labels=labels, seed=cfg.seed, max_width=cfg.max_width,
                              span_pooling=cfg.span_pooling, max_length=ml)
    return QuestionAnswerer.new(cfg.model, seed=cfg.seed, max_length=ml, stride=cfg.stride)


def run(args: argparse.Namespace) -> int:
    names = [f.name for f in dataclasses.fields(FinetuneConfig)]
    cfg = load_dataclass_config(FinetuneConfig, args.config, {n: getattr(args, n, None) for n in names})
    for need in ("task", "train", "out"):
        if not getattr(cfg, need):
            raise UserError(f"give --{need} (or `{need}:` in the config)")
    train = read_task_data(cfg.task, cfg.train, cfg.format or None, skip_bad=cfg.skip_bad,
                           scheme=cfg.scheme or None)
    if not train:
        raise UserError(f"{cfg.train}: no training examples")
    labels = task_labels(cfg.task, train)
    scheme = getattr(train, "scheme", None) if cfg.task == "tag" else None
    if scheme is not None and not cfg.scheme:
        why = ""
        if scheme == "plain":
            why = f": {first_plain_tag(labels)!r} is not O / B-X / I-X / E-X / S-X"
        print(f"tag scheme {scheme} (detected from the training tags{why}; --scheme overrides)",
              file=sys.stderr)
    dev = None
    if cfg.dev:
        dev = read_task_data(cfg.task, cfg.dev, cfg.format or None, labels=labels or None,
                             skip_bad=cfg.skip_bad, scheme=scheme)
    if _is_lstm(cfg.model):
        return run_ulmfit(cfg, train, dev, labels)
    pipe = build_pipeline(cfg, labels, scheme)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "finetune_config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    epochs = cfg.epochs if cfg.epochs is not None else TASK_DEFAULTS[cfg.task][0]
    fit = dict(epochs=epochs, lr=cfg.lr, batch_size=cfg.batch_size, min_steps=cfg.min_steps,
               max_steps=cfg.max_steps, patience=cfg.patience, eval_every=cfg.eval_every,
               warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
               freeze=cfg.freeze or None, layerwise_lr_decay=cfg.layerwise_lr_decay,
               gradual_unfreezing=cfg.gradual_unfreezing, seed=cfg.seed, out_dir=str(out),
               **({"head_lr": cfg.head_lr} if cfg.head_lr is not None else {}),
               progress=cfg.progress, save_every=cfg.save_every)
    if cfg.task in ("classify", "pair"):
        pairs = [e.text_b for e in train] if cfg.task == "pair" else None
        d = None
        if dev is not None:
            d = ([e.text for e in dev], [e.text_b for e in dev] if cfg.task == "pair" else None,
                 [e.label for e in dev])
        pipe.fit([e.text for e in train], [e.label for e in train], pairs=pairs, dev=d, **fit)
    elif cfg.task == "tag":
        d = ([s.tokens for s in dev], [s.tags for s in dev]) if dev is not None else None
        pipe.fit([s.tokens for s in train], [s.tags for s in train], dev=d, **fit)
    elif cfg.task == "spans":
        d = ([e.tokens for e in dev], [e.spans for e in dev]) if dev is not None else None
        pipe.fit([e.tokens for e in train], [e.spans for e in train], dev=d, **fit)
        if cfg.calibrate and dev is not None:
            print(f"span threshold calibrated on dev: {pipe.calibrate(*d):.4f}", file=sys.stderr)
    else:
        pipe.fit(list(train), dev=list(dev) if dev is not None else None, **fit)
        if cfg.calibrate and dev is not None and pipe.options.null_threshold is not None:
            print(f"no-answer threshold calibrated on dev: {pipe.calibrate(dev):.4f}", file=sys.stderr)
    pipe.save_pretrained(out / "model")
    print(f"saved {out / 'model'}", file=sys.stderr)
    result: dict[str, Any] = {"model": str(out / "model"), "train_examples": len(train)}
    if dev is not None:
        result.update({f"dev_{k}": v for k, v in evaluate_examples(pipe, cfg.task, dev).items()})
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------- LSTM (ULMFiT)


def _is_lstm(model: str) -> bool:
    from ..models.lstm import is_lstm_folder

    return Path(model).is_dir() and is_lstm_folder(model)


def run_ulmfit(cfg: FinetuneConfig, train, dev, labels: list[str]) -> int:
    """An LSTM LM folder (config.json model_type "lstm_lm"): ULMFiT's classifier fine-tuning
    (pipelines/ulmfit.py). Flags left at the encoder defaults take ULMFiT's: lr 0.01 (for lr 1e-4),
    batch 8 (for 16), 20 epochs (classify's 4), max length 400 words; the recipe (slanted
    triangular rates, discriminative rates / 2.6, gradual unfreezing, concat pooling) is fixed."""
    from ..pipelines.ulmfit import UlmfitClassifier

    if cfg.task != "classify":
        raise UserError(f"{cfg.model}: an LSTM language model fine-tunes for --task classify only")
    defaults = FinetuneConfig()
    lr = 0.01 if cfg.lr == defaults.lr else cfg.lr
    batch = 8 if cfg.batch_size == defaults.batch_size else cfg.batch_size
    epochs = cfg.epochs if cfg.epochs is not None else 20.0
    pipe = UlmfitClassifier.new(cfg.model, labels, seed=cfg.seed, max_length=cfg.max_length or 400)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "finetune_config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    d = ([e.text for e in dev], [e.label for e in dev]) if dev is not None else None
    pipe.fit([e.text for e in train], [e.label for e in train], dev=d, epochs=epochs, lr=lr, batch_size=batch,
             seed=cfg.seed, out_dir=str(out), progress=cfg.progress, save_every=cfg.save_every)
    pipe.save_pretrained(out / "model")
    print(f"saved {out / 'model'}", file=sys.stderr)
    result: dict[str, Any] = {"model": str(out / "model"), "train_examples": len(train)}
    if dev is not None:
        result.update({f"dev_{k}": v for k, v in pipe.evaluate(d[0], d[1]).items()})
    print(json.dumps(result))
    return 0
