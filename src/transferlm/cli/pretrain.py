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

PRESETS = ("bert", "roberta", "spanbert", "gpt")


@dataclass
class PretrainConfig:
    preset: str = "bert"  # bert | roberta | spanbert | gpt (objectives and data layout, see above)
    data: list[str] = field(default_factory=list)  # text / JSON lines files or folders
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


def _field_types() -> dict[str, type]:
    return typing.get_type_hints(PretrainConfig)


def load_config(path: str | Path | None, overrides: dict[str, object]) -> PretrainConfig:
    """Fields from the YAML file (if any), then the flags given on the command line."""
    values: dict[str, object] = {}
    known = {f.name for f in dataclasses.fields(PretrainConfig)}
    if path:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ValueError(f"{where}: bad YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of option: value")
        for key, value in raw.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ValueError(f"{path}: unknown config key {key!r} (known: {', '.join(sorted(known))})")
            values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    types_ = _field_types()
    for name, value in values.items():
        t = types_[name]
        if t is list[str] or typing.get_origin(t) is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path or 'flags'}: {name} must be a list of strings, got {value!r}")
        elif t is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{path or 'flags'}: {name} must be true or false, got {value!r}")
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{path or 'flags'}: {name} must be a number, got {value!r}")
            value = float(value)
        elif t is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{path or 'flags'}: {name} must be an integer, got {value!r}")
        elif t is str and not isinstance(value, str):
            raise ValueError(f"{path or 'flags'}: {name} must be a string, got {value!r}")
        values[name] = value
    return PretrainConfig(**values)


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


def _corpus(cfg: PretrainConfig, tok):
    from ..data.corpus import TokenCorpus, build_corpus

    import torch.distributed as dist

    from ..training.trainer import distributed_setup

    folder = Path(cfg.output) / "corpus"
    meta = folder / "corpus.json"
    sources = [str(Path(p)) for p in cfg.data]
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


def build(cfg: PretrainConfig):
    """(model wrapper, dataset, collator, tokenizer, model config) for a config; no training."""
    from ..data.collate import CausalLMCollator, MLMCollator
    from ..data.corpus import NSPDataset, PackedDataset
    from ..models import Encoder, preset
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
    corpus = _corpus(cfg, tok)
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
            raise UserError(f"the model's vocabulary ({dec.config.vocab_size}) is not the tokenizer's ({V})")
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
        raise UserError(f"the model's vocabulary ({mc.vocab_size}) is not the tokenizer's ({V})")
    if nsp and enc.pooler is None:
        raise UserError("NSP needs the encoder's pooler; the model was built without one")
    if not nsp:
        enc.pooler = None
    strategy = cfg.masking or ("span" if cfg.preset == "spanbert" else "token")
    masking = MaskingConfig(strategy=strategy, mlm_probability=cfg.mlm_probability,
                            random_distribution=cfg.random_distribution)
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


def run(cfg: PretrainConfig) -> Path | None:
    """Train and export; returns the model folder (None on ranks other than 0 under torchrun)."""
    from ..training import Trainer, TrainerConfig

    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, steps=1, save_every=0, resume=False, log_every=1)
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
    trainer = Trainer(model, dataset, collate, tcfg)
    trainer.fit()
    out = Path(cfg.output) / "model"
    if trainer.rank != 0:
        return None
    export(model, tok, cfg, out)
    (Path(cfg.output) / "pretrain_config.yaml").write_text(
        yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), encoding="utf-8")
    return out

