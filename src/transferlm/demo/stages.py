"""The four stages of `transferlm demo`, each resumable.

1. vocabulary: our WordPiece learner on unlabeled text (PTB + the BBC train split's articles);
2. pretraining: a small BERT (MLM + NSP, BERT sec. 3.1) with that vocabulary for a fixed time
   budget, built by objectives/builder.py (the builder `transferlm pretrain` uses: model, data,
   collator, held-out evaluator, export) and trained by the shared Trainer; the held-out MLM
   accuracy (PTB valid) is measured every tenth of the run and printed as it rises;
3. fine-tuning on BBC News with k labels per topic, four ways: TF-IDF + logistic regression
   (scikit-learn), and pipelines.TextClassifier over (a) the same architecture randomly
   initialised, (b) the model stage 2 just pretrained, (c) the real pretrained MiniLM; each on
   `samples` draws of the k labels (the table shows the mean, the figures the first draw); then, on
   the same draws and test articles (rows.py): ULMFiT on an LSTM LM pretrained here after stage 2
   (same unlabeled text) and the same LSTM classifier from random init, GloVe 6B 50d features
   (frozen, fine-tuned), and SmolLM2-135M few-shot prompting with contextual calibration;
4. the report (report.py): one table and the PNG figures.

Resume: the run folder holds `demo.json` (the options that decide the results) and one marker
per finished stage in `stages/` (its results, written atomically, last). A re-run skips what has a
marker; a stage that was interrupted continues from the Trainer's checkpoints (pretraining and
each fine-tuning run checkpoint as they go). A time budget is turned into a step count once, at
the start of stage 2 (measured on this machine), and stored, so a resumed run does exactly the
steps the first one planned.

Does not: parse the command line (cli/demo.py), draw figures (report.py), or hold any model,
loss or training loop of its own (pretraining: objectives/builder.py + training/;
fine-tuning: pipelines/).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..fileio import atomic_write_text
from ..objectives.pretraining import MLMEvaluator
from . import rows
from .data import DemoData, corpus_text

PRETRAIN_PRESET = "bert"  # stage 2's objective: MLM + NSP (objectives/builder.py's table)
METHODS = ("tfidf", "random", "pretrained", "minilm", "lstm_random", "ulmfit", "bag_random", "word2vec", "glove",
           "glove_finetune", "prompting")  # the table's rows, in order (rows.py has the last seven)
METHOD_TITLES = {
    "tfidf": "TF-IDF + logistic regression",
    "random": "small BERT, random init",
    "pretrained": "small BERT, pretrained here",
    "minilm": "MiniLM (all-MiniLM-L6-v2)",
    "lstm_random": "same LSTM classifier, random init",
    "ulmfit": "ULMFiT, LSTM LM pretrained here",
    "glove": "GloVe 6B 50d features",
    "glove_finetune": "GloVe 6B 50d, fine-tuned",
    "prompting": "SmolLM2-135M prompting, k-shot, calibrated",
    "bag_random": "bag of word vectors, random init",
    "word2vec": "word2vec trained here, fine-tuned",
}


@dataclass
class DemoConfig:
    out: str = "runs/demo"  # the run folder: stages/, tokenizer/, pretrain/, finetune/, models/, report/
    quick: bool = False  # the CI-sized run (about 2 minutes): see `quick_config`
    seed: int = 0  # the BBC split, the label sample, initialisations and data order
    # -- stage 1
    vocab_size: int = 8000  # BERT used 30k pieces for 3.3B words; 8k suits ~2M words and a tiny model
    # Pairs are merged by frequency (tokenizers' WordPieceTrainer): 1.074 pieces per PTB valid word
    # at 8k pieces on this text, as MiniLM's 30k (1.071). The WordPiece paper's likelihood score
    # freq(ab) / (freq(a) freq(b)) favours pairs of rare symbols and needed a floor of 200
    # occurrences to reach 1.25 (with the floor at 2 it cut "the" into "th ##e": 3.05).
    vocab_score: str = "frequency"  # learn_wordpiece's pair score: frequency | likelihood
    vocab_min_frequency: int = 2  # tokenizers' default
    # -- stage 2
    model: str = "bert-tiny"  # models/ preset pretrained here: 2 layers, 128 wide (Turc et al. 2019)
    budget_minutes: float = 4.0  # wall time for pretraining; turned into a step count at the start
    # Pretraining examples of 64 tokens in batches of 16: in a few CPU minutes the number of updates
    # is what lifts the MLM accuracy off the unigram plateau. Measured here (3 min, same data): 1,204
    # steps of 16 x 64 reach 11.4% held-out MLM accuracy; 681 steps of 32 x 128 (4 min) reach 7.9%.
    # (BERT pretrained 90% of its steps at 128, sec. A.2; it had 1M steps of 256.)
    max_length: int = 64
    batch_size: int = 16
    lr: float = 1e-3  # tiny models take large rates (BERT-base's 1e-4 barely moves bert-tiny in minutes);
    # 3e-3 diverges here (1,800 steps: held-out MLM accuracy stays at the 4.0% unigram baseline)
    warmup_fraction: float = 0.06  # linear warmup over the first 6% of the steps (RoBERTa's ratio)
    heldout_examples: int = 256  # PTB valid NSP examples scored for the held-out MLM accuracy
    # bf16 autocast for pretraining where the CPU (or GPU) has bf16 matmuls, else fp32. Measured here
    # (benchmarks/pretrain_step.py, docs/benchmarks.md, 1 thread): 1.52x the fp32 steps per minute at
    # 16 x 64, and 32.5% held-out MLM accuracy in a 4-minute budget against 27.4% in fp32.
    pretrain_precision: str = "auto"  # auto | bf16 | fp32
    # -- stage 3
    labels_per_class: int = 10  # the few-label setting of the story (and as many again for dev)
    # One sample of 50 labels moves the small BERTs' accuracy by up to +-10 points (docs/demo_output.md):
    # every method is fine-tuned on this many samples and the table shows the mean (and sd).
    samples: int = 3
    finetune_max_length: int = 128  # an article's headline and first paragraphs
    # All three encoders alike: BERT's own recipe (sec. 4.1), the [CLS] state through the pooler that
    # NSP pretraining trains, as pipelines.TextClassifier's default. Measured on 3 label samples and 250
    # train-split articles (docs/demo_output.md): pretrained here 0.577 (3k steps) / 0.683 (12k) vs
    # random init 0.556; with mean pooling random init reaches 0.669 and the pretrained model 0.475 /
    # 0.631: mean pooling lets a random model learn keywords, the pooler is what pretraining trains.
    # (MiniLM fine-tunes better through its pooler too: benchmarks.md, BBC.)
    pooling: str = "cls"
    finetune_batch_size: int = 16  # BERT sec. A.3 grid {16, 32}; 16 makes more steps of 50 examples
    # The small BERTs (random and pretrained alike, so only the start differs). Chosen per model on
    # held-out train-split articles, never test (docs/demo_output.md): random init 1e-3 (0.75) >
    # 3e-3 (0.68); pretrained here 1e-3 (0.45) > 3e-4 (0.44) > 1e-4 (0.42, 240 steps) > 3e-3 (0.40)
    # > 1e-2 (0.20). Both are best at 1e-3, so one rate serves both.
    small_lr: float = 1e-3
    small_min_steps: int = 120  # updates for the small BERTs (cheap: ~0.5M parameters outside embeddings)
    minilm_lr: float = 1e-4  # pipelines' default for MiniLM-size encoders
    minilm_min_steps: int = 30  # MiniLM updates: ~8 epochs of 50 examples (its training loss is ~0.1 by
    # then), the bulk of stage 3's time
    # -- the LSTM rows (rows.py; issue #13): a word-level LSTM LM pretrained here after stage 2
    # LSTM LM budgets. On 250 held-out train-split articles, 3 samples (docs/demo_output.md): an LM of
    # 763 + 254 steps (what 3 + 1 min gave on one thread; 1.5 + 0.5 min give ~690 + 230 on two quiet
    # threads at 0.13 s a step) gave ULMFiT 0.597 against 0.388 for its random-init twin.
    lstm_budget_minutes: float = 1.5  # the general LM (PTB + BBC train split), turned into steps at its start
    lstm_target_minutes: float = 0.5  # ULMFiT's target-LM fine-tuning on the BBC train split's articles
    lstm_vocab: int = 10000  # words ("words" tokenizer: lower-cased, digits -> N), at least 2 occurrences
    lstm_emb: int = 100  # tied input / output embeddings
    lstm_hidden: int = 256
    lstm_layers: int = 2
    lstm_batch_size: int = 32  # parallel TBPTT streams
    lstm_bptt: int = 35
    lstm_optimizer: str = "sgd"  # the general LM: sgd (Zaremba's constant rate, clip 0.25) | adam (slanted triangular)
    lstm_lr: float = 20.0  # sgd: 20 (zaremba-small); adam: 1e-2 (3e-3 left a 108-step LM at the unigram
    # model's perplexity: 657 vs 602 on PTB valid; 1e-2, 351 steps: 367)
    lstm_bf16: bool = True  # the LSTM LMs in bf16 autocast where pretraining uses it (pretrain_precision)
    lstm_target_lr: float = 4e-3  # the target LM: ULMFiT's 4e-3, discriminative rates / 2.6
    lstm_heldout_lines: int = 1000  # PTB valid lines for the general LM's held-out perplexity
    # The classifier, both twins alike (ULMFiT recipe, pipelines/ulmfit.py). Measured on 250 held-out
    # train-split articles, never test (docs/demo_output.md), 128 words, 12 epochs, lr 0.01, 3 label
    # samples: after an Adam LM of 351 + 25 steps (held-out PTB perplexity 367) ULMFiT 0.400 vs random
    # init 0.392; after the SGD LM of 763 + 254 steps (perplexity 206) 0.597 vs 0.388.
    lstm_max_length: int = 128  # words of an article the classifier reads (the small BERTs read 128 pieces)
    lstm_clf_lr: float = 0.01  # ULMFiT's classifier rate (pipelines/ulmfit.py's default)
    lstm_clf_epochs: int = 12  # gradual unfreezing reaches the embeddings at epoch 4 (4 groups)
    lstm_clf_batch_size: int = 8
    # -- GloVe rows: bag of vectors + linear layer (embeddings/static.py's defaults)
    glove_epochs: int = 100
    glove_lr: float = 5e-3
    glove_max_len: int = 512
    # -- word2vec trained here (skip-gram, embeddings/word2vec.py) on the same unlabeled text, initialising
    # the GloVe rows' bag-of-vectors classifier (fine-tuned), beside that classifier from random vectors.
    # On 250 held-out train-split articles, 3 samples: random vectors 0.873, word2vec FROZEN 0.621.
    w2v_dim: int = 50  # GloVe 6B's 50d
    w2v_epochs: int = 3
    w2v_min_count: int = 5  # gensim's default
    # -- the prompting row (prompting/; issue #14)
    # Demonstrations per topic, from the sample's labelled articles. Chosen on 100 held-out train-split
    # articles, never test (docs/demo_output.md), 3 label samples, 64 tokens: 1 per topic 0.780 calibrated
    # (0.493 raw), 2 per topic 0.753 (0.460) at twice the cached prompt (~740 tokens) and ~1.3x the time
    # per article. Calibration always: raw 1-shot scores lean on one topic (Zhao et al. 2021).
    prompt_shots: int = 1
    # Every text (demonstrations and test articles) clipped to its first N SmolLM2 tokens (~45 words: the
    # headline and first sentence or two): 444 test articles x 3 samples are the cost that decides it.
    prompt_max_tokens: int = 64
    prompt_bf16: bool = True  # SmolLM2 scoring in bf16 autocast where pretraining uses it (pretrain_precision)
    test_per_class: int | None = None  # score only the first n test articles per topic (None: all)
    ptb_fraction: float = 1.0  # the share of PTB train used as unlabeled text
    train_articles: int | None = None  # BBC train articles used as unlabeled text (None: all)
    progress: bool = True  # progress bars on stderr

    def __post_init__(self) -> None:
        if self.lstm_optimizer not in ("sgd", "adam"):
            raise ValueError(f"lstm_optimizer must be sgd or adam, not {self.lstm_optimizer!r}")

    def results_key(self) -> dict[str, Any]:
        """The options that decide the results (all but where they go and how they are shown)."""
        d = asdict(self)
        d.pop("out")
        d.pop("progress")
        return d


def quick_config(**overrides: Any) -> DemoConfig:
    """`--quick`: every stage and row, shrunk to about 2 minutes (a smoke test, not a result)."""
    base = dict(quick=True, vocab_size=2000, budget_minutes=0.25, heldout_examples=32,
                test_per_class=12, ptb_fraction=0.2, train_articles=300, labels_per_class=5, finetune_max_length=64,
                samples=2,
                small_min_steps=30, minilm_min_steps=8,
                lstm_budget_minutes=0.1, lstm_target_minutes=0.05, lstm_vocab=3000, lstm_emb=50, lstm_hidden=64,
                lstm_bptt=20, lstm_heldout_lines=200, lstm_max_length=64, lstm_clf_epochs=4, glove_epochs=30,
                glove_max_len=128, prompt_max_tokens=24)
    base.update(overrides)
    return DemoConfig(**base)


# ------------------------------------------------------------------------------------------ helpers

def say(msg: str) -> None:
    """Print between progress bars without breaking them."""
    tqdm.write(msg)


class Markers:
    """stages/<name>.json: present once the stage has finished; holds its results."""

    def __init__(self, out: Path):
        self.dir = out / "stages"

    def get(self, name: str) -> dict[str, Any] | None:
        f = self.dir / f"{name}.json"
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}:{e.lineno}: a stage marker that is not valid JSON ({e.msg}); "
                             f"delete it to redo that stage") from None

    def put(self, name: str, result: dict[str, Any]) -> None:
        atomic_write_text(self.dir / f"{name}.json", json.dumps(result, indent=1) + "\n")


def check_or_write_options(cfg: DemoConfig) -> None:
    """Write OUT/demo.json, or check that the run folder was made with the same options."""
    from ..cli import UserError

    out = Path(cfg.out)
    f = out / "demo.json"
    key = cfg.results_key()
    if f.exists():
        try:
            old = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}:{e.lineno}: not valid JSON ({e.msg})") from None
        diff = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in key.items() if old.get(k) != v]
        if diff:
            raise UserError(f"{out} holds a demo run made with other options ({'; '.join(diff)}): "
                            f"give another --out, or delete {out} to start over")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(key, indent=1) + "\n")


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _pieces_per_word(tok, texts: list[str]) -> float:
    encs = tok.encode_batch(texts, add_special_tokens=False, padding=None)
    n_tokens = sum(len(e.ids) for e in encs)
    n_words = sum(len({w for w in e.word_ids if w is not None}) for e in encs)
    return n_tokens / max(n_words, 1)


# ------------------------------------------------------------------------------ stage 1: vocabulary

SAMPLES = [
    "The unbelievably fast transformers tokenized everything.",
    "Shareholders rejected the merger after the chancellor's budget statement.",
]


def stage_vocabulary(cfg: DemoConfig, data: DemoData, markers: Markers) -> dict[str, Any]:
    from ..data import assets
    from ..tokenization.io import load_tokenizer
    from ..tokenization.wordpiece import WordPieceTokenizer

    out = Path(cfg.out)
    done = markers.get("1_vocabulary")
    if done is not None:
        say(f"[1/4] vocabulary: done ({done['vocab_size']:,} pieces in {out / 'tokenizer'})")
        return done
    texts = data.unlabeled
    n_chars = sum(len(t) for t in texts)
    say(f"[1/4] learning a WordPiece vocabulary of up to {cfg.vocab_size:,} pieces on {len(texts):,} unlabeled "
        f"texts ({n_chars / 1e6:.1f} M characters: PTB train + the BBC train split's articles; merging "
        f"the most {'frequent' if cfg.vocab_score == 'frequency' else 'likely'} pairs seen at least "
        f"{cfg.vocab_min_frequency} times)")
    t0 = time.perf_counter()
    tok = WordPieceTokenizer.train_from_iterator(texts, cfg.vocab_size, lowercase=True,
                                                 min_frequency=cfg.vocab_min_frequency, score=cfg.vocab_score,
                                                 progress=cfg.progress)
    seconds = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix=".tokenizer.", suffix=".tmp", dir=out))
    tok.save_pretrained(tmp)
    _replace_dir(tmp, out / "tokenizer")

    minilm = load_tokenizer(assets.path("minilm"))
    heldout = [ln for ln in assets.ptb_text("valid").splitlines() if ln.strip()]
    ours_ppw, ref_ppw = _pieces_per_word(tok, heldout), _pieces_per_word(minilm, heldout)
    vocab = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    whole = [t for t in vocab if not t.startswith("##") and len(t) > 1 and not t.startswith("[")]
    say(f"      learned {tok.vocab_size:,} pieces in {seconds:.1f} s; saved to {out / 'tokenizer'}")
    say(f"      last pieces learned: {', '.join(vocab[-10:])}")
    say(f"      longest whole-word pieces: {', '.join(sorted(whole, key=len)[-6:])}")
    say(f"      held-out PTB valid: {ours_ppw:.3f} pieces per word with ours, "
        f"{ref_ppw:.3f} with MiniLM's 30,522-piece vocabulary")
    for s in SAMPLES:
        say(f"        ours  : {' '.join(tok.encode(s).tokens)}")
        say(f"        MiniLM: {' '.join(minilm.encode(s).tokens)}")
    result = {"vocab_size": tok.vocab_size, "learn_seconds": round(seconds, 2), "texts": len(texts),
              "pieces_per_word_ours": round(ours_ppw, 4), "pieces_per_word_minilm": round(ref_ppw, 4)}
    markers.put("1_vocabulary", result)
    return result


# ------------------------------------------------------------------------------ stage 2: pretraining

def _heldout(cfg: DemoConfig, folder: Path, p) -> MLMEvaluator:
    """The held-out MLM evaluator of pretraining `p` on PTB valid (tokenized once into
    folder/heldout_corpus); built by the pretraining builder like `transferlm pretrain --eval-data`."""
    from ..data import assets
    from ..objectives.builder import token_corpus

    text = folder / "heldout.txt"
    if not text.exists():
        lines = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()]
        atomic_write_text(text, corpus_text(lines, []))
    held = token_corpus([str(text)], folder / "heldout_corpus", p.tokenizer, progress=False)
    return p.evaluator(held, n_examples=cfg.heldout_examples, batch_size=32)


def rare_embedding_cosine(weight: torch.Tensor, counts: np.ndarray, n: int = 1000) -> float:
    """Mean pairwise cosine between the input embeddings of the n rarest pieces seen in the corpus.

    With the MLM decoder tied to the input embeddings, every step pushes the output embedding of
    each piece that was *not* the answer away from the hidden state; rare pieces are almost never
    the answer, so early in pretraining they all drift the same way and become near-parallel
    (the representation degeneration of Gao et al. 2019, "Representation Degeneration Problem in
    Training Natural Language Generation Models", sec. 3). Random init gives ~0.

    Reported as a measurement, not as the reason the few-label fine-tuning of the model
    pretrained here trails random init: with the decoder untied this cosine stays ~0.00 and
    fine-tuning is no better, and pretrained word embeddings under freshly initialised blocks
    fine-tune as well as random init (docs/demo_output.md, "Why the pretrained row is low").
    """
    seen = np.flatnonzero(counts > 0)
    ids = seen[np.argsort(counts[seen], kind="stable")][: min(n, max(2, len(seen) // 4))]
    x = torch.nn.functional.normalize(weight.detach()[torch.as_tensor(ids)].float(), dim=1)  # (n, C)
    sim = x @ x.T  # (n, n)
    k = len(ids)
    return float((sim.sum() - sim.diagonal().sum()) / (k * k - k))


def pretrain_precision(cfg: DemoConfig) -> str:
    """`cfg.pretrain_precision` with "auto" resolved: bf16 where this machine multiplies in bf16
    natively (a CUDA GPU that supports it, or a CPU with oneDNN bf16: AVX512-BF16 / AMX), else fp32
    (emulated bf16 would be slower than fp32)."""
    if cfg.pretrain_precision != "auto":
        return cfg.pretrain_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return "fp32"


def _steps_for_budget(model, dataset, collate, cfg: DemoConfig, precision: str) -> tuple[int, float]:
    """Time forward + backward on real batches (after one warm-up), in the precision the Trainer
    will use -> steps that fill the budget. The gradients are thrown away; the weights are not touched."""
    model.train()
    times = []
    for k in range(3):
        collate.set_seed(k)
        batch = collate([dataset[i] for i in range(k * cfg.batch_size, (k + 1) * cfg.batch_size)])
        t0 = time.perf_counter()
        device = next(model.parameters()).device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(batch)["loss"]
        loss.backward()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    per_step = float(np.median(times[1:])) * 1.1  # + the optimizer step, the collator and logging
    return max(10, int(cfg.budget_minutes * 60 / per_step)), per_step


def stage_pretrain(cfg: DemoConfig, data: DemoData, markers: Markers) -> dict[str, Any]:
    from ..objectives.builder import build_pretraining
    from ..tokenization.io import load_tokenizer
    from ..training import Trainer, TrainerConfig, seed_everything

    out = Path(cfg.out)
    folder = out / "pretrain"
    model_dir = out / "models" / "pretrained"
    done = markers.get("2_pretrain")
    if done is not None:
        say(f"[2/4] pretraining: done ({done['steps']} steps, held-out MLM accuracy "
            f"{done['heldout_mlm_accuracy']:.1%}; model in {model_dir})")
        return done
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.txt"
    if not text.exists():
        atomic_write_text(text, corpus_text(data.ptb_lines, [t for t, _ in data.train]))
    plan_file = folder / "plan.json"
    plan = json.loads(plan_file.read_text(encoding="utf-8")) if plan_file.exists() else None
    say(f"[2/4] pretraining a {cfg.model} BERT (MLM + NSP) on the same unlabeled text for "
        f"{cfg.budget_minutes:g} min{' (resuming)' if plan else ''}")
    seed_everything(cfg.seed)
    p = build_pretraining(PRETRAIN_PRESET, load_tokenizer(out / "tokenizer"), folder / "corpus", [str(text)],
                          model=cfg.model, max_length=cfg.max_length, seed=cfg.seed, progress=cfg.progress,
                          tokenizer_name=str(out / "tokenizer"))  # tokenizes the text into shards once (reused)
    model, dataset, collate, mc = p.model, p.dataset, p.collate, p.config
    n_params = sum(p.numel() for p in model.encoder.parameters())
    # A resumed run keeps the precision its step count was planned for.
    precision = plan.get("precision", "fp32") if plan else pretrain_precision(cfg)
    if plan is None:
        steps, per_step = _steps_for_budget(model, dataset, collate, cfg, precision)
        plan = {"steps": steps, "seconds_per_step": round(per_step, 4), "examples": len(dataset),
                "precision": precision}
        atomic_write_text(plan_file, json.dumps(plan) + "\n")
    steps = int(plan["steps"])
    say(f"      {mc.num_layers} layers, {mc.hidden_size} wide, {n_params / 1e6:.1f} M parameters; "
        f"{len(dataset):,} sentence pairs of up to {cfg.max_length} tokens; {steps} steps of "
        f"{cfg.batch_size} in {precision} (measured {plan['seconds_per_step']:.2f} s per step on this machine)")
    heldout = _heldout(cfg, folder, p)
    say(f"      held-out MLM accuracy of the unigram baseline (always the most frequent piece): "
        f"{heldout.unigram_accuracy:.1%}")
    eval_every = max(2, -(-steps // 10))  # ten points on the held-out curve, the last one at the end

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        r = heldout(m)
        say(f"      step {trainer.step:>5}/{steps}: held-out MLM accuracy {r['mlm_accuracy']:.1%} "
            f"(loss {r['mlm_loss']:.2f})")
        return r

    tcfg = TrainerConfig(run_dir=str(folder), max_steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                         warmup_steps=max(1, int(cfg.warmup_fraction * steps)), seed=cfg.seed,
                         log_every=max(1, min(10, steps // 20)), save_every=max(5, steps // 8),
                         eval_every=eval_every, progress_bar=cfg.progress, precision=precision)
    trainer = Trainer(model, dataset, collate, tcfg, eval_fn=eval_fn)
    resumed = (folder / "checkpoints" / "latest").exists()  # the Trainer continues from it
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        final = heldout(model)
    rare_cos = rare_embedding_cosine(model.encoder.get_input_embeddings().weight, dataset.corpus.unigram_counts())
    tmp = Path(tempfile.mkdtemp(prefix=".pretrained.", suffix=".tmp", dir=out / "models"))
    p.export(tmp)
    _replace_dir(tmp, model_dir)
    result = {"model": cfg.model, "steps": steps, "batch_size": cfg.batch_size, "max_length": cfg.max_length,
              "parameters": n_params, "seconds": round(seconds, 1), "resumed": resumed,
              "heldout_mlm_accuracy": round(final["mlm_accuracy"], 4),
              "heldout_mlm_loss": round(final["mlm_loss"], 4),
              "unigram_accuracy": round(heldout.unigram_accuracy, 4), "rare_embedding_cosine": round(rare_cos, 4)}
    say(f"      pretrained in {seconds:.0f} s: held-out MLM accuracy {final['mlm_accuracy']:.1%} "
        f"vs {heldout.unigram_accuracy:.1%} for the unigram baseline; saved to {model_dir}")
    say(f"      mean cosine between the input embeddings of the rarest pieces: {rare_cos:.2f} "
        f"(about 0 at random initialisation)")
    markers.put("2_pretrain", result)
    return result


# ------------------------------------------------------------------------------ stage 3: fine-tuning

def _score(gold: list[str], pred: list[str]) -> dict[str, float]:
    from ..training import metrics

    return {"accuracy": metrics.accuracy(gold, pred), "macro_f1": metrics.f1(gold, pred, "macro")}


def _tfidf(cfg: DemoConfig, data: DemoData, few: list) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = zip(*few)
    t0 = time.perf_counter()
    # sublinear tf (1 + log tf) and English stop words: the usual strong text-classification baseline
    clf = make_pipeline(TfidfVectorizer(sublinear_tf=True, stop_words="english"),
                        LogisticRegression(C=10.0, max_iter=2000, random_state=cfg.seed))
    clf.fit(list(texts), list(labels))
    seconds = time.perf_counter() - t0
    pred = [str(p) for p in clf.predict([t for t, _ in data.test])]
    return {"train_seconds": seconds, "pred": pred}


def _predict(clf, texts: list[str], desc: str, progress: bool) -> list[str]:
    """Labels for the test texts, in chunks under a progress bar."""
    out: list[str] = []
    chunk = 64
    for k in tqdm(range(0, len(texts), chunk), desc=desc, unit="batch", disable=not progress, leave=False):
        out += [p["label"] for p in clf.predict(texts[k:k + chunk])]
    return out


def _classifier(cfg: DemoConfig, method: str, labels: list[str]):
    from ..data import assets
    from ..models import Encoder
    from ..objectives.builder import model_config, objective, special_ids
    from ..pipelines import TextClassifier
    from ..tokenization.io import load_tokenizer
    from ..training import seed_everything

    out = Path(cfg.out)
    opts = dict(pooling=cfg.pooling, max_length=cfg.finetune_max_length, seed=cfg.seed)
    if method == "random":
        tok = load_tokenizer(out / "tokenizer")
        seed_everything(cfg.seed)
        # the architecture stage 2 pretrained (the builder's config: preset, vocabulary, positions), fresh weights
        enc = Encoder(model_config(objective(PRETRAIN_PRESET), cfg.model, tok.vocab_size, special_ids(tok),
                                   cfg.max_length))
        return TextClassifier.new(enc, labels, tokenizer=tok, **opts)
    if method == "pretrained":
        return TextClassifier.new(str(out / "models" / "pretrained"), labels, **opts)
    if method == "minilm":
        return TextClassifier.new(str(assets.path("minilm")), labels, **opts)
    raise ValueError(f"unknown method {method!r}")


def _finetune_one(cfg: DemoConfig, data: DemoData, method: str, sample: int) -> dict[str, Any]:
    """Fine-tune (or fit TF-IDF) on one few-label sample and score the test split."""
    out = Path(cfg.out)
    few, dev = data.samples[sample]
    gold = [lab for _, lab in data.test]
    resumed = False
    clf = None  # a trained pipeline (the BERTs, MiniLM, the LSTM rows), scored and kept below
    extra: dict[str, Any] = {}
    n_train = len(few)
    run_dir = out / "finetune" / (method if sample == 0 else f"{method}-{sample}")
    if method == "tfidf":
        r = _tfidf(cfg, data, few)
        seconds, pred, n_params = r["train_seconds"], r["pred"], None
    elif method in ("glove", "glove_finetune", "word2vec", "bag_random"):
        r = rows.glove_one(cfg, data, method, sample)
        seconds, pred, n_params = r["train_seconds"], r["pred"], r["parameters"]
    elif method == "prompting":
        resumed = (run_dir / "scores.json").exists()
        r = rows.prompting_one(cfg, data, sample, run_dir)
        seconds, pred, n_params, n_train = r["train_seconds"], r["pred"], r["parameters"], r["train_examples"]
        extra = {k: r[k] for k in ("shared_prompt_tokens", "score_seconds_per_article", "p_cf")}
        extra["raw_accuracy"] = round(_score(gold, r["raw_pred"])["accuracy"], 4)
    elif method in ("ulmfit", "lstm_random"):
        resumed = (run_dir / "checkpoints" / "latest").exists()
        r = rows.ulmfit_one(cfg, data, method, sample, run_dir)
        clf, seconds, n_params = r["clf"], r["train_seconds"], r["parameters"]
    else:
        resumed = (run_dir / "checkpoints" / "latest").exists()
        c = replace(cfg, seed=cfg.seed + sample)  # head init and data order
        clf = _classifier(c, method, data.labels)
        n_params = sum(p.numel() for p in clf.model.parameters())
        small = method != "minilm"
        lr = cfg.small_lr if small else cfg.minilm_lr
        min_steps = cfg.small_min_steps if small else cfg.minilm_min_steps
        texts, labels = zip(*few)
        d_texts, d_labels = zip(*dev)
        t0 = time.perf_counter()
        clf.fit(list(texts), list(labels), dev=(list(d_texts), list(d_labels)), epochs=1.0, lr=lr,
                batch_size=cfg.finetune_batch_size, min_steps=min_steps, out_dir=str(run_dir),
                progress=cfg.progress, seed=c.seed, save_every=max(1, min_steps // 4))
        seconds = time.perf_counter() - t0
    if clf is not None:  # the trained classifiers: score the test split, keep the first sample's model
        pred = _predict(clf, [t for t, _ in data.test], "scoring", cfg.progress)
        if sample == 0:  # (Hugging Face folders; ULMFiT's own folder format for the LSTM rows)
            tmp = Path(tempfile.mkdtemp(prefix=f".{method}.", suffix=".tmp", dir=out / "models"))
            clf.save_pretrained(tmp / "m")
            _replace_dir(tmp / "m", out / "models" / f"bbc-{method}")
            shutil.rmtree(tmp, ignore_errors=True)
    s = _score(gold, pred)
    return {"method": method, "title": METHOD_TITLES[method], "sample": sample,
            "labels_per_class": cfg.labels_per_class, "train_examples": n_train, "test_examples": len(gold),
            "accuracy": round(s["accuracy"], 4), "macro_f1": round(s["macro_f1"], 4),
            "train_seconds": round(seconds, 2), "parameters": n_params, "resumed": resumed, **extra, "pred": pred}


def _mean_over_samples(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's row: the first sample's run (its predictions feed the confusion matrix), with
    accuracy, macro F1 and time replaced by their means over the samples."""
    acc = np.array([r["accuracy"] for r in runs])
    row = dict(runs[0])
    row.update(samples=len(runs), sample_accuracies=[r["accuracy"] for r in runs],
               first_sample_accuracy=runs[0]["accuracy"],
               accuracy=round(float(acc.mean()), 4), accuracy_sd=round(float(acc.std()), 4),
               macro_f1=round(float(np.mean([r["macro_f1"] for r in runs])), 4),
               train_seconds=round(float(np.mean([r["train_seconds"] for r in runs])), 2),
               resumed=any(r["resumed"] for r in runs))
    row.pop("sample")
    return row


def stage_finetune(cfg: DemoConfig, data: DemoData, markers: Markers) -> dict[str, dict[str, Any]]:
    k = cfg.labels_per_class
    n = len(data.samples)
    results: dict[str, dict[str, Any]] = {}
    say(f"[3/4] fine-tuning on BBC News with {k} labels per topic ({len(data.few)} articles; "
        f"{len(data.dev)} more for the dev curves), scored on {len(data.test)} held-out articles"
        + (f"; {n} label samples per method, the table shows their mean" if n > 1 else ""))
    for i, method in enumerate(METHODS):
        title = METHOD_TITLES[method]
        runs = []
        for sample in range(n):
            name = f"3_{method}" if sample == 0 else f"3_{method}_{sample}"
            what = f"({chr(97 + i)}) {title}" + (f", sample {sample + 1}/{n}" if n > 1 else "")
            done = markers.get(name)
            if done is not None:
                say(f"      {what}: done, accuracy {done['accuracy']:.1%}")
            else:
                say(f"      {what}")
                done = _finetune_one(cfg, data, method, sample)
                # the rounded numbers the table prints, so that the two never differ in the last digit
                if method == "prompting":
                    say(f"          test accuracy {done['accuracy']:.1%} (macro F1 {done['macro_f1']:.3f}; "
                        f"uncalibrated {done['raw_accuracy']:.1%}); {done['train_examples']} demonstrations, "
                        f"{done['shared_prompt_tokens']} shared tokens cached in {done['train_seconds']:.1f} s, "
                        f"{done['score_seconds_per_article']:.2f} s per test article")
                else:
                    say(f"          test accuracy {done['accuracy']:.1%} (macro F1 {done['macro_f1']:.3f}), "
                        f"trained in {done['train_seconds']:.1f} s")
                markers.put(name, done)
            runs.append(done)
        results[method] = _mean_over_samples(runs)
        if n > 1:
            r = results[method]
            say(f"          mean over {n} samples: {r['accuracy']:.1%} (sd {r['accuracy_sd']:.1%})")
    return results


# ------------------------------------------------------------------------------------ the whole run

def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """All four stages; returns the summary written to OUT/report/results.json."""
    from . import report

    out = Path(cfg.out)
    check_or_write_options(cfg)
    (out / "models").mkdir(parents=True, exist_ok=True)
    markers = Markers(out)
    t0 = time.perf_counter()
    data = DemoData.load(cfg.labels_per_class, cfg.seed, test_per_class=cfg.test_per_class,
                         ptb_fraction=cfg.ptb_fraction, train_articles=cfg.train_articles, samples=cfg.samples)
    vocab = stage_vocabulary(cfg, data, markers)
    pre = stage_pretrain(cfg, data, markers)
    lstm = rows.stage_lstm_lm(cfg, data, markers)
    lstm["word2vec"] = rows.stage_word2vec(cfg, data, markers)
    fine = stage_finetune(cfg, data, markers)
    say("[4/4] report")
    summary = report.write_report(cfg, data, vocab, pre, fine, seconds=time.perf_counter() - t0, lstm=lstm)
    return summary


__all__ = ["DemoConfig", "quick_config", "run_demo", "METHODS", "METHOD_TITLES"]
