"""ULMFiT (Howard & Ruder 2018) on the LSTM LMs of models/lstm.py: LM training, target-domain LM
fine-tuning and the LSTM text classifier, all driven by the shared Trainer.

- `train_lm`: trains an `LSTMLanguageModel` with truncated BPTT (a general LM from scratch, or a
  loaded one on the target text: ULMFiT sec. 3.2). Optimizers: SGD with Zaremba et al.'s epoch
  decay (the PTB recipe), or Adam(0.7, 0.99) with slanted triangular rates and discriminative
  rates (ULMFiT's LM fine-tuning). Writes OUT/model (the LSTM folder), OUT/metrics.jsonl
  (train loss, valid perplexity every epoch) and OUT/checkpoints (a rerun resumes; `stop_at`
  ends a run early at a step, so a long run can be trained in resumable chunks).
- `LSTMClassifier` / `UlmfitClassifier`: the LM's embedding and LSTM layers under the concat-pooling
  head [h_T; maxpool(H); meanpool(H)] (heads/classification.py). Fine-tuned with the ULMFiT
  recipe: discriminative rates (each lower group lr / 2.6, sec. 3.2 eq. 2), slanted triangular
  rates (cut_frac 0.1, ratio 32, eq. 3) and gradual unfreezing (one more group from the top each
  epoch, sec. 3.3). `transferlm finetune --task classify --model LSTM_DIR` lands here.
  A saved classifier is a folder: config.json (`"model_type": "lstm_classifier"`, the LM config,
  labels, max_length), model.safetensors, vocab.txt.

Does not: BPT3C (documents are truncated to max_length words, ULMFiT reads them in chunks),
ULMFiT's two-layer head (batch norm, then the shared single linear head), bidirectional
ensembles, or tagging with an LSTM.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..fileio import atomic_write_text
from ..heads.classification import ClassificationHead
from ..models.lstm import (EpochDecay, LSTMConfig, LSTMLanguageModel, StreamLM, StreamState, TBPTTBlocks,
                           WordVocab, first_item, folder_model_type, perplexity)
from ..training.optim import GradualUnfreezing, build_optimizer
from ..training.schedules import build_scheduler
from ..training.trainer import Trainer, TrainerConfig, seed_everything

CLASSIFIER_TYPE = "lstm_classifier"


def is_lstm_classifier_folder(folder: str | os.PathLike) -> bool:
    """A folder saved by `UlmfitClassifier.save_pretrained` (config.json model_type "lstm_classifier")."""
    return folder_model_type(folder) == CLASSIFIER_TYPE
ULMFIT_LAYER_DECAY = 2.6  # ULMFiT sec. 3.2: eta^{l-1} = eta^l / 2.6
ULMFIT_BETAS = (0.7, 0.99)  # ULMFiT sec. 4: Adam with beta1 0.7, beta2 0.99


# --------------------------------------------------------------------------------------- LM training

@dataclass
class LMTrainConfig:
    out: str = "runs/lstm"
    epochs: float = 13.0  # Zaremba et al. small: 13
    batch_size: int = 20  # parallel streams
    bptt: int = 20  # unrolled steps
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 1.0  # SGD; the zaremba-small preset: 20 on our mean loss (cli/lm.py)
    schedule: str = "epoch_decay"  # epoch_decay (Zaremba) | slanted_triangular | constant
    decay_start: int = 4  # epoch_decay: lr * factor^max(epoch + 1 - decay_start, 0) (Zaremba small: 4)
    decay_factor: float = 0.5
    layer_decay: float | None = None  # discriminative rates: lower group lr / layer_decay (ULMFiT 2.6)
    weight_decay: float = 0.0
    max_grad_norm: float = 5.0  # Zaremba: clip the global norm at 5
    precision: str = "fp32"
    seed: int = 0
    stop_at: int | None = None  # end this run at this step (resume later with the same out)
    save_every: int = 0
    log_every: int = 100
    eval_batch_size: int = 10
    eval_bptt: int = 35
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if self.schedule not in ("epoch_decay", "slanted_triangular", "constant"):
            raise ValueError(f"schedule must be epoch_decay, slanted_triangular or constant, not {self.schedule!r}")


def _lm_param_groups_optimizer(model: nn.Module, num_layers: int, cfg_lr: float, optimizer: str,
                               weight_decay: float, layer_decay: float | None) -> torch.optim.Optimizer:
    """Adam(W) or SGD over groups; with layer_decay d, group g (embed 0, LSTM layer l = l + 1, the
    rest L + 1) gets lr / d^(L + 1 - g) (ULMFiT eq. 2)."""
    kw: dict[str, Any] = {}
    if layer_decay is not None:
        kw = {"layer_decay": 1.0 / layer_decay, "num_layers": num_layers}
    if optimizer == "adam":
        return build_optimizer(model, cfg_lr, weight_decay, betas=ULMFIT_BETAS, eps=1e-8, **kw)
    groups = build_optimizer(model, cfg_lr, weight_decay, **kw).param_groups  # the same grouping
    return torch.optim.SGD([{"params": g["params"], "lr": g["lr"], "weight_decay": g["weight_decay"]}
                            for g in groups], lr=cfg_lr)


def train_lm(lm: LSTMLanguageModel, vocab: WordVocab, train_ids: Tensor, valid_ids: Tensor | None,
             cfg: LMTrainConfig) -> dict[str, float]:
    """Train `lm` in place; returns the last logged metrics plus the valid perplexity (if any)."""
    data = TBPTTBlocks(train_ids, cfg.batch_size, cfg.bptt)
    total = max(1, math.floor(len(data) * cfg.epochs))
    stop = min(total, cfg.stop_at) if cfg.stop_at else total
    model = StreamLM(lm)
    opt = _lm_param_groups_optimizer(model, lm.config.num_layers, cfg.lr, cfg.optimizer, cfg.weight_decay,
                                     cfg.layer_decay)
    if cfg.schedule == "epoch_decay":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, EpochDecay(len(data), cfg.decay_start, cfg.decay_factor))
    else:
        sched = build_scheduler(opt, cfg.schedule, total_steps=total)
    tcfg = TrainerConfig(run_dir=cfg.out, max_steps=stop, batch_size=1, lr=cfg.lr, max_grad_norm=cfg.max_grad_norm,
                         precision=cfg.precision, seed=cfg.seed, log_every=cfg.log_every, save_every=cfg.save_every,
                         eval_every=len(data) if valid_ids is not None else 0, progress_bar=cfg.progress,
                         shuffle=False, device="cpu" if not torch.cuda.is_available() else "auto")

    def eval_fn(m: nn.Module) -> dict[str, float]:
        ppl = perplexity(m.lm, valid_ids, cfg.eval_batch_size, cfg.eval_bptt)
        return {"ppl": ppl}

    trainer = Trainer(model, data, first_item, tcfg, optimizer=opt, scheduler=sched,
                      eval_fn=eval_fn if valid_ids is not None else None, on_epoch=model.on_epoch,
                      extra_state=StreamState(model))
    last = dict(trainer.fit())
    last["step"] = trainer.step
    last["total_steps"] = total
    if trainer.step >= total:
        lm.save_pretrained(Path(cfg.out) / "model", vocab)
    return last


# --------------------------------------------------------------------------------------- classifier

class LSTMClassifier(nn.Module):
    """ids (B, T) right-padded, mask (B, T) -> logits (B, K): the LM's encoder + concat pooling.

    Parameter names keep the LM's (embed.*, layers.N.*), so a LM's weights load by name and
    `optim.default_layer_id` finds the layer groups; the head is head.*.
    """

    def __init__(self, config: LSTMConfig, num_labels: int, head_dropout: float = 0.1):
        super().__init__()
        self.config = config
        lm = LSTMLanguageModel(config)
        self.embed, self.layers = lm.embed, lm.layers
        self._lm = [lm]  # the encoding code (dropouts, weight drop) without registering the decoder
        self.head = ClassificationHead(config.output_size, num_labels, pooling="concat", dropout=head_dropout)
        # ULMFiT's classifier starts with batch normalisation of the pooled features (fastai's
        # PoolingLinearClassifier): LSTM outputs are small, and an unnormalised linear head barely learns
        self.head_norm = nn.BatchNorm1d(3 * config.output_size)

    def load_lm(self, lm: LSTMLanguageModel) -> None:
        self.embed.load_state_dict(lm.embed.state_dict())
        self.layers.load_state_dict(lm.layers.state_dict())

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        lm = self._lm[0]
        lm.train(self.training)
        raw, dropped, _ = lm.encode(input_ids)  # right padding: the real positions never see a pad
        pooled = self.head_norm(self.head.pool(dropped[-1], attention_mask))  # (B, 3C)
        return self.head(dropped[-1], attention_mask, pooled=pooled)  # (B, K)


class _ClassifierStep(nn.Module):
    def __init__(self, clf: LSTMClassifier):
        super().__init__()
        self.clf = clf

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = self.clf(batch["input_ids"], batch["attention_mask"])
        loss = self.clf.head.loss(logits, batch["labels"])
        return {"loss": loss, "accuracy": (logits.argmax(-1) == batch["labels"]).float().mean()}


class UlmfitClassifier:
    """Texts -> labels with an LSTM encoder: `new(lm_folder, labels)`, `fit`, `predict`, `evaluate`."""

    task = "classify"

    def __init__(self, model: LSTMClassifier, vocab: WordVocab, labels: Sequence[str], max_length: int = 400):
        self.model, self.vocab, self.labels, self.max_length = model, vocab, list(labels), max_length
        self.label_id = {y: i for i, y in enumerate(self.labels)}

    @classmethod
    def new(cls, lm_folder: str | os.PathLike | None, labels: Sequence[str], *, config: LSTMConfig | None = None,
            vocab: WordVocab | None = None, seed: int = 0, max_length: int = 400,
            pretrained: bool = True) -> "UlmfitClassifier":
        """From a saved LM folder (pretrained=False: its config and vocab, fresh weights: the from-scratch twin)."""
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError("need at least two distinct labels")
        if lm_folder is not None:
            lm, vocab = LSTMLanguageModel.from_pretrained(lm_folder)
            config = lm.config
        if config is None or vocab is None:
            raise ValueError("give an LM folder, or a config and a vocabulary")
        seed_everything(seed)
        clf = LSTMClassifier(config, len(labels))
        if lm_folder is not None and pretrained:
            clf.load_lm(lm)
        return cls(clf, vocab, labels, max_length)

    # -------------------------------------------------------------------------------- data
    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for line in text.splitlines():
            if line.strip():
                ids.extend(self.vocab.encode_line(line, self.model.config.tokenizer))
        return (ids or [1])[:self.max_length]

    def features(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for i, t in enumerate(texts):
            f: dict[str, Any] = {"input_ids": self.encode(t)}
            if labels is not None:
                if labels[i] not in self.label_id:
                    raise ValueError(f"example {i + 1}: label {labels[i]!r} is not one of {self.labels}")
                f["label"] = self.label_id[labels[i]]
            out.append(f)
        return out

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Tensor]:
        T = max(len(f["input_ids"]) for f in items)
        ids = torch.zeros(len(items), T, dtype=torch.long)  # pad with <unk> (masked out)
        mask = torch.zeros(len(items), T, dtype=torch.bool)
        for b, f in enumerate(items):
            ids[b, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[b, :len(f["input_ids"])] = True
        out = {"input_ids": ids, "attention_mask": mask}
        if "label" in items[0]:
            out["labels"] = torch.tensor([f["label"] for f in items])
        return out

    # -------------------------------------------------------------------------------- training
    def fit(self, texts: Sequence[str], labels: Sequence[str], *, dev: tuple | None = None, epochs: float = 20.0,
            lr: float = 0.01, batch_size: int = 8, layer_decay: float | None = ULMFIT_LAYER_DECAY,
            gradual_unfreezing: bool = True, schedule: str = "slanted_triangular", weight_decay: float = 0.01,
            seed: int = 0, out_dir: str = "runs/ulmfit", progress: bool = True, save_every: int = 0,
            **_ignored: Any) -> dict[str, float]:
        """ULMFiT's classifier fine-tuning; dev = (texts, labels) or (texts, pairs, labels) is
        scored every epoch and logged (eval_accuracy in OUT/metrics.jsonl)."""
        feats = self.features(texts, labels)
        steps_per_epoch = max(1, len(feats) // batch_size)
        total = max(1, math.floor(steps_per_epoch * epochs))
        L = self.model.config.num_layers
        step_model = _ClassifierStep(self.model)
        kw: dict[str, Any] = {"layer_decay": 1.0 / layer_decay, "num_layers": L} if layer_decay else {}
        # names seen by the optimizer: clf.embed / clf.layers.N / clf.head -> strip "clf." for the layer id
        from ..training.optim import default_layer_id
        kw["layer_id"] = lambda name, n: default_layer_id(name.removeprefix("clf."), n)
        if not layer_decay:
            kw.pop("layer_id")
        opt = build_optimizer(step_model, lr, weight_decay, betas=ULMFIT_BETAS, eps=1e-8, **kw)
        sched = build_scheduler(opt, schedule, total_steps=total)
        groups = ["clf.embed"] + [f"clf.layers.{i}." for i in range(L)] + ["clf.head"]
        on_epoch = GradualUnfreezing(step_model, groups) if gradual_unfreezing else None
        dev_feats = None
        if dev is not None:
            dev_texts, dev_labels = dev[0], dev[-1]
            dev_feats = self.features(dev_texts, dev_labels)

        def eval_fn(_m: nn.Module) -> dict[str, float]:
            self._calibrate_norm(feats, batch_size)
            return self._score(dev_feats)

        tcfg = TrainerConfig(run_dir=out_dir, max_steps=total, batch_size=batch_size, lr=lr, seed=seed,
                             log_every=max(1, steps_per_epoch), max_grad_norm=1.0, precision="fp32",
                             eval_every=steps_per_epoch if dev_feats else 0, progress_bar=progress,
                             save_every=save_every, device="cpu" if not torch.cuda.is_available() else "auto")
        trainer = Trainer(step_model, feats, self.collate, tcfg, optimizer=opt, scheduler=sched,
                          eval_fn=eval_fn if dev_feats else None, on_epoch=on_epoch)
        last = trainer.fit()
        self._calibrate_norm(feats, batch_size)
        for p in self.model.parameters():  # leave the model fully trainable after gradual unfreezing
            p.requires_grad_(True)
        self.model.eval()
        return last

    @torch.no_grad()
    def _calibrate_norm(self, feats: list[dict[str, Any]], batch_size: int) -> None:
        """Batch-norm statistics of the final weights over the whole training set (precise BN):
        the running averages lag behind weights that move at ULMFiT's rates, and on few examples
        that lag alone can turn a fitted classifier into chance at evaluation."""
        was = self.model.training
        self.model.eval()
        norm = self.model.head_norm
        norm.reset_running_stats()
        momentum, norm.momentum = norm.momentum, None  # None: the cumulative average over the batches
        norm.train()
        dev = next(self.model.parameters()).device
        for k in range(0, len(feats), batch_size):
            chunk = feats[k:k + batch_size]
            if len(chunk) < 2:
                continue
            b = self.collate([{"input_ids": f["input_ids"]} for f in chunk])
            self.model(b["input_ids"].to(dev), b["attention_mask"].to(dev))
        norm.momentum = momentum
        self.model.train(was)

    # -------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def _logits(self, feats: list[dict[str, Any]], batch_size: int = 32) -> Tensor:
        self.model.eval()
        dev = next(self.model.parameters()).device
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
        out = torch.zeros(len(feats), len(self.labels))
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            b = self.collate([{"input_ids": feats[i]["input_ids"]} for i in idx])
            out[idx] = self.model(b["input_ids"].to(dev), b["attention_mask"].to(dev)).float().cpu()
        return out

    def _score(self, feats: list[dict[str, Any]]) -> dict[str, float]:
        pred = self._logits(feats).argmax(-1)
        gold = torch.tensor([f["label"] for f in feats])
        return {"accuracy": float((pred == gold).float().mean())}

    def predict(self, texts: Sequence[str], pairs: Any = None, batch_size: int = 32) -> list[dict[str, Any]]:
        """[{"label", "score"}] per text, as TextClassifier.predict (so `transferlm predict` serves both)."""
        if pairs is not None:
            raise ValueError("the LSTM classifier takes single texts, not pairs")
        probs = self.predict_proba(texts)
        return [{"label": self.labels[int(p.argmax())], "score": float(p.max())} for p in probs]

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        return self._logits(self.features(texts)).softmax(-1)

    def evaluate(self, texts: Sequence[str], labels: Sequence[str], pairs: Any = None) -> dict[str, float]:
        if pairs is not None:
            raise ValueError("the LSTM classifier takes single texts, not pairs")
        return self._score(self.features(texts, labels))

    # -------------------------------------------------------------------------------- save / load
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        from ..training.checkpointing import atomic_save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_model(self.model, folder / "model.safetensors")
        self.vocab.save(folder / "vocab.txt")
        cfg = {"model_type": CLASSIFIER_TYPE, "lm": asdict(self.model.config), "labels": self.labels,
               "max_length": self.max_length, "head_dropout": self.model.head.dropout.p}
        atomic_write_text(folder / "config.json", json.dumps(cfg, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "UlmfitClassifier":
        from safetensors.torch import load_model

        folder = Path(folder)
        f = folder / "config.json"
        raw = json.loads(f.read_text(encoding="utf-8"))
        if raw.get("model_type") != CLASSIFIER_TYPE:
            raise ValueError(f"{f}: model_type is {raw.get('model_type')!r}, expected {CLASSIFIER_TYPE!r}")
        known = {fl.name for fl in fields(LSTMConfig)}
        config = LSTMConfig(**{k: v for k, v in raw["lm"].items() if k in known})
        model = LSTMClassifier(config, len(raw["labels"]), raw.get("head_dropout", 0.1))
        load_model(model, str(folder / "model.safetensors"))
        return cls(model.eval(), WordVocab.load(folder / "vocab.txt"), raw["labels"], raw["max_length"])
