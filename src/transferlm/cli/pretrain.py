"""`transferlm pretrain`: pretrain a BERT / RoBERTa / SpanBERT encoder or a GPT decoder from text.

    transferlm pretrain --config pretrain.yaml
    transferlm pretrain --preset bert --data corpus/ --tokenizer TOKENIZER_DIR --model bert-mini --steps 10000

The YAML file mirrors the flags (`steps: 10000` is `--steps 10000`); a flag given on the command
line wins over the file; a key that is not a flag is an error naming the key. Presets: bert (MLM +
NSP), roberta (MLM over packed sentences), spanbert (span masking + SBO), gpt (causal LM); what
each one builds is the OBJECTIVES table of objectives/builder.py.

Steps (the building is objectives/builder.py's, shared with the demo and the benchmarks): tokenize
the text once into memory-mapped shards (OUTPUT/corpus, reused when the sources and vocabulary
match), build the model from a models/ preset (vocabulary size from the tokenizer) or from a
Hugging Face folder (`--init-from`), train with the shared Trainer (checkpoints in
OUTPUT/checkpoints; running the same command again resumes), then write OUTPUT/model: a Hugging
Face folder (BertForPreTraining / BertForMaskedLM / GPT2LMHeadModel / LlamaForCausalLM) with the
tokenizer. `--dry-run` runs one optimizer step end to end.

Does not: train tokenizers (`transferlm tokenizer`), or evaluate downstream tasks (`finetune`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..fileio import atomic_write_text
from ..objectives.builder import OBJECTIVES, Pretraining, build_pretraining, check_length, objective, token_corpus
from .config import load_dataclass_config

PRESETS = tuple(OBJECTIVES)  # objectives/builder.py's table: what each preset trains on and how


@dataclass
class PretrainConfig:
    preset: str = "bert"  # bert | roberta | spanbert | gpt (objectives and data layout, see above)
    data: list[str] = field(default_factory=list)  # text / JSON lines files or folders
    eval_data: list[str] = field(default_factory=list)  # held-out text: MLM accuracy on it every eval_every steps
    eval_every: int = 100  # steps between held-out evaluations (logged as eval_*; needs eval_data)
    eval_examples: int = 256  # held-out examples scored each time (the same examples and masks every time)
    tokenizer: str = ""  # tokenizer folder or file (vocab.txt, tokenizer.json, vocab.json + merges.txt)
    model: str = ""  # a models/ preset name; default bert-mini (encoders) or gpt-mini (gpt)
    init_from: str = ""  # a Hugging Face folder to continue pretraining from instead of a preset
    output: str = "runs/pretrain"  # run folder: corpus/, checkpoints/, metrics.jsonl, model/
    max_length: int = 128  # tokens per example (BERT pretrained 90% of steps at 128, sec. A.2)
    sentence_split: str = "punct"  # punct (split lines at sentence ends) | line (one sentence per line)
    masking: str = ""  # token | whole_word | span; default from the preset
    mlm_probability: float = 0.15  # BERT sec. 3.1
    random_distribution: str = "unigram"  # unigram (corpus counts) | uniform, for the 10% random tokens
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # global batch (all ranks, all micro-batches)
    grad_accum: int = 1
    lr: float = 1e-4  # BERT appendix A.2 (use ~5e-4 for tiny models)
    warmup_steps: int = 100  # BERT used 1% of its steps
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular
    weight_decay: float = 0.01  # BERT appendix A.2
    max_grad_norm: float = 1.0  # BERT clips at 1.0
    precision: str = "auto"  # auto | bf16 | fp32
    seed: int = 0
    log_every: int = 10
    save_every: int = 500  # steps between checkpoints (0 = only at the end)
    keep_last: int = 2
    resume: bool = True  # continue from OUTPUT/checkpoints/latest when there is one
    progress_bar: bool = True
    dry_run: bool = False  # one step end to end (a smoke test of the whole pipeline)

    def __post_init__(self) -> None:
        objective(self.preset)  # ValueError "preset must be one of ..."
        if self.masking and self.masking not in ("token", "whole_word", "span"):
            raise ValueError(f"masking must be token, whole_word or span, not {self.masking!r}")
        if self.eval_every < 0 or self.eval_examples < 1:
            raise ValueError("eval_every must be >= 0 and eval_examples >= 1")


def _field_types() -> dict[str, type]:
    return typing.get_type_hints(PretrainConfig)


def load_config(path: str | Path | None, overrides: dict[str, object]) -> PretrainConfig:
    """Fields from the YAML file (if any), then the flags given on the command line."""
    return load_dataclass_config(PretrainConfig, path, overrides)


def _field_help() -> dict[str, str]:
    """The comment beside each field of PretrainConfig, reused as its flag's help."""
    import inspect
    import re

    out = {}
    for line in inspect.getsource(PretrainConfig).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain an encoder (bert, roberta, spanbert) or a decoder (gpt)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML file whose keys are these flags (flags given here win)")
    types_ = _field_types()
    helps = _field_help()
    for f in dataclasses.fields(PretrainConfig):
        flag = "--" + f.name.replace("_", "-")
        t = types_[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{helps.get(f.name, '')} (default: {default!r})".replace("%", "%%")
        if t is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif typing.get_origin(t) is list:
            p.add_argument(flag, dest=f.name, nargs="+", default=None, help=help_)
        elif f.name == "preset":
            p.add_argument(flag, dest=f.name, choices=PRESETS, default=None, help=help_)
        else:
            p.add_argument(flag, dest=f.name, type=t, default=None, help=help_)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    names = [f.name for f in dataclasses.fields(PretrainConfig)]
    cfg = load_config(args.config, {n: getattr(args, n) for n in names})
    out = run(cfg)
    if out is not None:  # rank 0 (or the only process)
        print(f"wrote {out}")
    return 0


# ------------------------------------------------------------------------------------------ the job

def check_config(cfg: PretrainConfig) -> None:
    """Refuse a configuration that cannot work, before anything is read or written."""
    from . import UserError

    check_length(objective(cfg.preset), cfg.max_length)
    if cfg.init_from:
        folder = Path(cfg.init_from)
        if (folder / "state.pt").is_file() and not (folder / "config.json").is_file():
            raise UserError(f"{folder}: a training checkpoint, not a model folder; to continue that run, give its "
                            f"run folder as --output (it resumes from checkpoints/latest), or --init-from the "
                            f"exported RUN/model folder")


# Options that define the model, the data or the optimisation: a run folder's checkpoints can
# only be resumed with the same values (steps may grow, logging and evaluation may change).
RESUME_KEYS = ("preset", "data", "tokenizer", "model", "init_from", "max_length", "sentence_split", "masking",
               "mlm_probability", "random_distribution", "batch_size", "grad_accum", "lr", "warmup_steps",
               "schedule", "weight_decay", "max_grad_norm", "precision", "seed")
RUN_CONFIG = "pretrain_config.yaml"


def check_resume(cfg: PretrainConfig) -> None:
    """With resume on and a checkpoint in OUTPUT: refuse when OUTPUT/pretrain_config.yaml says the
    run was started with other values of RESUME_KEYS (the weights check in checkpointing.py then
    only has to catch what a config file cannot say)."""
    from ..training.checkpointing import latest_checkpoint
    from . import UserError

    run_dir = Path(cfg.output)
    saved_file = run_dir / RUN_CONFIG
    if not cfg.resume or cfg.dry_run or latest_checkpoint(run_dir / "checkpoints") is None or not saved_file.is_file():
        return
    try:
        saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{saved_file}: bad YAML ({e}); it records how the run in {run_dir} was started") from None
    if saved.get("dry_run"):
        raise UserError(f"{saved_file}: {run_dir} holds a dry run's checkpoint (step 1); give --no-resume to start "
                        f"the real run in this folder, or another --output")
    now = dataclasses.asdict(cfg)
    diff = [f"{k}: {saved.get(k)!r} there, {now[k]!r} now" for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
    if diff:
        raise UserError(f"{saved_file}: the checkpoints in {run_dir / 'checkpoints'} come from another configuration "
                        f"({'; '.join(diff)}); use the same options to resume, --no-resume to start over in "
                        f"this folder, or another --output")


def _write_run_config(cfg: PretrainConfig) -> None:
    """OUTPUT/pretrain_config.yaml, atomically."""
    atomic_write_text(Path(cfg.output) / RUN_CONFIG, yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def build(cfg: PretrainConfig):
    """(model wrapper, dataset, collator, tokenizer, model config) for a config; no training.
    The work is objectives/builder.py's; this reads the options."""
    p = _build(cfg)
    return p.model, p.dataset, p.collate, p.tokenizer, p.config


def _build(cfg: PretrainConfig):
    from ..tokenization.io import load_tokenizer
    from ..training import seed_everything
    from . import UserError

    if not cfg.data:
        raise UserError("no training text: give --data FILE_OR_FOLDER (or `data:` in the config)")
    if not cfg.tokenizer:
        raise UserError("no tokenizer: give --tokenizer FOLDER (e.g. `transferlm assets path minilm`)")
    tok = load_tokenizer(cfg.tokenizer)
    seed_everything(cfg.seed)
    return build_pretraining(cfg.preset, tok, Path(cfg.output) / "corpus", cfg.data, model=cfg.model,
                             init_from=cfg.init_from, max_length=cfg.max_length, sentence_split=cfg.sentence_split,
                             masking=cfg.masking, mlm_probability=cfg.mlm_probability,
                             random_distribution=cfg.random_distribution, seed=cfg.seed, progress=cfg.progress_bar,
                             tokenizer_name=cfg.tokenizer)


def build_evaluator(cfg: PretrainConfig, p):
    """The held-out MLM evaluation of `cfg.eval_data` (None when there is none); the held-out text
    is tokenized into OUTPUT/eval_corpus (builder.Pretraining.evaluator says how it is scored)."""
    from . import UserError

    if not cfg.eval_data:
        return None
    if p.objective.causal:
        raise UserError("--eval-data: held-out evaluation is MLM accuracy; the gpt preset has none")
    held = token_corpus(cfg.eval_data, Path(cfg.output) / "eval_corpus", p.tokenizer, cfg.sentence_split,
                        cfg.progress_bar)
    return p.evaluator(held, n_examples=cfg.eval_examples, batch_size=min(cfg.batch_size, 64))


def export(model, tok, cfg: PretrainConfig, folder: Path) -> Path:
    """Write the Hugging Face folder: weights (+ MLM / NSP heads under BERT's names) and tokenizer."""
    return Pretraining(objective(cfg.preset), model, None, None, tok, {}, cfg.max_length, cfg.seed).export(folder)


def trainer_rank_zero() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def run(cfg: PretrainConfig) -> Path | None:
    """Train and export; returns the model folder (None on ranks other than 0 under torchrun)."""
    from ..training import Trainer, TrainerConfig

    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, steps=1, save_every=0, resume=False, log_every=1)
    check_config(cfg)
    check_resume(cfg)
    p = _build(cfg)
    model, dataset, collate, tok = p.model, p.dataset, p.collate, p.tokenizer
    if len(dataset) < cfg.batch_size:
        if not cfg.dry_run:
            raise ValueError(f"the corpus gives {len(dataset)} examples, fewer than one batch of {cfg.batch_size}")
        cfg = dataclasses.replace(cfg, batch_size=len(dataset), grad_accum=1)  # a dry run on a tiny text
    tcfg = TrainerConfig(run_dir=cfg.output, max_steps=cfg.steps, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                         lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                         warmup_steps=min(cfg.warmup_steps, cfg.steps), max_grad_norm=cfg.max_grad_norm,
                         precision=cfg.precision, seed=cfg.seed, log_every=cfg.log_every, save_every=cfg.save_every,
                         keep_last=cfg.keep_last, resume=cfg.resume, progress_bar=cfg.progress_bar)
    evaluator = build_evaluator(cfg, p)
    if evaluator is not None and trainer_rank_zero():
        n_held = sum(int(b["input_ids"].shape[0]) for b in evaluator.batches)
        print(f"held-out: {evaluator.masked_tokens:,} masked tokens in {n_held} examples; unigram "
              f"baseline (always the most frequent training token) {evaluator.unigram_accuracy:.2%}", flush=True)
    tcfg = dataclasses.replace(tcfg, eval_every=cfg.eval_every if evaluator is not None else 0, eval_at_start=True)
    trainer = Trainer(model, dataset, collate, tcfg, eval_fn=evaluator)
    if trainer.rank == 0 and not cfg.dry_run:
        _write_run_config(cfg)  # before the first checkpoint: what a later resume is checked against
    last = trainer.fit()
    out = Path(cfg.output) / "model"
    if trainer.rank != 0:
        return None
    p.export(out)
    _write_run_config(cfg)
    if cfg.dry_run:
        print(dry_run_summary(cfg, last, Path(cfg.output)), flush=True)
    return out


def dry_run_summary(cfg: PretrainConfig, last: dict[str, float], run_dir: Path) -> str:
    """The one step of a dry run, in words: each loss component, the step's speed, held-out numbers."""
    from ..training.logging import read_metrics

    records = read_metrics(run_dir, strict=False)
    train = [r for r in records if "loss" in r]
    tok_s = train[-1].get("tokens_per_s", 0.0) if train else 0.0
    parts = [f"{k} {v:.4f}" for k, v in last.items() if k.endswith("loss")]
    parts += [f"{k} {v:.1%}" for k, v in last.items() if k.endswith("accuracy")]
    lines = [f"dry run OK: 1 optimizer step of {cfg.batch_size} examples x {cfg.max_length} tokens ({cfg.preset} "
             f"preset): {', '.join(parts)}; gradient norm {last.get('grad_norm', float('nan')):.3f}; "
             f"{tok_s:,.0f} tokens/s"]
    evals = [r for r in records if "eval_mlm_accuracy" in r]
    if evals:
        r = evals[-1]
        lines.append(f"held-out: MLM accuracy {r['eval_mlm_accuracy']:.1%} (loss {r['eval_mlm_loss']:.3f}) vs "
                     f"{r['eval_unigram_accuracy']:.1%} for the unigram baseline, on {int(r['eval_masked_tokens']):,} "
                     f"masked tokens")
    lines.append(f"the checkpoint in {run_dir / 'checkpoints'} is the dry run's: a real run in this folder needs "
                 f"--no-resume (or another --output)")
    return "\n".join(lines)

