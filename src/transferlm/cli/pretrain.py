"""`transferlm pretrain`: pretrain a BERT / RoBERTa / SpanBERT encoder or a GPT decoder from text.

    transferlm pretrain --config pretrain.yaml
    transferlm pretrain --preset bert --data corpus/ --tokenizer TOKENIZER_DIR --model bert-mini --steps 10000

The YAML file mirrors the flags (`steps: 10000` is `--steps 10000`); a flag given on the command
line wins over the file; a key that is not a flag is an error naming the key. Presets:

  bert      MLM (token masking) + NSP over sentence pairs (Devlin et al. 2019)
  roberta   MLM only (dynamic token masking) over packed full sentences (Liu et al. 2019 sec. 4.2)
  spanbert  span masking + span boundary objective, single segments, no NSP (Joshi et al. 2020)
  gpt       causal LM over packed blocks (Radford et al. 2018/2019)

Steps: tokenize the text once into memory-mapped shards (OUTPUT/corpus, reused when the sources
and vocabulary match), build the model from a models/ preset (vocabulary size from the tokenizer)
or from a Hugging Face folder (`--init-from`), train with the shared Trainer (checkpoints in
OUTPUT/checkpoints; running the same command again resumes), then write OUTPUT/model: a Hugging
Face folder (BertForPreTraining / BertForMaskedLM / GPT2LMHeadModel / LlamaForCausalLM) with the
tokenizer. `--dry-run` runs one optimizer step end to end.

Does not: train tokenizers (`transferlm tokenizer`), or evaluate downstream tasks (`finetune`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..fileio import atomic_write_text
from .config import load_dataclass_config

PRESETS = ("bert", "roberta", "spanbert", "gpt")


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
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
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

def _special_ids(tok) -> dict[str, int]:
    out = {}
    for role in tok.special_tokens:
        try:
            out[role] = tok.special_token_id(role)
        except (KeyError, ValueError):
            continue
    return out


def _corpus(cfg: PretrainConfig, tok, sources: list[str] | None = None, name: str = "corpus"):
    """Token shards of `sources` (default: the training data) in OUTPUT/name, reused when fresh."""
    from ..data.corpus import TokenCorpus, build_corpus

    import torch.distributed as dist

    from ..training.trainer import distributed_setup

    folder = Path(cfg.output) / name
    meta = folder / "corpus.json"
    sources = [str(Path(p)) for p in (cfg.data if sources is None else sources)]
    rank, _, world = distributed_setup()  # under torchrun: rank 0 tokenizes, the others wait
    if rank == 0:
        fresh = False
        if meta.exists():
            m = json.loads(meta.read_text(encoding="utf-8"))
            fresh = m.get("sources") == sources and m.get("vocab_size") == tok.vocab_size and \
                m.get("sentence_split") == cfg.sentence_split
        if not fresh:
            build_corpus(sources, folder, tok, tok.vocab_size, sentence_split=cfg.sentence_split,
                         progress=cfg.progress_bar)
    if world > 1:
        dist.barrier()
    return TokenCorpus(folder)


# The fewest tokens an example can have, specials included: [CLS] A [SEP] B [SEP] with one token
# in each segment (bert), [CLS] text [SEP] (roberta, spanbert), two tokens to predict one (gpt).
MIN_LENGTH = {"bert": 5, "roberta": 3, "spanbert": 3, "gpt": 2}


def _check_positions(cfg: PretrainConfig, mc) -> None:
    from . import UserError

    if cfg.max_length > mc.max_position_embeddings:
        raise UserError(f"max_length {cfg.max_length} is more than the {mc.max_position_embeddings} positions of "
                        f"{cfg.init_from or cfg.model or 'the model'} (max_position_embeddings)")


def check_config(cfg: PretrainConfig) -> None:
    """Refuse a configuration that cannot work, before anything is read or written."""
    from . import UserError

    need = MIN_LENGTH[cfg.preset]
    if cfg.max_length < need:
        what = {"bert": "[CLS] A [SEP] B [SEP]", "gpt": "an input and a next token"}.get(cfg.preset, "[CLS] text [SEP]")
        raise UserError(f"max_length {cfg.max_length} is smaller than the {need} tokens the {cfg.preset} preset "
                        f"needs at least ({what}, one text token per segment)")
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
    """(model wrapper, dataset, collator, tokenizer, model config) for a config; no training."""
    from ..data.collate import CausalLMCollator
    from ..data.corpus import NSPDataset, PackedDataset
    from ..models import Encoder, preset
    from ..objectives.collate import MLMCollator
    from ..objectives.masking import MaskingConfig, random_token_weights
    from ..objectives.pretraining import CausalLMModel, PretrainingModel
    from ..tokenization.io import load_tokenizer
    from ..training import seed_everything
    from . import UserError

    if not cfg.data:
        raise UserError("no training text: give --data FILE_OR_FOLDER (or `data:` in the config)")
    if not cfg.tokenizer:
        raise UserError("no tokenizer: give --tokenizer FOLDER (e.g. `transferlm assets path minilm`)")
    tok = load_tokenizer(cfg.tokenizer)
    specials = _special_ids(tok)
    # Everything that can be refused is checked before the corpus is tokenized to disk (the model
    # first), so that bad input leaves nothing behind.
    seed_everything(cfg.seed)
    V = tok.vocab_size

    if cfg.preset == "gpt":
        from ..models.decoder import Decoder

        if cfg.init_from:
            dec = Decoder.from_pretrained(cfg.init_from)
        else:
            name = cfg.model or "gpt-mini"
            mc = preset(name, vocab_size=V,
                        max_position_embeddings=max(cfg.max_length, preset(name).max_position_embeddings),
                        pad_token_id=specials.get("pad"), bos_token_id=specials.get("bos"),
                        eos_token_id=specials.get("eos", specials.get("sep")))
            dec = Decoder(mc)
        if dec.config.vocab_size != V:
            raise UserError(f"{cfg.init_from or cfg.model}: the model's vocabulary ({dec.config.vocab_size}) is not "
                            f"the tokenizer's ({V}, {cfg.tokenizer})")
        _check_positions(cfg, dec.config)
        corpus = _corpus(cfg, tok)
        sep = specials.get("eos", specials.get("sep"))
        dataset = PackedDataset(corpus, cfg.max_length, doc_separator=sep)
        collate = CausalLMCollator(pad_id=specials.get("pad", 0))
        return CausalLMModel(dec), dataset, collate, tok, dec.config

    for role in ("cls", "sep", "mask", "pad"):
        if role not in specials:
            raise UserError(f"{cfg.tokenizer}: the tokenizer has no {role!r} token, which MLM pretraining needs")
    nsp = cfg.preset == "bert"
    if cfg.init_from:
        enc = Encoder.from_pretrained(cfg.init_from)
    else:
        name = cfg.model or "bert-mini"
        # Only NSP reads the pooler; without NSP it would be a parameter with no gradient (which
        # DDP rejects), and HF's BertForMaskedLM has none either.
        enc = Encoder(preset(name, vocab_size=V, pad_token_id=specials["pad"], add_pooler=nsp,
                             max_position_embeddings=max(cfg.max_length, preset(name).max_position_embeddings)))
    mc = enc.config
    if mc.vocab_size != V:
        raise UserError(f"{cfg.init_from or cfg.model or 'bert-mini'}: the model's vocabulary ({mc.vocab_size}) is "
                        f"not the tokenizer's ({V}, {cfg.tokenizer})")
    _check_positions(cfg, mc)
    if nsp and enc.pooler is None:
        raise UserError("NSP needs the encoder's pooler; the model was built without one")
    if not nsp:
        enc.pooler = None
    strategy = cfg.masking or ("span" if cfg.preset == "spanbert" else "token")
    masking = MaskingConfig(strategy=strategy, mlm_probability=cfg.mlm_probability,
                            random_distribution=cfg.random_distribution)
    corpus = _corpus(cfg, tok)
    counts = corpus.unigram_counts() if cfg.random_distribution == "unigram" else None
    weights = random_token_weights(V, sorted(set(specials.values())), counts)
    if nsp:
        dataset = NSPDataset(corpus, cfg.max_length, cls_id=specials["cls"], sep_id=specials["sep"], seed=cfg.seed)
    else:  # RoBERTa FULL-SENTENCES / SpanBERT single segments: packed text in [CLS] ... [SEP]
        dataset = PackedDataset(corpus, cfg.max_length, doc_separator=specials["sep"], prefix=[specials["cls"]],
                                suffix=[specials["sep"]])
    collate = MLMCollator(pad_id=specials["pad"], mask_id=specials["mask"], random_weights=weights,
                          masking=masking, seed=cfg.seed)
    model = PretrainingModel(enc, mc.hidden_size, V, nsp=nsp, sbo=cfg.preset == "spanbert", layer_norm_eps=mc.norm_eps)
    return model, dataset, collate, tok, mc


def build_evaluator(cfg: PretrainConfig, dataset, collate, tok):
    """The held-out MLM evaluation of `cfg.eval_data` (None when there is none, or for gpt).

    The held-out text is tokenized into OUTPUT/eval_corpus and read with the training layout
    (sentence pairs for bert, packed blocks otherwise); `eval_examples` of its examples are masked
    once by a copy of the training collator seeded apart from training (seed + 1,000,003), and the
    unigram baseline answers the training corpus's most frequent non-special token.
    """
    import copy

    from ..data.corpus import NSPDataset, PackedDataset
    from ..objectives.pretraining import MLMEvaluator
    from . import UserError

    if not cfg.eval_data or cfg.preset == "gpt":
        if cfg.eval_data:
            raise UserError("--eval-data: held-out evaluation is MLM accuracy; the gpt preset has none")
        return None
    held = _corpus(cfg, tok, cfg.eval_data, name="eval_corpus")
    specials = _special_ids(tok)
    if isinstance(dataset, NSPDataset):
        eval_ds = NSPDataset(held, cfg.max_length, cls_id=specials["cls"], sep_id=specials["sep"], seed=cfg.seed + 1)
    else:
        eval_ds = PackedDataset(held, cfg.max_length, doc_separator=specials["sep"], prefix=[specials["cls"]],
                                suffix=[specials["sep"]])
    return MLMEvaluator.from_dataset(eval_ds, copy.deepcopy(collate), n_examples=cfg.eval_examples,
                                     batch_size=min(cfg.batch_size, 64), seed=cfg.seed + 1_000_003,
                                     counts=dataset.corpus.unigram_counts(), special_ids=sorted(set(specials.values())))


def export(model, tok, cfg: PretrainConfig, folder: Path) -> Path:
    """Write the Hugging Face folder: weights (+ MLM / NSP heads under BERT's names) and tokenizer."""
    from ..objectives.pretraining import CausalLMModel

    if isinstance(model, CausalLMModel):
        arch = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "bert": "BertLMHeadModel"}[model.decoder.config.model_type]
        model.decoder.save_pretrained(folder, architectures=[arch])
    else:
        arch = "BertForPreTraining" if model.cls.seq_relationship is not None else "BertForMaskedLM"
        model.encoder.save_pretrained(folder, extra_tensors=model.cls.hf_state_dict(), architectures=[arch])
    tok.save_pretrained(folder)
    return folder


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
    model, dataset, collate, tok, _ = build(cfg)
    if len(dataset) < cfg.batch_size:
        if not cfg.dry_run:
            raise ValueError(f"the corpus gives {len(dataset)} examples, fewer than one batch of {cfg.batch_size}")
        cfg = dataclasses.replace(cfg, batch_size=len(dataset), grad_accum=1)  # a dry run on a tiny text
    tcfg = TrainerConfig(run_dir=cfg.output, max_steps=cfg.steps, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                         lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                         warmup_steps=min(cfg.warmup_steps, cfg.steps), max_grad_norm=cfg.max_grad_norm,
                         precision=cfg.precision, seed=cfg.seed, log_every=cfg.log_every, save_every=cfg.save_every,
                         keep_last=cfg.keep_last, resume=cfg.resume, progress_bar=cfg.progress_bar)
    evaluator = build_evaluator(cfg, dataset, collate, tok)
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
    export(model, tok, cfg, out)
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

