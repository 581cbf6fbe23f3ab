"""Stage 3's rows beyond TF-IDF and the small BERTs: ULMFiT and its from-scratch twin, GloVe
features, and SmolLM2 few-shot prompting -- each on the same label samples and test articles.

- The LSTM language model (issue #13; `stage_lstm_lm`, run after stage 2): a word-level LSTM LM
  (models/lstm.py: tied embeddings, "words" tokenizer) trained on the demo's unlabeled text (PTB
  train + the BBC train split's articles, the text of stages 1 and 2) with Zaremba et al.'s SGD (lr 20
  on the mean loss, clip 0.25; `lstm_optimizer="adam"`: ULMFiT's Adam) in bf16 autocast where
  pretraining uses it, for a time budget turned into a step count once (measured on this machine,
  in that precision, stored in OUT/lstm/general/plan.json), then
  ULMFiT's target-LM fine-tuning (Howard & Ruder 2018 sec. 3.2: Adam(0.7, 0.99), discriminative
  rates / 2.6, slanted triangular rates) on the BBC train split's articles alone, also for a budget
  turned into steps. Both go through pipelines/ulmfit.py `train_lm` (the shared Trainer: a rerun
  resumes from OUT/lstm/*/checkpoints); markers `2_lstm_general` / `2_lstm_target` record them.
- "ulmfit" / "lstm_random": `UlmfitClassifier` (concat pooling, discriminative rates, slanted
  triangular rates, gradual unfreezing: pipelines/ulmfit.py) on that target LM, and the same
  classifier with the same recipe from random weights (`pretrained=False`: same vocabulary, config
  and seed).
- "word2vec" / "bag_random": word2vec skip-gram trained here on the same unlabeled text
  (`stage_word2vec`, marker `2_word2vec`, OUT/word2vec/vectors.txt) initialising the bag-of-vectors
  classifier below, fine-tuned; and the same classifier from random vectors.
- "glove" / "glove_finetune": GloVe 6B 50d (the asset) as the embedding layer of a bag-of-vectors
  classifier ([mean; max] pooling + linear: embeddings/static.py), frozen or fine-tuned. The table
  is cut to the words of the texts it will see (`only_words`: the same look-ups as the full
  400,000-word table, a far smaller matrix); training words GloVe lacks get trainable rows.
- "prompting": SmolLM2-135M-Instruct (the GGUF asset) with `prompt_shots` demonstrations per topic
  taken from the sample's labelled articles (balanced: the first of each topic in the sample's
  order, then shuffled), verbalizer scoring of the five topic names, contextual calibration
  (Zhao et al. 2021) -- prompting/. The demonstrations are the same for every test article, so
  their KV cache is computed once per sample (`PromptClassifier.fit`) and each article only runs
  its own tokens; every text is clipped to its first `prompt_max_tokens` tokens. Raw scores are
  saved every few articles (OUT/finetune/prompting[-s]/scores.json), so an interrupted sample resumes.

Each `*_one` returns what stages.py's `_finetune_one` needs: predictions, training seconds, parameters.
Does not: own a model or a training loop (models/, pipelines/, embeddings/, prompting/ do).
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..fileio import atomic_write_text

# ------------------------------------------------------------------------------ the LSTM LM (stage 2)


def _say(msg: str) -> None:
    tqdm.write(msg)


def _lm_corpus(vocab, texts: list[str], tokenizer: str) -> torch.Tensor:
    return vocab.encode_corpus("\n".join(texts), tokenizer)


def _steps_for_lm_budget(lm, ids: torch.Tensor, batch_size: int, bptt: int, minutes: float,
                         precision: str) -> tuple[int, float]:
    """Time forward + backward (in `precision`) + an Adam step on real TBPTT blocks (after warm-up)
    on a copy of the model -> the step count that fills `minutes` (at least 10)."""
    import copy

    from ..models.lstm import StreamLM, TBPTTBlocks

    m = StreamLM(copy.deepcopy(lm)).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    data = TBPTTBlocks(ids, batch_size, bptt)
    times = []
    for k in range(7):  # the first calls build kernels and optimizer state: three warm-up steps
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = m(data[k % len(data)])["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    # The fastest of the four timed steps: on a shared machine a burst of other work inflates some
    # steps (the recorded demo run measured 5.25 s per step from the middle two and then ran at
    # 0.94 s, so its LM got 34 steps instead of ~170: docs/demo_output.md).
    per_step = min(times[3:]) * 1.1  # + logging and checkpoints
    return max(10, int(minutes * 60 / per_step)), per_step


def _unigram_perplexity(train_ids: torch.Tensor, ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity of the add-one unigram model of the training ids on `ids`: the LM's floor to beat."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    return math.exp(-float(logp[ids].mean()))


def _train_lm_stage(cfg, name: str, folder: Path, lm, vocab, ids: torch.Tensor, minutes: float,
                    recipe: dict[str, Any], per_step: float | None = None) -> dict[str, Any]:
    """Train `lm` for `minutes` turned into steps once (plan.json) with `recipe` (LMTrainConfig's
    optimizer, lr, schedule, layer_decay, max_grad_norm); `per_step`: a step time measured already
    (the target LM has the general LM's shapes: its plan's time serves)."""
    from ..models.lstm import TBPTTBlocks
    from ..pipelines.ulmfit import LMTrainConfig, train_lm
    from .stages import pretrain_precision

    plan_file = folder / "plan.json"
    plan = json.loads(plan_file.read_text(encoding="utf-8")) if plan_file.exists() else None
    if plan is None:  # a resumed stage keeps the precision its step count was planned for
        precision = "bf16" if cfg.lstm_bf16 and pretrain_precision(cfg) == "bf16" else "fp32"
        if per_step is None:
            steps, per_step = _steps_for_lm_budget(lm, ids, cfg.lstm_batch_size, cfg.lstm_bptt, minutes, precision)
        else:
            steps = max(10, int(minutes * 60 / per_step))
        plan = {"steps": steps, "seconds_per_step": round(per_step, 4), "tokens": int(ids.numel()),
                "precision": precision}
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan_file, json.dumps(plan) + "\n")
    steps = int(plan["steps"])
    blocks = len(TBPTTBlocks(ids, cfg.lstm_batch_size, cfg.lstm_bptt))
    _say(f"      {name}: {steps} steps of {cfg.lstm_batch_size} x {cfg.lstm_bptt} words "
         f"({steps / blocks:.2f} passes over {ids.numel():,} words; measured {plan['seconds_per_step']:.2f} s "
         f"per step on this machine{'' if name.startswith('general') else ', for the general LM'})")
    tc = LMTrainConfig(out=str(folder), epochs=(steps + 0.5) / blocks, batch_size=cfg.lstm_batch_size,
                       bptt=cfg.lstm_bptt, **recipe, precision=plan.get("precision", "fp32"), seed=cfg.seed,
                       save_every=max(5, steps // 8), log_every=max(1, min(20, steps // 20)), progress=cfg.progress)
    resumed = (folder / "checkpoints" / "latest").exists()
    t0 = time.perf_counter()
    last = train_lm(lm, vocab, ids, None, tc)
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1), "resumed": resumed,
            "train_loss": round(float(last.get("loss", float("nan"))), 4), "tokens": int(ids.numel())}


def stage_lstm_lm(cfg, data, markers) -> dict[str, Any]:
    """The general LSTM LM (PTB + BBC train split), then its target fine-tuning (BBC train split).
    Returns both results; the target LM is in OUT/lstm/target/model."""
    from ..data import assets
    from ..models.lstm import LSTMConfig, LSTMLanguageModel, WordVocab, perplexity
    from ..training import seed_everything

    out = Path(cfg.out)
    gen_dir, tgt_dir = out / "lstm" / "general", out / "lstm" / "target"
    general = markers.get("2_lstm_general")
    target = markers.get("2_lstm_target")
    if general is not None and target is not None:
        _say(f"      LSTM LM: done ({general['steps']} + {target['steps']} steps, held-out PTB valid perplexity "
             f"{general['heldout_ppl']:.0f}; model in {tgt_dir / 'model'})")
        return {"general": general, "target": target}
    tok = "words"
    articles = [t for t, _ in data.train]
    if general is None:
        _say(f"      ULMFiT's LSTM LM on the same unlabeled text for {cfg.lstm_budget_minutes:g} min, then "
             f"fine-tuned on the BBC train split's articles for {cfg.lstm_target_minutes:g} min")
        vocab = WordVocab.build(data.unlabeled, tok, max_size=cfg.lstm_vocab, min_count=2)
        seed_everything(cfg.seed)
        lm = LSTMLanguageModel(LSTMConfig(vocab_size=len(vocab), emb_dim=cfg.lstm_emb, hidden_size=cfg.lstm_hidden,
                                          num_layers=cfg.lstm_layers, tokenizer=tok))
        ids = _lm_corpus(vocab, data.unlabeled, tok)
        n = sum(p.numel() for p in lm.parameters())
        _say(f"      {cfg.lstm_layers} LSTM layers, {cfg.lstm_hidden} wide, {cfg.lstm_emb}-d tied embeddings, "
             f"{len(vocab):,} words, {n / 1e6:.1f} M parameters")
        # Zaremba et al. 2014's recipe (SGD, a constant lr 20 on the mean loss, clip 0.25: the
        # zaremba-small preset of cli/lm.py) or ULMFiT's Adam with slanted triangular rates.
        recipe = (dict(optimizer="sgd", lr=cfg.lstm_lr, schedule="constant", max_grad_norm=0.25)
                  if cfg.lstm_optimizer == "sgd" else
                  dict(optimizer="adam", lr=cfg.lstm_lr, schedule="slanted_triangular", max_grad_norm=1.0))
        r = _train_lm_stage(cfg, "general LM", gen_dir, lm, vocab, ids, cfg.lstm_budget_minutes, recipe)
        held = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()][: cfg.lstm_heldout_lines]
        held_ids = _lm_corpus(vocab, held, tok)
        r["heldout_ppl"] = round(perplexity(lm, held_ids, 10, 35), 2)
        r["unigram_ppl"] = round(_unigram_perplexity(ids, held_ids, len(vocab)), 2)
        r.update(vocab_size=len(vocab), parameters=n)
        _say(f"      general LM: {r['steps']} steps in {r['seconds']:.0f} s; held-out perplexity (PTB valid, "
             f"{held_ids.numel():,} words) {r['heldout_ppl']:.0f} vs {r['unigram_ppl']:.0f} for the unigram model")
        markers.put("2_lstm_general", r)
        general = r
    lm, vocab = LSTMLanguageModel.from_pretrained(gen_dir / "model")
    ids = _lm_corpus(vocab, articles, tok)
    per_step = json.loads((gen_dir / "plan.json").read_text(encoding="utf-8"))["seconds_per_step"]
    # ULMFiT sec. 3.2: Adam(0.7, 0.99), slanted triangular rates, discriminative rates (/ 2.6)
    recipe = dict(optimizer="adam", lr=cfg.lstm_target_lr, schedule="slanted_triangular", layer_decay=2.6,
                  max_grad_norm=1.0)
    r = _train_lm_stage(cfg, "target LM (ULMFiT sec. 3.2)", tgt_dir, lm, vocab, ids, cfg.lstm_target_minutes,
                        recipe, per_step)
    _say(f"      target LM: {r['steps']} steps in {r['seconds']:.0f} s; training loss {r['train_loss']:.2f} "
         f"(perplexity {math.exp(r['train_loss']):.0f} on its last batches)")
    markers.put("2_lstm_target", r)
    return {"general": general, "target": r}


def ulmfit_one(cfg, data, method: str, sample: int, run_dir: Path) -> dict[str, Any]:
    """ULMFiT's classifier from the target LM (method "ulmfit") or the same from random weights."""
    from ..pipelines.ulmfit import UlmfitClassifier

    few, dev = data.samples[sample]
    clf = UlmfitClassifier.new(Path(cfg.out) / "lstm" / "target" / "model", data.labels, seed=cfg.seed + sample,
                               max_length=cfg.lstm_max_length, pretrained=method == "ulmfit")
    texts, labels = zip(*few)
    d_texts, d_labels = zip(*dev)
    steps = max(1, len(few) // cfg.lstm_clf_batch_size) * cfg.lstm_clf_epochs
    t0 = time.perf_counter()
    clf.fit(list(texts), list(labels), dev=(list(d_texts), list(d_labels)), epochs=float(cfg.lstm_clf_epochs),
            lr=cfg.lstm_clf_lr, batch_size=cfg.lstm_clf_batch_size, seed=cfg.seed + sample, out_dir=str(run_dir),
            progress=cfg.progress, save_every=max(1, steps // 4))
    seconds = time.perf_counter() - t0
    return {"clf": clf, "train_seconds": seconds, "parameters": sum(p.numel() for p in clf.model.parameters())}


# ------------------------------------------------------------------------------------------ GloVe

@lru_cache(maxsize=1)
def _glove():
    from ..embeddings.static import load_glove_asset

    return load_glove_asset()


def _w2v_sentences(data) -> list[list[str]]:
    """The unlabeled text as word2vec sentences: each PTB line and each article paragraph, lower-cased
    words and punctuation (embeddings/static.py's tokenizer, the one the bag classifiers read with)."""
    from ..embeddings.static import tokenize

    lines = list(data.ptb_lines) + [ln for t, _ in data.train for ln in t.splitlines() if ln.strip()]
    return [toks for ln in lines if (toks := [w.lower() for w in tokenize(ln)])]


def stage_word2vec(cfg, data, markers) -> dict[str, Any]:
    """word2vec skip-gram (embeddings/word2vec.py) on the demo's unlabeled text -> OUT/word2vec/vectors.txt."""
    from ..embeddings.static import save_vectors
    from ..embeddings.word2vec import Word2VecConfig, train_word2vec

    out = Path(cfg.out) / "word2vec"
    done = markers.get("2_word2vec")
    if done is not None:
        _say(f"      word2vec: done ({done['words']:,} words x {done['epochs']} epochs, {done['vocab_size']:,} vectors "
             f"in {out / 'vectors.txt'})")
        return done
    sents = _w2v_sentences(data)
    n = sum(len(x) for x in sents)
    _say(f"      word2vec skip-gram, {cfg.w2v_dim}-d, on the same unlabeled text ({len(sents):,} lines, {n:,} words, "
         f"{cfg.w2v_epochs} epochs)")
    c = Word2VecConfig(dim=cfg.w2v_dim, epochs=cfg.w2v_epochs, min_count=cfg.w2v_min_count, seed=cfg.seed + 1,
                       workers=max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    vec = train_word2vec(sents, c, "the demo's unlabeled text")
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    save_vectors(vec, out / "vectors.txt", "word2vec")
    r = {"words": n, "epochs": cfg.w2v_epochs, "dim": cfg.w2v_dim, "vocab_size": len(vec), "seconds": round(seconds, 1)}
    _say(f"      word2vec: {len(vec):,} vectors in {seconds:.0f} s ({n * cfg.w2v_epochs / seconds:,.0f} words/s)")
    markers.put("2_word2vec", r)
    return r


@lru_cache(maxsize=2)
def _word2vec(path: str):
    from ..embeddings.static import load_vectors

    return load_vectors(path, "word2vec")


def glove_one(cfg, data, method: str, sample: int) -> dict[str, Any]:
    """A [mean; max] bag of word vectors + linear layer on the sample's labelled articles: GloVe
    (frozen / fine-tuned), word2vec trained here (initialised and fine-tuned: Kim 2014's "non-static"),
    or the same classifier over the same table from random vectors ("bag_random", Kim's "rand").
    Frozen word2vec features were measured too (docs/demo_output.md): far below the random twin, as a
    trainable table over the training words is a keyword classifier that a frozen one cannot be."""
    from ..embeddings.static import (BagTrainConfig, StaticEmbedding, predict_bag, tokenize,
                                     train_bag_classifier)

    few, _ = data.samples[sample]
    texts, labels = zip(*few)
    test = [t for t, _ in data.test]
    train_words = [w for t in texts for w in tokenize(t)[: cfg.glove_max_len]]
    seen = train_words + [w for t in test for w in tokenize(t)[: cfg.glove_max_len]]
    t0 = time.perf_counter()
    if method in ("glove", "glove_finetune"):
        emb = StaticEmbedding.from_vectors(_glove(), mode="frozen" if method == "glove" else "finetune",
                                           extra_words=train_words, only_words=seen, seed=cfg.seed + sample)
    else:
        w2v = _word2vec(str(Path(cfg.out) / "word2vec" / "vectors.txt"))
        emb = StaticEmbedding.from_vectors(w2v, mode="finetune", extra_words=train_words, only_words=seen,
                                           seed=cfg.seed + sample)
        if method == "bag_random":  # the same table (words, size), random N(0, 1/D) rows, all trained
            emb = StaticEmbedding.scratch(emb.words[2:], emb.dim, seed=cfg.seed + sample)
    model, names = train_bag_classifier(list(texts), list(labels), emb, BagTrainConfig(
        epochs=cfg.glove_epochs, lr=cfg.glove_lr, max_len=cfg.glove_max_len, seed=cfg.seed + sample))
    seconds = time.perf_counter() - t0
    pred = predict_bag(model, names, test, cfg.glove_max_len)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"train_seconds": seconds, "pred": pred, "parameters": trainable}


# ------------------------------------------------------------------------------------------ prompting

PROMPT_BATCH = 8  # test articles scored together over the cached demonstrations (scoring.score_labels_batch)


@lru_cache(maxsize=1)
def _smollm2():
    from ..cli.generate import load

    return load("smollm2")


def prompting_one(cfg, data, sample: int, run_dir: Path) -> dict[str, Any]:
    """SmolLM2 k-shot prompting with contextual calibration on the sample's labelled articles."""
    from ..prompting import PromptClassifier, PromptOptions
    from ..prompting import calibration

    from .stages import pretrain_precision

    few, _ = data.samples[sample]
    model, tok = _smollm2()
    # bf16 autocast where pretraining uses it: 1.67x faster per article on this machine's AVX512-BF16,
    # 47 of 48 calibrated predictions equal to fp32's (docs/demo_output.md)
    bf16 = cfg.prompt_bf16 and pretrain_precision(cfg) == "bf16"
    opts = PromptOptions(shots=cfg.prompt_shots, select="balanced", calibrate="contextual",
                         max_text_tokens=cfg.prompt_max_tokens, seed=cfg.seed + sample)
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        clf = PromptClassifier(model, tok, data.labels, options=opts).fit(few)
    seconds = time.perf_counter() - t0
    texts = [t for t, _ in data.test]
    run_dir.mkdir(parents=True, exist_ok=True)
    part = run_dir / "scores.json"  # raw label scores so far: an interrupted sample resumes here
    raw: list[list[float]] = json.loads(part.read_text(encoding="utf-8"))["raw"] if part.exists() else []
    start, batch = len(raw), PROMPT_BATCH
    t1 = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), \
            tqdm(desc="prompting", unit="article", disable=not cfg.progress, leave=False, initial=start,
                 total=len(texts)) as bar:
        for i in range(start, len(texts), batch):
            scores = clf.fixed_prompt_scores_batch(texts[i:i + batch], "test article")  # (b, L)
            raw += [[round(x, 6) for x in row] for row in scores.tolist()]
            bar.update(len(scores))
            if (i // batch) % 4 == 3 or len(raw) == len(texts):
                atomic_write_text(part, json.dumps({"raw": raw}) + "\n")
    score_seconds = time.perf_counter() - t1
    raw_t = torch.tensor(raw)  # (N, L)
    p_cf = clf.fixed.p_cf.float()
    calibrated = calibration.contextual_calibrate(raw_t, p_cf)  # (N, L)
    pred = [data.labels[int(j)] for j in calibrated.argmax(-1)]
    raw_pred = [data.labels[int(j)] for j in raw_t.argmax(-1)]
    return {"train_seconds": seconds, "pred": pred, "parameters": sum(p.numel() for p in model.parameters()),
            "train_examples": len(clf.demonstrations()), "shared_prompt_tokens": len(clf.fixed.ids),
            "score_seconds_per_article": round(score_seconds / max(1, len(texts) - start), 4),
            "raw_pred": raw_pred, "p_cf": [round(x, 4) for x in p_cf.tolist()]}
