"""Part-of-speech tagging on the Brown corpus: our CLI with its defaults vs transformers' Trainer.

    python benchmarks/pos.py [--train-sentences 3000] [--dev-sentences 500] [--test-sentences 2000]
                             [--only ours,hf] [--work runs/pos-bench] [--quick]

The split (fixed, seeded, by document so that no test sentence shares a document with training):
the 500 Brown documents (`assets.brown()`, ca01 .. cr09) shuffled with random.Random(0); the first
50 are the held-out TEST documents, the next 25 the DEV documents, the other 425 the training pool.
The sentences of each part are shuffled with random.Random(1); training takes the first
--train-sentences of the pool (a subsample, so that a one-thread run fits ~20 minutes), dev the
first --dev-sentences of the dev documents, test the first --test-sentences of the test documents
(0 = all of them). Tags are Brown's own 472 lower-case tags (`ppss`, `ber*`, `np-tl`, `.`), a
plain tag set. The three parts are written as CoNLL files (word<TAB>tag) under --work.

ours: `transferlm finetune --task tag --model minilm --train train.conll --dev dev.conll --out
      OUT` with its defaults (scheme detected: plain), then `transferlm evaluate --model OUT
      --data test.conll`; one torch thread (OMP_NUM_THREADS=1), run as a user would (subprocess).
hf:   the issue's reference recipe: transformers' AutoModelForTokenClassification on the MiniLM
      folder, its own fast tokenizer (is_split_into_words), labels on the first subword of each
      word (-100 elsewhere), transformers' Trainer with lr 1e-4, batch 16, 3 epochs (its other
      defaults: AdamW, linear decay, no warmup, no weight decay), one torch thread; the label set
      is the training tags, as for ours.
Both are scored by word accuracy on the same test words; a test word whose gold tag never occurs
in the training subsample counts as an error for both (neither can predict it; the count is
printed). The printed ratio is ours / hf.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from transferlm.data import assets  # noqa: E402
from transferlm.data.formats import write_conll  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.0f}s] {msg}", flush=True)


def brown_split(n_train: int, n_dev: int, n_test: int):
    """(train, dev, test) lists of (words, tags); see the module docstring."""
    sents = assets.brown()
    docs = sorted({d for d, _, _ in sents})
    random.Random(0).shuffle(docs)
    test_docs, dev_docs = set(docs[:50]), set(docs[50:75])
    parts: dict[str, list] = {"train": [], "dev": [], "test": []}
    for d, w, t in sents:
        part = "test" if d in test_docs else "dev" if d in dev_docs else "train"
        parts[part].append((w, t))
    for p in parts.values():
        random.Random(1).shuffle(p)
    train = parts["train"][:n_train] if n_train else parts["train"]
    dev = parts["dev"][:n_dev] if n_dev else parts["dev"]
    test = parts["test"][:n_test] if n_test else parts["test"]
    return train, dev, test, {k: len(v) for k, v in parts.items()}


def accuracy(gold, pred) -> float:
    pairs = [(g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    return sum(g == p for g, p in pairs) / len(pairs)


def run_ours(work: Path, env: dict) -> dict:
    out = work / "ours"
    cmd = [sys.executable, "-m", "transferlm", "finetune", "--task", "tag", "--model", "minilm",
           "--train", str(work / "train.conll"), "--dev", str(work / "dev.conll"), "--out", str(out),
           "--no-progress"]
    log("ours: " + " ".join(cmd[2:]))
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"finetune failed:\n{res.stderr[-3000:]}")
    secs = time.perf_counter() - t
    final = json.loads(res.stdout.strip().splitlines()[-1])
    note = [ln for ln in res.stderr.splitlines() if "scheme" in ln]
    log(f"ours: trained in {secs:.0f}s; {note[0] if note else ''}")
    log("ours: dev " + json.dumps({k: v for k, v in final.items() if k != "dev_per_tag"}))
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "eval_accuracy" in rec:
            log(f"ours: dev accuracy at step {rec['step']}: {rec['eval_accuracy']:.4f}")
    cmd = [sys.executable, "-m", "transferlm", "evaluate", "--model", str(out), "--data",
           str(work / "test.conll")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"evaluate failed:\n{res.stderr[-3000:]}")
    test = json.loads(res.stdout.strip().splitlines()[-1])
    test.pop("per_tag", None)
    log("ours: test " + json.dumps(test))
    return {"train_s": secs, **test}


def run_hf(work: Path, train, dev, test, epochs: float = 3.0) -> dict:
    import numpy as np
    import torch
    from transformers import (AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification, Trainer, TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    folder = str(assets.path("minilm"))
    labels = sorted({t for _, ts in train for t in ts})
    index = {t: i for i, t in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(folder)

    def encode(data, with_labels=True):
        rows = []
        for words, tags in data:
            enc = tok(words, is_split_into_words=True, truncation=True, max_length=128)
            wid = enc.word_ids()
            lab, prev = [], None
            for w in wid:  # the first subword of each word carries its tag, the rest -100
                lab.append(-100 if w is None or w == prev else index.get(tags[w], -100))
                prev = w
            row = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                   "token_type_ids": enc["token_type_ids"]}
            if with_labels:
                row["labels"] = lab
            rows.append((row, wid))
        return rows

    tr = [r for r, _ in encode(train)]
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index)
    args = TrainingArguments(output_dir=str(work / "hf"), learning_rate=1e-4,
                             per_device_train_batch_size=16, per_device_eval_batch_size=32,
                             num_train_epochs=epochs, save_strategy="no", report_to=[],
                             logging_steps=50, seed=0, use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=tr,
                      data_collator=DataCollatorForTokenClassification(tok))
    log(f"hf: Trainer, {len(tr)} sentences, {len(labels)} tags, lr 1e-4, batch 16, {epochs:g} epochs")
    t = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t
    log(f"hf: trained in {secs:.0f}s")

    def tags_of(data):
        rows = encode(data, with_labels=False)
        out = trainer.predict([r for r, _ in rows]).predictions  # (N, T, K), padded with -100
        pred = []
        for (row, wid), logits, (words, _) in zip(rows, out, data):
            ids = np.asarray(logits).argmax(-1)
            tags, prev = [None] * len(words), None
            for t_, w in enumerate(wid):
                if w is not None and w != prev:
                    tags[w] = labels[int(ids[t_])]
                prev = w
            pred.append([x if x is not None else "<cut>" for x in tags])  # words past max_length
        return pred

    res = {"train_s": secs}
    for name, data in (("dev", dev), ("test", test)):
        res[f"{name}_accuracy"] = accuracy([t for _, t in data], tags_of(data))
        log(f"hf: {name} accuracy {res[f'{name}_accuracy']:.4f}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sentences", type=int, default=3000)
    ap.add_argument("--dev-sentences", type=int, default=500)
    ap.add_argument("--test-sentences", type=int, default=2000, help="0: every sentence of the test documents")
    ap.add_argument("--only", default="ours,hf")
    ap.add_argument("--work", default=str(ROOT / "runs" / "pos-bench"))
    ap.add_argument("--quick", action="store_true", help="smoke test: 64 / 32 / 64 sentences")
    a = ap.parse_args()
    if a.quick:
        a.train_sentences, a.dev_sentences, a.test_sentences = 64, 32, 64
    print(f"benchmarks/pos.py --train-sentences {a.train_sentences} --dev-sentences {a.dev_sentences} "
          f"--test-sentences {a.test_sentences} --only {a.only}, one torch thread, started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    train, dev, test, pool = brown_split(a.train_sentences, a.dev_sentences, a.test_sentences)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    for name, data in (("train", train), ("dev", dev), ("test", test)):
        write_conll(work / f"{name}.conll", data)
    seen = {t for _, ts in train for t in ts}
    n_words = sum(len(w) for w, _ in test)
    unseen = sum(t not in seen for _, ts in test for t in ts)
    log(f"Brown split: documents 425 train / 25 dev / 50 test holding {pool['train']} / {pool['dev']} / "
        f"{pool['test']} sentences; used {len(train)} train ({sum(len(w) for w, _ in train)} words, "
        f"{len(seen)} tags), {len(dev)} dev, {len(test)} test ({n_words} words, {unseen} with a tag "
        f"unseen in training)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = {}
    parts = a.only.split(",")
    if "ours" in parts:
        results["ours"] = run_ours(work, env)
    if "hf" in parts:
        results["hf"] = run_hf(work, train, dev, test)
    if "ours" in results and "hf" in results:
        o, h = results["ours"]["accuracy"], results["hf"]["test_accuracy"]
        log(f"test word accuracy: ours (CLI defaults) {o:.4f}, transformers Trainer {h:.4f}, "
            f"ratio {o / h:.4f}; training time ours {results['ours']['train_s']:.0f}s, "
            f"hf {results['hf']['train_s']:.0f}s")


if __name__ == "__main__":
    main()
