"""Fine-tuning benchmarks (issue #7): BBC News learning curve, WNUT-16 heads, training speed.

    python benchmarks/finetune.py [--quick] [--only bbc,wnut,speed] [--threads 2] [--sizes 5,10,25,all] [--draws 3]
                                  [--no-hf]

Splits (the same everywhere, also in the tests' spirit):
- BBC News: the 2,225 articles in `assets.bbc_news()` order, shuffled with random.Random(0);
  the first 20% (445) are the held-out test set, the other 80% (1,780) the training pool. A
  learning-curve point "k per class" takes the first k training articles of each class in that
  shuffled order (draw 0); with --draws N, draws 1..N-1 take the first k of each class after
  shuffling the pool with random.Random(d), and the table averages over the draws; "all" is the
  whole pool. The dev set of a few-label point is the next k of each class in the same order
  (labelled data a user would have: from the pool, disjoint from the training articles, never
  from the 445 test articles); "all" has no dev set.
- WNUT-16: the 2,394 tweets of `assets.wnut16()`, shuffled with random.Random(0); the first 80%
  (1,915) train, the rest (479) test.

(1) BBC: accuracy on the held-out 20% of: our MiniLM fine-tuning by the command line with its
    defaults, given only task, model, train and dev (`transferlm finetune --task classify --model
    <MiniLM folder> --train train.jsonl --dev dev.jsonl`: [CLS] pooler head, lr 1e-4, batch 16,
    4 epochs but at least 200 updates, early stopping on dev, max length 256), TF-IDF + logistic
    regression (scikit-learn, sublinear tf, C=10), frozen MiniLM mean-pooled features + logistic
    regression (C=10, features L2-normalised) on the training articles and on training + dev
    articles, and transformers' Trainer (BertForSequenceClassification on the same weights, 25
    epochs, lr 1e-4, batch 8, max length 256, its other defaults: the issue's reference) on the
    training articles (not for "all"; --no-hf skips it).
(2) WNUT-16: entity F1 (our metrics, and seqeval's on the same predictions) of the softmax head
    (Tagger defaults: head lr 1e-3) decoded from the first subword and from the mean over
    subwords (the same trained weights), the softmax head with the head at the encoder's rate
    (1e-4), the CRF head, the span head (head lr 1e-3, trained on 90% of the training tweets,
    its threshold calibrated on the other 10%; flat-decoded: greedy by score, no overlaps, so
    seqeval can read it),
    and transformers' BertForTokenClassification on the same weights (first-subword labels,
    lr 1e-4, batch 16, 5 epochs, linear decay, AdamW: the issue's reference recipe).
(3) Speed: training throughput in real (non-padding) subword tokens per second, WNUT tweets,
    batch 16, max length 128, the same weights, tokenisation, threads and optimizer (fused AdamW),
    one step of each model in turn so both see the same machine load: ours (length-bucketed
    batches; the Encoder drops all-padding columns) vs transformers with random batches padded to
    the longest (its default data collator) and, for reference, transformers fed our bucketed
    batches.

--quick: max length 128 for BBC, learning curve 5 / 10 / 25 per class (no "all"), WNUT on 600
training tweets with 3 epochs for every model (the reference too), speed over 96 tweets.
The full run is heavy on 2 shared cores (hours); the printed time budget says what each part took.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from transferlm.data import assets  # noqa: E402
from transferlm.data.finetune_collate import BucketedBatches, FinetuneCollator  # noqa: E402
from transferlm.heads.classification import masked_mean  # noqa: E402
from transferlm.pipelines import SpanTagger, Tagger  # noqa: E402
from transferlm.training import metrics  # noqa: E402
from transferlm.training.optim import build_optimizer  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.0f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- splits


def bbc_split():
    data = assets.bbc_news()
    order = list(range(len(data)))
    random.Random(0).shuffle(order)
    n_test = len(data) // 5
    test = [data[i] for i in order[:n_test]]
    pool = [data[i] for i in order[n_test:]]
    return pool, test


def wnut_split():
    data = assets.wnut16()
    order = list(range(len(data)))
    random.Random(0).shuffle(order)
    cut = int(0.8 * len(data))
    return [data[i] for i in order[:cut]], [data[i] for i in order[cut:]]


def tag_labels(data):
    tags = sorted({t for _, ts in data for t in ts} - {"O"})
    return ["O"] + tags


# ---------------------------------------------------------------------------------------------- (1) BBC


def frozen_features(texts, max_length):
    from transferlm.models.encoder import Encoder
    from transferlm.tokenization.io import load_tokenizer

    folder = assets.path("minilm")
    enc, tok = Encoder.from_pretrained(folder).eval(), load_tokenizer(folder)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), enc.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for k in range(0, len(order), 32):
            idx = order[k:k + 32]
            encs = tok.encode_batch([texts[i] for i in idx], max_length=max_length, padding="longest")
            ids = torch.tensor([e.ids for e in encs])
            mask = torch.tensor([e.attention_mask for e in encs])
            h = enc(ids, attention_mask=mask).last_hidden_state  # (B, T, C)
            v = masked_mean(h, mask)  # (B, C)
            out[idx] = torch.nn.functional.normalize(v, dim=-1).numpy()
    return out


def draw_train_dev(pool, k, draw: int):
    """(train, dev): the first k and the next k articles of each class in the draw's order."""
    if draw:
        pool = list(pool)
        random.Random(draw).shuffle(pool)
    labels = sorted({y for _, y in pool})
    by = {lab: [p for p in pool if p[1] == lab] for lab in labels}
    return ([x for lab in labels for x in by[lab][:k]], [x for lab in labels for x in by[lab][k:2 * k]])


def _write_jsonl(path: Path, rows) -> None:
    import json

    with open(path, "w", encoding="utf-8") as f:
        for t, y in rows:
            f.write(json.dumps({"text": t, "label": y}) + "\n")


def finetune_cli(train, dev, test, max_length: int, quick: bool) -> tuple[float, dict]:
    """`transferlm finetune` with its defaults on (train, dev); accuracy on test and the run's
    budget / stop / best step (from OUT/metrics.jsonl and the final record)."""
    import json
    import tempfile

    from transferlm.cli import main as cli_main
    from transferlm.pipelines import load

    with tempfile.TemporaryDirectory(prefix="bbc-ft-") as tmp:
        tmp = Path(tmp)
        _write_jsonl(tmp / "train.jsonl", train)
        args = ["finetune", "--task", "classify", "--model", str(assets.path("minilm")),
                "--train", str(tmp / "train.jsonl"), "--out", str(tmp / "out"), "--no-progress"]
        if dev:
            _write_jsonl(tmp / "dev.jsonl", dev)
            args += ["--dev", str(tmp / "dev.jsonl")]
        if quick:
            args += ["--max-length", str(max_length)]
        if cli_main(args) != 0:
            raise RuntimeError(f"transferlm {' '.join(args)} failed")
        log_rows = [json.loads(x) for x in (tmp / "out" / "metrics.jsonl").read_text().splitlines()]
        clf = load(tmp / "out" / "model")
        acc = clf.evaluate([t for t, _ in test], [y for _, y in test])["accuracy"]
    evals = [(r["step"], r["eval_accuracy"]) for r in log_rows if "eval_accuracy" in r]
    steps = max(r["step"] for r in log_rows)
    info = {"steps": steps, "evals": evals}
    if evals:
        best = max(a for _, a in evals)
        info["best_step"] = max(s for s, a in evals if a == best)
    return acc, info


def hf_trainer_classifier(train, test, labels, max_length: int, epochs: float = 25.0, lr: float = 1e-4,
                          batch_size: int = 8) -> float:
    """transformers' Trainer: BertForSequenceClassification on the MiniLM weights, its defaults
    (AdamW, weight decay 0, linear decay without warmup, clipping at 1.0, seed 42 -> set to 0)
    except epochs / lr / batch; accuracy on test."""
    import tempfile

    from transformers import (AutoTokenizer, BertForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = str(assets.path("minilm"))
    tok = AutoTokenizer.from_pretrained(folder)
    index = {lab: i for i, lab in enumerate(labels)}

    def enc(rows):
        return [{**tok(t, truncation=True, max_length=max_length), "labels": index[y]} for t, y in rows]

    with tempfile.TemporaryDirectory(prefix="bbc-hf-") as tmp:
        args = TrainingArguments(output_dir=tmp, num_train_epochs=epochs, learning_rate=lr,
                                 per_device_train_batch_size=batch_size, per_device_eval_batch_size=32,
                                 seed=0, report_to=[], save_strategy="no", logging_strategy="no",
                                 disable_tqdm=True, use_cpu=True, dataloader_num_workers=0)
        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(folder, num_labels=len(labels))
        trainer = Trainer(model=model, args=args, train_dataset=enc(train),
                          data_collator=DataCollatorWithPadding(tok))
        trainer.train()
        pred = trainer.predict(enc(test)).predictions.argmax(-1)
    return metrics.accuracy([index[y] for _, y in test], [int(p) for p in pred])


def bench_bbc(quick: bool, sizes=None, draws: int = 1, hf: bool = True) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    max_length = 128 if quick else 256
    pool, test = bbc_split()
    sizes = sizes or ([5, 10, 25] if quick else [5, 10, 25, "all"])
    log(f"BBC: pool {len(pool)}, test {len(test)}, max length {max_length}, sizes {sizes}, draws {draws}")
    texts = [t for t, _ in pool] + [t for t, _ in test]
    feats = frozen_features(texts, max_length)
    index = {t: i for i, t in enumerate(texts)}
    X_test = feats[len(pool):]
    y_test = [y for _, y in test]
    log("BBC: frozen features done")
    rows = []
    labels = sorted({y for _, y in pool})
    nan = float("nan")
    for k in sizes:
        for d in range(1 if k == "all" else draws):
            train, dev = (pool, []) if k == "all" else draw_train_dev(pool, k, d)
            tx, ty = [t for t, _ in train], [y for _, y in train]
            tfidf = TfidfVectorizer(sublinear_tf=True)
            lr_t = LogisticRegression(C=10.0, max_iter=2000).fit(tfidf.fit_transform(tx), ty)
            acc_tfidf = metrics.accuracy(y_test, list(lr_t.predict(tfidf.transform([t for t, _ in test]))))
            lr_f = LogisticRegression(C=10.0, max_iter=2000).fit(feats[[index[t] for t in tx]], ty)
            acc_frozen = metrics.accuracy(y_test, list(lr_f.predict(X_test)))
            acc_frozen_dev = nan
            if dev:  # the same learner given the dev articles as training data too
                both = tx + [t for t, _ in dev]
                lr_fd = LogisticRegression(C=10.0, max_iter=2000).fit(feats[[index[t] for t in both]],
                                                                      ty + [y for _, y in dev])
                acc_frozen_dev = metrics.accuracy(y_test, list(lr_fd.predict(X_test)))
            t = time.perf_counter()
            acc_ft, info = finetune_cli(train, dev, test, max_length, quick)
            secs = time.perf_counter() - t
            log(f"BBC k={k} draw {d}: ours {acc_ft:.4f} ({info['steps']} updates, best dev at "
                f"{info.get('best_step')}; dev curve {info['evals']})  tfidf+LR {acc_tfidf:.4f}  "
                f"frozen+LR {acc_frozen:.4f}  frozen+LR(train+dev) {acc_frozen_dev:.4f}")
            acc_hf, hf_secs = nan, nan
            if hf and k != "all":
                t = time.perf_counter()
                acc_hf = hf_trainer_classifier(train, test, labels, max_length)
                hf_secs = time.perf_counter() - t
                log(f"BBC k={k} draw {d}: transformers Trainer {acc_hf:.4f} ({hf_secs:.0f}s)")
            rows.append((k, d, len(train), acc_ft, acc_tfidf, acc_frozen, acc_frozen_dev, acc_hf, secs,
                         info["steps"], hf_secs))
    print("\nBBC News, accuracy on the held-out 20% (445 articles); mean over the draws of the training sample;"
          "\nours = `transferlm finetune` defaults with the dev set (k more per class); references on train only"
          " unless marked")
    print(f"{'per class':>10} {'draws':>6} {'n':>5} {'ours':>7} {'tfidf+LR':>9} {'frozen+LR':>10} "
          f"{'frozen+LR(+dev)':>16} {'HF Trainer':>11} {'beats refs':>11} {'updates':>8} {'ours time':>10} "
          f"{'HF time':>8}")
    for k in sizes:
        rs = [r for r in rows if r[0] == k]
        a, b, c, c2, h = (float(np.mean([r[i] for r in rs])) for i in (3, 4, 5, 6, 7))
        beats = a > b and a > c and (math.isnan(h) or a > h)
        secs, upd, hsecs = (float(np.mean([r[i] for r in rs])) for i in (8, 9, 10))
        print(f"{k!s:>10} {len(rs):>6} {rs[0][2]:>5} {a:>7.4f} {b:>9.4f} {c:>10.4f} {c2:>16.4f} {h:>11.4f} "
              f"{str(beats):>11} {upd:>8.0f} {secs:>9.0f}s {hsecs:>7.0f}s")
    print("per draw (ours, frozen+LR, HF Trainer):",
          "; ".join(f"k={r[0]} d{r[1]}: {r[3]:.4f} {r[5]:.4f} {r[7]:.4f}" for r in rows))


# ---------------------------------------------------------------------------------------------- (2) WNUT


def seqeval_f1(gold, pred) -> float | None:
    try:
        from seqeval.metrics import f1_score
    except ImportError:
        return None
    return float(f1_score(gold, pred))


def hf_token_classifier(num_labels: int):
    from transformers import BertForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return BertForTokenClassification.from_pretrained(str(assets.path("minilm")), num_labels=num_labels)


def hf_batches(feats, batch_size, seed, bucketed=False):
    """transformers' default: a random permutation, each batch padded to its longest row."""
    if bucketed:
        b = BucketedBatches(feats, batch_size, seed=seed)
        return [b[i] for i in range(len(b))]
    order = list(range(len(feats)))
    random.Random(seed).shuffle(order)
    return [[feats[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]


def hf_inputs(batch, pad_id):
    b = FinetuneCollator(pad_id)(batch)
    return {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"],
            "token_type_ids": b["token_type_ids"], "labels": b["labels"]}


def train_hf_tagger(ref: Tagger, train, epochs: float, lr: float = 1e-4, batch_size: int = 16):
    """transformers' BertForTokenClassification, first-subword labels, linear decay, AdamW."""
    torch.manual_seed(0)
    model = hf_token_classifier(len(ref.labels)).train()
    feats, _ = ref.features([w for w, _ in train], [t for _, t in train])
    steps_per_epoch = math.ceil(len(feats) / batch_size)
    total = int(epochs * steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)  # HF Trainer defaults
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total))
    step = 0
    for epoch in range(math.ceil(epochs)):
        for batch in hf_batches(feats, batch_size, seed=epoch):
            if step >= total:
                break
            loss = model(**hf_inputs(batch, ref.pad_id)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
    return model.eval()


def hf_predict_tags(model, ref: Tagger, sentences):
    """First-subword argmax of the HF model, through our window / word bookkeeping."""
    feats, owner = ref.features(sentences)
    out = [[None] * len(s) for s in sentences]
    with torch.no_grad():
        for k in range(0, len(feats), 32):
            chunk = feats[k:k + 32]
            b = FinetuneCollator(ref.pad_id)(chunk)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                           token_type_ids=b["token_type_ids"]).logits
            for r, f in enumerate(chunk):
                s = owner[k + r]
                prev = None
                for t, w in enumerate(f["word_ids"]):
                    if w >= 0 and w != prev and out[s][w] is None:
                        out[s][w] = ref.labels[int(logits[r, t].argmax())]
                    prev = w
    return [[t or "O" for t in row] for row in out]


def bio_spans(tags):
    return [(s, e + 1, typ) for typ, s, e in metrics.get_entities(tags)]


def flat_tags(n, spans):
    """Greedy by score, non-overlapping spans -> BIO tags."""
    tags = ["O"] * n
    taken = [False] * n
    for e in sorted(spans, key=lambda e: -e["score"]):
        if any(taken[e["start"]:e["end"]]):
            continue
        for i in range(e["start"], e["end"]):
            taken[i] = True
            tags[i] = ("B-" if i == e["start"] else "I-") + e["label"]
    return tags


def bench_wnut(quick: bool) -> None:
    train, test = wnut_split()
    epochs = 3.0 if quick else 5.0
    if quick:
        train = train[:600]
    labels = tag_labels(train + test)
    gold = [t for _, t in test]
    sents = [w for w, _ in test]
    log(f"WNUT: train {len(train)}, test {len(test)}, epochs {epochs}")
    rows = []

    def score(name, pred, secs):
        rep = metrics.entity_prf(gold, pred)
        rows.append((name, rep.micro.precision, rep.micro.recall, rep.micro.f1, seqeval_f1(gold, pred), secs))
        log(f"WNUT {name}: F1 {rep.micro.f1:.4f}")

    t = time.perf_counter()
    soft = Tagger.new("minilm", labels=labels, head="softmax")
    soft.fit([w for w, _ in train], [x for _, x in train], epochs=epochs, progress=False)
    secs = time.perf_counter() - t
    score("softmax, first subword", soft.predict_tags(sents)[0], secs)
    soft.options.aggregation = "mean"
    score("softmax, mean of subwords", soft.predict_tags(sents)[0], 0.0)

    t = time.perf_counter()
    soft2 = Tagger.new("minilm", labels=labels, head="softmax")
    soft2.fit([w for w, _ in train], [x for _, x in train], epochs=epochs, head_lr=1e-4, progress=False)
    score("softmax, head lr = lr 1e-4", soft2.predict_tags(sents)[0], time.perf_counter() - t)

    t = time.perf_counter()
    crf = Tagger.new("minilm", labels=labels, head="crf")
    crf.fit([w for w, _ in train], [x for _, x in train], epochs=epochs, progress=False)
    score("CRF, first subword", crf.predict_tags(sents)[0], time.perf_counter() - t)

    bench_wnut_spans(quick, train, labels, score, epochs)

    t = time.perf_counter()
    hf = train_hf_tagger(soft, train, epochs)
    score("transformers reference", hf_predict_tags(hf, soft, sents), time.perf_counter() - t)

    print(f"\nWNUT-16, entity-level micro scores on the held-out 20% ({len(test)} tweets)")
    print(f"{'model':<28} {'P':>7} {'R':>7} {'F1':>7} {'seqeval F1':>11} {'train time':>11}")
    for name, p, r, f, s, secs in rows:
        sv = f"{s:.4f}" if s is not None else "n/a"
        print(f"{name:<28} {p:>7.4f} {r:>7.4f} {f:>7.4f} {sv:>11} {secs:>10.0f}s")
    ref = rows[-1][3]
    best = max(rows[:-1], key=lambda r: r[3])
    print(f"best ours ({best[0]}) / transformers: {best[3] / ref if ref else float('nan'):.3f}; "
          f"softmax first-subword - transformers: {rows[0][3] - ref:+.4f}")


# ---------------------------------------------------------------------------------------------- (3) speed


def bench_wnut_spans(quick, train=None, labels=None, score=None, epochs=None) -> None:
    """The span head on WNUT: trained on the first 90% of the training tweets; the threshold on
    its best non-NULL probability calibrated on the other 10% (entities are ~1% of all spans,
    so the argmax is almost always NULL); flat decoding so that seqeval can score it."""
    _, test = wnut_split()
    if train is None:
        train, _ = wnut_split()
        train = train[:600] if quick else train
        labels = tag_labels(train + test)
        epochs = 3.0 if quick else 5.0
    gold = [t for _, t in test]
    sents = [w for w, _ in test]
    if score is None:
        def score(name, pred, secs):
            rep = metrics.entity_prf(gold, pred)
            print(f"{name}: P {rep.micro.precision:.4f} R {rep.micro.recall:.4f} F1 {rep.micro.f1:.4f} "
                  f"seqeval F1 {seqeval_f1(gold, pred)} train time {secs:.0f}s")
    t = time.perf_counter()
    cut = int(0.9 * len(train))
    span_labels = sorted({lab[2:] for lab in labels if lab != "O"})
    st = SpanTagger.new("minilm", labels=span_labels)
    st.fit([w for w, _ in train[:cut]], [bio_spans(x) for _, x in train[:cut]], epochs=epochs, progress=False)
    thr = st.calibrate([w for w, _ in train[cut:]], [bio_spans(x) for _, x in train[cut:]])
    log(f"WNUT span head: threshold {thr:.4f} (calibrated on {len(train) - cut} held-out training tweets)")
    pred = [flat_tags(len(w), e) for w, e in zip(sents, st.predict_tokens(sents))]
    score("span head (flat decoding)", pred, time.perf_counter() - t)


def bench_speed(quick: bool, steps_warmup: int = 2) -> None:
    train, _ = wnut_split()
    sample = train[:96] if quick else train[:480]
    labels = tag_labels(train)
    ours = Tagger.new("minilm", labels=labels, head="softmax", max_length=128)  # the head HF has
    feats, _ = ours.features([w for w, _ in sample], [t for _, t in sample])
    bucket = BucketedBatches(feats, 16, seed=0)
    ours_batches = [bucket[i] for i in range(len(bucket))]
    rand_batches = hf_batches(feats, 16, seed=0)
    collate = FinetuneCollator(ours.pad_id)
    model = ours.model.train()
    opt = build_optimizer(model, 1e-4, 0.01)
    torch.manual_seed(0)
    hf = hf_token_classifier(len(labels)).train()
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    hf2 = hf_token_classifier(len(labels)).train()
    hf2_opt = torch.optim.AdamW(hf2.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def step_ours(batch):
        b = collate(batch)
        loss = model(b)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return int(b["attention_mask"].sum()), b["input_ids"].numel()

    def step_hf(m, o, batch):
        inp = hf_inputs(batch, ours.pad_id)
        m(**inp).loss.backward()
        o.step()
        o.zero_grad(set_to_none=True)
        return int(inp["attention_mask"].sum()), inp["input_ids"].numel()

    runs = {"ours (bucketed)": lambda b: step_ours(b), "transformers (random batches)": lambda b: step_hf(hf, hf_opt, b),
            "transformers (our bucketed batches)": lambda b: step_hf(hf2, hf2_opt, b)}
    data = {"ours (bucketed)": ours_batches, "transformers (random batches)": rand_batches,
            "transformers (our bucketed batches)": ours_batches}
    for name, fn in runs.items():  # warm-up steps, not timed
        for b in data[name][:steps_warmup]:
            fn(b)
    tot = {k: [0.0, 0, 0] for k in runs}
    for i in range(len(ours_batches)):
        for name, fn in runs.items():
            t = time.perf_counter()
            real, padded = fn(data[name][i])
            tot[name][0] += time.perf_counter() - t
            tot[name][1] += real
            tot[name][2] += padded
    print(f"\nTraining speed, WNUT-16 tagging, {len(sample)} tweets in batches of 16, max length 128, "
          f"{torch.get_num_threads()} threads, fused AdamW for all")
    print(f"{'run':<38} {'real tok/s':>11} {'padding':>8} {'time':>7}")
    for name, (secs, real, padded) in tot.items():
        print(f"{name:<38} {real / secs:>11.1f} {1 - real / padded:>8.1%} {secs:>6.1f}s")
    r = tot["ours (bucketed)"]
    h = tot["transformers (random batches)"]
    print(f"ratio ours / transformers (random batches): {(r[1] / r[0]) / (h[1] / h[0]):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small run (see the module docstring)")
    ap.add_argument("--only", default="speed,wnut,bbc", help="comma-separated parts: bbc, wnut, spans (the WNUT span head alone), speed")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--sizes", default=None, help="BBC learning-curve points, e.g. 5,10,25,all (default: all four)")
    ap.add_argument("--no-hf", action="store_true", help="BBC: skip the transformers Trainer reference")
    ap.add_argument("--draws", type=int, default=1,
                    help="BBC: training samples drawn per few-label size, results averaged (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    print(f"benchmarks/finetune.py {'--quick ' if args.quick else ''}--only {','.join(parts)} "
          f"threads {args.threads}, started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    sizes = None
    if args.sizes:
        sizes = [x if x == "all" else int(x) for x in args.sizes.split(",")]
    for p in parts:
        if p == "bbc":
            bench_bbc(args.quick, sizes, args.draws, hf=not args.no_hf)
            continue
        {"wnut": bench_wnut, "spans": bench_wnut_spans, "speed": bench_speed}[p](args.quick)
        log(f"{p} done")


if __name__ == "__main__":
    main()
