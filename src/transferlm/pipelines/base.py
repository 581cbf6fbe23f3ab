"""What every fine-tuning pipeline shares: model resolution, training, saving and loading.

A pipeline is a pretrained body + a tokenizer + a head (heads/) + the label list + its options.
The body is an `Encoder` (BERT family), or a `Decoder` (GPT-2, Llama; GGUF files) for the tasks
that support one (`TextClassifier` hands those to decoder_classification.py). It lives in
`pipeline.encoder` whichever it is: the attribute names the role (the model under the head), and
both share the parameter names `embeddings.*` / `layers.{i}.*` that freezing and unfreezing use.
This file does, once for all tasks:
- `resolve_model`: an asset name ("minilm", "smollm2"), a Hugging Face BERT / GPT-2 / Llama
  folder or a GGUF file -> (Encoder or Decoder, tokenizer), the family read from config.json;
- `Pipeline.fit_features`: training with the shared `Trainer` (training/trainer.py; no second
  loop) over length-bucketed batches (data/finetune_collate.py), with the optimizer options of
  training/optim.py (freezing, layer-wise learning-rate decay, gradual unfreezing) and the
  schedules of training/schedules.py. The budget is counted in updates and scales with the data
  (`training_budget`: `epochs` passes, but at least `min_steps` updates for small sets); with a
  dev set, the task's dev metric (`dev_metric`) is evaluated every `eval_every` updates, logged
  to OUT_DIR/metrics.jsonl, and training stops after `patience` evaluations without a gain and
  ends on the best evaluation's weights (training/early_stopping.py); OUT_DIR/checkpoints makes
  a killed run resumable;
- `Pipeline.save_pretrained` / `load`: a Hugging Face-style folder (config.json with the label
  map and the HF architecture, model.safetensors with the encoder under `bert.` and the head
  under HF names such as `classifier.weight`, or a decoder under `transformer.` / `model.` and
  its head under `score.weight`, the tokenizer files) plus `transferlm_pipeline.json`
  for the options HF has no place for. The folder is built beside the target and renamed into
  place, so a reader sees the old folder or the complete new one;
- `predict_batches`: inference in length-sorted batches, results back in input order.

What it does not: know any task (classification.py, tagging.py, spans.py, qa.py do), read
files (data/formats.py), or parse command lines (cli/).
"""

from __future__ import annotations

import abc
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..data import assets
from ..data.finetune_collate import BucketedBatches, FinetuneCollator, word_spans
from ..models import checkpoint
from ..models.decoder import Decoder
from ..models.encoder import Encoder, Pooler
from ..tokenization.io import load_tokenizer
from ..training.early_stopping import EarlyStopping
from ..training.optim import GradualUnfreezing, build_optimizer, freeze as freeze_params
from ..training.trainer import Trainer, TrainerConfig

PIPELINE_FILE = "transferlm_pipeline.json"
FORMAT_VERSION = 1
FLOOR_MAX_EPOCHS = 100  # the min_steps floor never asks for more passes than this (a handful of
# examples is memorised long before; it also keeps tiny test runs short)
MAX_EVALS = 20  # eval_every=None: at most ~20 dev evaluations a run (each is a pass over dev)


DECODER_TYPES = ("gpt2", "llama")  # config.json model_types that are causal decoders


def _gguf_in(path: Path) -> Path | None:
    """The GGUF file `path` names: the file itself, or the only *.gguf of a folder without config.json."""
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and not (path / checkpoint.CONFIG).exists():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
    return None


def is_decoder_model(model: str | os.PathLike | nn.Module) -> bool:
    """Whether `model` (a module, an asset name, a folder or a GGUF file) is a causal decoder."""
    if isinstance(model, nn.Module):
        return isinstance(model, Decoder)
    path = Path(model)
    if not path.exists() and str(model) in assets.ASSETS:
        path = assets.path(str(model))
    if _gguf_in(path) is not None:
        return True
    if path.is_dir() and (path / checkpoint.CONFIG).is_file():
        return checkpoint.read_config(path).get("model_type") in DECODER_TYPES
    return False


def resolve_model(model: str | os.PathLike | Encoder | Decoder, tokenizer=None) -> tuple[Encoder | Decoder, Any]:
    """(body, tokenizer) from an asset name, a HF folder (BERT -> Encoder; GPT-2 / Llama ->
    Decoder, by config.json's model_type), a GGUF file (Decoder, tokenizer from its metadata),
    or an Encoder / Decoder + its tokenizer."""
    if isinstance(model, (Encoder, Decoder)):
        if tokenizer is None:
            raise ValueError(f"an {type(model).__name__} instance needs its tokenizer: "
                             f"new(model, tokenizer=tok, ...)")
        return model, tokenizer
    folder = Path(model)
    if not folder.exists() and str(model) in assets.ASSETS:
        folder = assets.path(str(model))
    gguf = _gguf_in(folder)
    if gguf is not None:
        from ..tokenization.bpe import ByteLevelBPETokenizer

        return Decoder.from_pretrained(gguf), tokenizer if tokenizer is not None else ByteLevelBPETokenizer.from_gguf(gguf)
    if not folder.is_dir():
        known = ", ".join(sorted(assets.ASSETS))
        raise FileNotFoundError(f"{model}: not a model folder, a .gguf file or an asset name (assets: {known})")
    body = Decoder.from_pretrained(folder) if is_decoder_model(folder) else Encoder.from_pretrained(folder)
    return body, tokenizer if tokenizer is not None else load_tokenizer(folder)


@dataclass
class FitConfig:
    """Training options shared by every task (each pipeline's `fit` passes its own defaults)."""

    epochs: float = 3.0  # BERT sec. 4: 2-4 epochs suffice for fine-tuning (on large data sets)
    lr: float = 5e-5  # BERT sec. A.3 grid {5e-5, 3e-5, 2e-5}; small encoders like higher (1e-4)
    batch_size: int = 16  # BERT sec. A.3 grid {16, 32}
    # The budget in updates: max(epochs passes, min(min_steps, FLOOR_MAX_EPOCHS passes)). Small sets
    # need more updates than a few epochs give (Mosbach et al. 2021 sec. 6, Zhang et al. 2021
    # "Revisiting Few-sample BERT Fine-tuning" sec. 6: train longer; LM-BFF, Gao et al. 2021,
    # trains 1,000 updates on 16 examples per class); 200 at batch 16 is ~64 passes over 50
    # examples, and unchanged for data sets whose `epochs` passes already exceed it
    min_steps: int = 200
    max_steps: int | None = None  # an explicit budget in updates (overrides the rule above)
    # Early stopping (only with a dev set): evaluate every eval_every updates (None: every epoch,
    # or every budget / MAX_EVALS updates if epochs are shorter), stop after `patience`
    # evaluations without a strict gain in the task's dev metric, end on the best evaluation's
    # weights (LM-BFF selects its checkpoint on a dev set the size of the training set the same
    # way). patience 0: no early stopping (the whole budget, the last weights).
    patience: int = 5  # a quarter of the budget's ~20 evaluations without a gain
    eval_every: int | None = None
    weight_decay: float = 0.01  # BERT appendix A.2
    warmup_ratio: float = 0.1  # BERT's linear warmup over the first 10% of the steps
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular (ULMFiT eq. 3)
    freeze: str | int | None = None  # None | "encoder" | "embeddings" | k: train only the top k layers
    layerwise_lr_decay: float | None = None  # e.g. 0.9 (Sun et al. 2019 sec. 5.3; ELECTRA's 0.8)
    gradual_unfreezing: bool = False  # ULMFiT sec. 3.3: one more layer group each epoch
    head_lr: float | None = None  # peak lr of the task head; None = lr (a randomly initialised
    # FFNN head, e.g. the span scorer, learns too slowly at an encoder's fine-tuning rate)
    max_grad_norm: float | None = 1.0  # BERT clips at 1.0
    seed: int = 0  # data order and dropout
    out_dir: str | None = None  # checkpoints + metrics.jsonl (resumable); None = a temporary folder
    progress: bool = True  # a progress bar on stderr
    save_every: int = 0  # steps between checkpoints (0 = only at the end)

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError("epochs and lr must be > 0 and batch_size >= 1")
        if self.min_steps < 0 or self.patience < 0:
            raise ValueError(f"min_steps and patience must be >= 0, got {self.min_steps}, {self.patience}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (or None: the budget rule), not {self.max_steps}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1 (or None: automatic), not {self.eval_every}")
        if isinstance(self.freeze, str) and self.freeze not in ("encoder", "embeddings"):
            if not self.freeze.isdigit():
                raise ValueError(f"freeze must be 'encoder', 'embeddings' or a number of top layers "
                                 f"to train, not {self.freeze!r}")
            self.freeze = int(self.freeze)


def training_budget(fit: FitConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(updates, updates between dev evaluations) for a data set of `steps_per_epoch` batches."""
    if fit.max_steps is not None:
        steps = fit.max_steps
    else:
        floor = min(fit.min_steps, math.ceil(FLOOR_MAX_EPOCHS * steps_per_epoch))
        steps = max(math.ceil(fit.epochs * steps_per_epoch), floor, 1)
    every = fit.eval_every or max(steps_per_epoch, math.ceil(steps / MAX_EVALS))
    return steps, min(every, steps)


class TaskModel(nn.Module):
    """Encoder + head as one module for the Trainer: `forward(batch)` -> {"loss": ...}."""

    def __init__(self, encoder: Encoder, head: nn.Module, step: Callable[..., dict[str, Tensor]]):
        super().__init__()
        self.encoder, self.head = encoder, head
        self._step = step

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self._step(self.encoder, self.head, batch)


def encode_batch(encoder: Encoder, batch: dict[str, Any]):
    """Run the encoder on a padded batch (input_ids, attention_mask, optional token_type_ids)."""
    return encoder(batch["input_ids"], attention_mask=batch["attention_mask"],
                   token_type_ids=batch.get("token_type_ids"))


class Pipeline(abc.ABC):
    """Base of TextClassifier, Tagger, SpanTagger and QuestionAnswerer."""

    task: str = ""  # classify | pair | tag | spans | qa
    architecture: str = ""  # the Hugging Face class whose layout model.safetensors follows
    hf_prefix: str = "classifier."  # where the head's tensors live in model.safetensors
    hf_label_map: bool = True  # config.json gets id2label / label2id (QA has no labels)
    hf_problem_type: str | None = None  # config.json's problem_type, where transformers reads one
    dev_metric: str = ""  # the key of `evaluate`'s result that early stopping maximises
    Options: type = object  # the task's options dataclass

    def __init__(self, encoder: Encoder | Decoder, tokenizer, labels: Sequence[str], options: Any):
        self.encoder, self.tokenizer = encoder, tokenizer
        self.labels = list(labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"duplicate labels in {self.labels}")
        self.options = options
        self.head = self._build_head()
        self.model = TaskModel(encoder, self.head, self._step)
        self.model.eval()
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def new(cls, model: str | os.PathLike | Encoder | Decoder = "minilm", labels: Sequence[str] | None = None, *,
            tokenizer=None, seed: int = 0, **options) -> "Pipeline":
        """A pipeline over a pretrained model with a freshly initialised head.

        model: an asset name ("minilm"), a HF folder, a GGUF file, or an `Encoder` / `Decoder`
        (then give `tokenizer`). options: the fields of the task's Options dataclass (e.g.
        pooling="mean", max_length=256).
        """
        encoder, tok = resolve_model(model, tokenizer)
        cls = cls._class_for(encoder)
        known = {f.name for f in fields(cls.Options)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"{cls.__name__}.new: unknown option(s) {unknown}; known: {sorted(known)}")
        torch.manual_seed(seed)  # the head's initial weights
        return cls(encoder, tok, cls._check_labels(labels), cls._make_options(tok, options))

    @classmethod
    def _class_for(cls, body: nn.Module) -> type["Pipeline"]:
        """The pipeline class for this body; encoder pipelines refuse a decoder."""
        if isinstance(body, Decoder):
            raise TypeError(f"{cls.__name__} fine-tunes encoders (BERT family); this model is a "
                            f"{body.config.model_type} decoder (decoders: TextClassifier, tasks classify / pair)")
        return cls

    @classmethod
    def _make_options(cls, tokenizer, options: dict[str, Any]) -> Any:
        """The Options dataclass from `new`'s keyword options (decoders fill in tokenizer ids)."""
        return cls.Options(**options)

    @classmethod
    def _load_body(cls, folder: Path) -> nn.Module:
        """The pretrained body of a saved folder (an Encoder here; decoder pipelines override)."""
        return Encoder.from_pretrained(folder)

    def _save_body(self, folder: Path) -> None:
        """Write the body and the head's tensors (HF names) as a HF folder under `architecture`."""
        self.encoder.save_pretrained(folder, extra_tensors=self._head_state(), architectures=[self.architecture])

    @classmethod
    def _check_labels(cls, labels: Sequence[str] | None) -> list[str]:
        if not labels:
            raise ValueError(f"{cls.__name__} needs labels=[...] (e.g. from the training data)")
        return [str(x) for x in labels]

    @abc.abstractmethod
    def _build_head(self) -> nn.Module:
        """The task head over the encoder's hidden states."""

    @abc.abstractmethod
    def _step(self, encoder: Encoder, head: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        """One batch -> {"loss": ..., named components}."""

    @property
    def max_length(self) -> int:
        return min(self.options.max_length, self.encoder.config.max_position_embeddings)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.special_token_id("pad")

    # ------------------------------------------------------------------ training
    def fit_features(self, features: list[dict[str, Any]], fit: FitConfig,
                     dev_eval: Callable[[], dict[str, float]] | None = None) -> list[dict[str, Any]]:
        """Train on encoded examples with the shared Trainer; returns the dev history (one record
        per evaluation) and a last record with the training loss, `best_step` and `stopped_at`."""
        if not features:
            raise ValueError("no training examples")
        batch_size = min(fit.batch_size, len(features))
        data = BucketedBatches(features, batch_size, seed=fit.seed)
        per_epoch = len(data)
        steps, every = training_budget(fit, per_epoch)
        stopper = EarlyStopping(fit.patience) if dev_eval is not None and fit.patience > 0 else None
        if stopper is not None and not self.dev_metric:
            raise TypeError(f"{type(self).__name__} sets no dev_metric for early stopping")
        model = self.model
        if getattr(self.encoder, "pooler", None) is not None and not self._uses_pooler():
            for p in self.encoder.pooler.parameters():  # unused: keep it out of the optimizer
                p.requires_grad_(False)
        self._apply_freeze(fit)
        groups = None
        if fit.layerwise_lr_decay is not None:
            groups = dict(layer_decay=fit.layerwise_lr_decay, num_layers=self.encoder.config.num_layers)
        optimizer = build_optimizer(model, fit.lr, fit.weight_decay, **(groups or {}))
        if fit.head_lr is not None:
            optimizer = _with_head_lr(optimizer, model, fit.head_lr / fit.lr)
        on_epoch = None
        if fit.gradual_unfreezing:
            L = self.encoder.config.num_layers
            on_epoch = GradualUnfreezing(model, [("encoder.embeddings.",)] +
                                         [(f"encoder.layers.{i}.",) for i in range(L)] +
                                         [("head.", "encoder.pooler.", "encoder.final_norm.", "encoder.lm_head.")])
        history: list[dict[str, Any]] = []
        tmp = None
        run_dir = fit.out_dir
        if run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="transferlm-fit-")
            run_dir = tmp.name

        def eval_fn(_model: nn.Module) -> dict[str, float]:
            metrics = dev_eval() if dev_eval is not None else {}
            rec = {"epoch": round(trainer.step / per_epoch, 3), "step": trainer.step, **metrics}
            history.append(rec)
            if stopper is not None:
                if self.dev_metric not in metrics:
                    raise KeyError(f"early stopping reads the dev metric {self.dev_metric!r}, but the "
                                   f"evaluation gave {sorted(metrics)}")
                if stopper.update(metrics[self.dev_metric], trainer.step, model):
                    trainer.request_stop()
            return metrics

        cfg = TrainerConfig(run_dir=str(run_dir), max_steps=steps, batch_size=1, lr=fit.lr,
                            weight_decay=fit.weight_decay, schedule=fit.schedule,
                            warmup_steps=int(fit.warmup_ratio * steps) if fit.schedule != "slanted_triangular" else 0,
                            max_grad_norm=fit.max_grad_norm, seed=fit.seed,
                            log_every=max(1, min(50, per_epoch)), save_every=fit.save_every,
                            eval_every=every if dev_eval is not None else 0,
                            progress_bar=fit.progress, precision="fp32")
        try:
            trainer = Trainer(model, data, FinetuneCollator(self.pad_id), cfg, optimizer=optimizer,
                              eval_fn=eval_fn if dev_eval is not None else None, on_epoch=on_epoch,
                              extra_state=stopper)
            last = trainer.fit()
            if stopper is not None:
                stopper.restore(model)
        finally:
            model.eval()
            for p in model.parameters():
                p.requires_grad_(True)
            if tmp is not None:
                tmp.cleanup()
        end = {"epoch": round(trainer.step / per_epoch, 3), "step": trainer.step, "budget": steps,
               "stopped_at": trainer.step if trainer.stopped else None,
               "best_step": stopper.best_step if stopper is not None else trainer.step}
        history.append({**end, **{f"train_{k}": v for k, v in last.items()}})
        self.history = history
        return history

    def _uses_pooler(self) -> bool:
        return False

    def _apply_freeze(self, fit: FitConfig) -> None:
        if fit.freeze is None:
            return
        if fit.freeze == "encoder":
            freeze_params(self.model, ["encoder."])
        elif fit.freeze == "embeddings":
            freeze_params(self.model, ["encoder.embeddings."])
        else:
            k, L = int(fit.freeze), self.encoder.config.num_layers
            if not 0 <= k <= L:
                raise ValueError(f"freeze={k}: the encoder has {L} layers")
            freeze_params(self.model, ["encoder.embeddings."] + [f"encoder.layers.{i}." for i in range(L - k)])

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_batches(self, features: Sequence[dict[str, Any]], run: Callable[[dict[str, Any]], list],
                        batch_size: int = 32) -> list:
        """run(batch) -> one result per row, over length-sorted batches; results in input order."""
        self.model.eval()
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        out: list = [None] * len(features)
        collate = FinetuneCollator(self.pad_id)
        dev = next(self.model.parameters()).device
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            batch = collate([features[i] for i in idx])
            batch = {key: v.to(dev) if isinstance(v, Tensor) else v for key, v in batch.items()}
            for i, r in zip(idx, run(batch)):
                out[i] = r
        return out

    # ------------------------------------------------------------------ saving and loading
    def _head_state(self) -> dict[str, Tensor]:
        """The head's tensors under their names in model.safetensors."""
        out = {}
        for k, v in self.head.state_dict().items():
            name = k[len("proj."):] if k.startswith("proj.") else k  # proj.weight -> classifier.weight
            out[self.hf_prefix + name] = v
        return out

    def _load_head_state(self, tensors: dict[str, Tensor], source: str) -> None:
        want = self.head.state_dict()
        sd = {}
        for k in want:
            name = self.hf_prefix + (k[len("proj."):] if k.startswith("proj.") else k)
            if name not in tensors:
                raise checkpoint.CheckpointError(f"{source}: missing head tensor {name!r}")
            sd[k] = tensors[name]
        self.head.load_state_dict(sd, strict=True)

    def _pipeline_config(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "task": self.task, "pipeline": type(self).__name__,
                "labels": self.labels, "options": asdict(self.options)}

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the HF-style folder atomically (built beside it, then renamed into place)."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            self._save_body(tmp)
            cfg = checkpoint.read_config(tmp)
            if self.hf_label_map:
                cfg["id2label"] = {str(i): lab for i, lab in enumerate(self.labels)}
                cfg["label2id"] = {lab: i for i, lab in enumerate(self.labels)}
            if self.hf_problem_type:
                cfg["problem_type"] = self.hf_problem_type
            checkpoint.write_json(tmp / checkpoint.CONFIG, cfg)
            self.tokenizer.save_pretrained(tmp)
            checkpoint.write_json(tmp / PIPELINE_FILE, self._pipeline_config())
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "Pipeline":
        """Load a folder written by `save_pretrained` (of this pipeline's task)."""
        pipe = load(folder)
        if not isinstance(pipe, cls):
            raise ValueError(f"{folder}: holds a {type(pipe).__name__} ({pipe.task}), not a {cls.__name__}")
        return pipe


def _with_head_lr(optimizer: torch.optim.Optimizer, model: TaskModel, scale: float) -> torch.optim.Optimizer:
    """The same AdamW groups with the head's parameters split off into groups at lr * scale."""
    head = {id(p) for p in model.head.parameters()}
    groups = []
    for g in optimizer.param_groups:
        rest = {k: v for k, v in g.items() if k != "params"}
        for is_head in (False, True):
            ps = [p for p in g["params"] if (id(p) in head) == is_head]
            if ps:
                groups.append({**rest, "params": ps, "lr": g["lr"] * (scale if is_head else 1.0),
                               "initial_lr": g["lr"] * (scale if is_head else 1.0)})
    import inspect

    accepted = inspect.signature(type(optimizer).__init__).parameters
    return type(optimizer)(groups, **{k: v for k, v in optimizer.defaults.items() if k in accepted})


def entities_in_texts(texts: Sequence[str], predict_words: Callable[[list[list[str]]], list[list[dict[str, Any]]]]
                      ) -> list[list[dict[str, Any]]]:
    """Run a word-level entity predictor on raw texts and map its word spans to character offsets.

    `predict_words(sentences)` returns, per sentence, entities with word `start` / `end` (end
    exclusive), `label` and `score`; the result has `start` / `end` as character offsets into each
    text (end exclusive) and `text` as the covered substring. Texts without words get no entities.
    """
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not one string")
    spans = [word_spans(t) for t in texts]  # per text: (word, char start, char end)
    keep = [i for i, sp in enumerate(spans) if sp]
    res = predict_words([[w for w, _, _ in spans[i]] for i in keep])
    out: list[list[dict[str, Any]]] = [[] for _ in texts]
    for i, row in zip(keep, res):
        for e in row:
            a, b = spans[i][e["start"]][1], spans[i][e["end"] - 1][2]
            out[i].append({"label": e["label"], "text": texts[i][a:b], "start": a, "end": b, "score": e["score"]})
    return out


def read_pipeline_config(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    f = folder / PIPELINE_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{folder}: no {PIPELINE_FILE}; not a folder written by a transferlm "
                                f"pipeline (fine-tune one with `transferlm finetune`)")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}:{e.lineno}: not valid JSON ({e.msg})") from None
    for key in ("task", "pipeline", "labels", "options"):
        if key not in cfg:
            raise ValueError(f"{f}:1: missing key {key!r}")
    return cfg


def load(folder: str | os.PathLike) -> Pipeline:
    """Any fine-tuned pipeline folder -> the right pipeline class, ready to predict."""
    from . import PIPELINES

    folder = Path(folder)
    from .ulmfit import is_lstm_classifier_folder

    if is_lstm_classifier_folder(folder):  # ULMFiT's classifier keeps its own folder format
        from .ulmfit import UlmfitClassifier

        return UlmfitClassifier.from_pretrained(folder)
    cfg = read_pipeline_config(folder)
    cls = PIPELINES.get(cfg["pipeline"])
    if cls is None:
        raise ValueError(f"{folder / PIPELINE_FILE}:1: unknown pipeline {cfg['pipeline']!r}; "
                         f"known: {sorted(PIPELINES)}")
    known = {f.name for f in fields(cls.Options)}
    opts = {k: v for k, v in cfg["options"].items() if k in known}
    ignored = sorted(set(cfg["options"]) - known)
    if ignored:
        warnings.warn(f"{folder / PIPELINE_FILE}: ignoring unknown options {ignored}", stacklevel=2)
    encoder = cls._load_body(folder)
    pipe = cls(encoder, load_tokenizer(folder), cfg["labels"], cls.Options(**opts))
    tensors, source = checkpoint.read_tensors(folder)
    pipe._load_head_state(tensors, source)
    pipe.model.eval()
    return pipe


def ensure_pooler(encoder: Encoder) -> None:
    """Give an encoder without pooler weights a fresh BERT pooler (what transformers does when a
    BertForSequenceClassification is built from a checkpoint without one)."""
    if encoder.pooler is None:
        encoder.pooler = Pooler(encoder.config)
        nn.init.normal_(encoder.pooler.dense.weight, std=encoder.config.initializer_range)
        nn.init.zeros_(encoder.pooler.dense.bias)
        encoder.config = encoder.config.replace(add_pooler=True)
