"""The demo's report folder: one table and four figures, every number measured in the run.

OUT/report/
  results.json      every number of the table, the pretraining summary, the options and the split
  report.md         the table (Markdown) and the figures
  pretraining.png   pretraining loss (MLM, NSP) and MLM accuracy (training batches, held-out PTB
                    valid, the unigram baseline) against the step
  finetuning.png    fine-tuning loss and dev accuracy of the three encoders and the two LSTM
                    classifiers against the step (TF-IDF, GloVe and prompting have no curve)
  confusion.png     the test confusion matrix of each method (rows: true topic, normalised)
  bank.png          MiniLM's contextual vectors of "bank" in river and money sentences: their
                    cosine similarities and a 2-D projection (PCA) — one word, two meanings

Figures are drawn with matplotlib's Agg backend and written atomically (temporary file, rename).

Does not: train or score anything (stages.py does), or keep models (they are in OUT/models/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..training.checkpointing import atomic_write, atomic_write_text
from ..training.logging import read_metrics
from .data import DemoData

# The "bank" example: one spelling, two senses (river side / financial institution). A static
# vector gives every occurrence the same point; a contextual encoder separates them.
BANK_SENTENCES = [
    ("river", "We sat on the grassy bank of the river and watched the water."),
    ("river", "The canoe drifted toward the muddy bank where the stream bends."),
    ("river", "Fishermen lined the bank of the stream at dawn."),
    ("river", "Flood water rose over the bank and into the fields."),
    ("money", "She deposited her salary at the bank on Monday morning."),
    ("money", "The bank raised its interest rates on loans and savings accounts."),
    ("money", "He robbed the bank and escaped with the cash."),
    ("money", "The central bank cut rates to support the economy."),
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    _plt().close(fig)
    return path


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


# ------------------------------------------------------------------------------------------ figures

def plot_pretraining(run_dir: Path, pre: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    recs = read_metrics(run_dir, strict=False)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "total"), ("mlm_loss", "MLM"), ("nsp_loss", "NSP")):
        x, y = _series(recs, key)
        if x:
            a.plot(x, y, label=label)
    a.set(xlabel="step", ylabel="training loss", title=f"pretraining {pre['model']} (MLM + NSP)")
    a.grid(alpha=0.3)
    a.legend()
    x, y = _series(recs, "mlm_accuracy")
    b.plot(x, y, label="training batches", alpha=0.6)
    x, y = _series(recs, "eval_mlm_accuracy")
    b.plot(x, y, marker="o", label="held-out (PTB valid)")
    b.axhline(pre["unigram_accuracy"], color="grey", ls="--", label="unigram baseline")
    b.set(xlabel="step", ylabel="MLM accuracy (masked positions)", title="MLM accuracy rises")
    b.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    b.grid(alpha=0.3)
    b.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_finetuning(out: Path, fine: dict[str, dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for method, r in fine.items():
        run_dir = out / "finetune" / method
        if not (run_dir / "metrics.jsonl").exists():
            continue  # TF-IDF has no curve
        recs = read_metrics(run_dir, strict=False)
        x, y = _series(recs, "loss")
        a.plot(x, y, label=r["title"])
        x, y = _series(recs, "eval_accuracy")
        b.plot(x, y, marker=".", label=r["title"])
    a.set(xlabel="step", ylabel="training loss", title="fine-tuning loss")
    a.set_yscale("log")
    a.grid(alpha=0.3)
    a.legend()
    b.set(xlabel="step", ylabel="dev accuracy", title="dev accuracy (after each epoch)", ylim=(0, 1.02))
    b.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    b.grid(alpha=0.3)
    b.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(labels: list[str], gold: list[str], fine: dict[str, dict[str, Any]], path: Path) -> Path:
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    ncols = min(len(fine), 5)  # rows of up to five matrices
    nrows = -(-len(fine) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(fine):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, fine.values()):
        cm = confusion_matrix(gold, r["pred"], labels=labels)  # (K, K): rows true, columns predicted
        rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if rows[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(len(labels)), [lab[:5] for lab in labels], rotation=45)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        first = r["first_sample_accuracy"]  # the run whose predictions these are
        ax.set_title(f"{r['title']}\naccuracy {first:.1%}" + (" (sample 1)" if r["samples"] > 1 else ""),
                     fontsize=9)
    for row in axes:
        row[0].set_ylabel("true topic")
    fig.tight_layout()
    return _save(fig, path)


def bank_vectors(model: Any = "minilm") -> tuple[list[str], np.ndarray]:
    """(senses, (N, C) vectors of the word "bank", one per sentence) from the last layer."""
    from ..embeddings.contextual import embed_words

    words = embed_words([s for _, s in BANK_SENTENCES], model, word_pooling="first", layers="last")
    vecs = []
    for (sense, text), wv in zip(BANK_SENTENCES, words):
        if wv.words.count("bank") != 1:
            raise ValueError(f"expected one 'bank' in {text!r}, got words {wv.words}")
        vecs.append(wv.vectors[wv.words.index("bank")])
    return [s for s, _ in BANK_SENTENCES], np.stack(vecs)


def bank_similarity(senses: list[str], vecs: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(cosine matrix, mean same-sense cosine, mean cross-sense cosine), diagonal excluded."""
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = unit @ unit.T  # (N, N)
    same = np.array([[a == b for b in senses] for a in senses])
    off = ~np.eye(len(senses), dtype=bool)
    return sim, float(sim[same & off].mean()), float(sim[~same].mean())


def plot_bank(path: Path) -> tuple[Path, float, float]:
    plt = _plt()
    senses, vecs = bank_vectors("minilm")
    sim, within, across = bank_similarity(senses, vecs)
    short = [f"{s}: …{t[max(0, t.find('bank') - 14):t.find('bank') + 12]}…" for s, t in BANK_SENTENCES]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.25, 1]})
    im = a.imshow(sim, cmap="viridis")
    a.set_xticks(range(len(short)), [str(i + 1) for i in range(len(short))])
    a.set_yticks(range(len(short)), [f"{i + 1} {s}" for i, s in enumerate(short)], fontsize=7)
    a.set_title(f'cosine of "bank" vectors (MiniLM, last layer)\nsame sense {within:.2f}, '
                f"other sense {across:.2f}", fontsize=9)
    fig.colorbar(im, ax=a, fraction=0.046)
    centred = vecs - vecs.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T  # (N, 2): the first two principal components
    for sense, colour in (("river", "tab:green"), ("money", "tab:orange")):
        idx = [i for i, s in enumerate(senses) if s == sense]
        b.scatter(xy[idx, 0], xy[idx, 1], c=colour, s=60, label=f"bank ({sense})")
        for i in idx:
            b.annotate(str(i + 1), xy[i], textcoords="offset points", xytext=(5, 4), fontsize=8)
    b.set(title='"bank" in 8 sentences (PCA of the vectors)', xlabel="PC 1", ylabel="PC 2")
    b.grid(alpha=0.3)
    b.legend()
    fig.tight_layout()
    return _save(fig, path), within, across


# ------------------------------------------------------------------------------------------ the table

def table_rows(pre: dict[str, Any], fine: dict[str, dict[str, Any]],
               lstm: dict[str, Any] | None = None) -> list[list[str]]:
    rows = []
    for method, r in fine.items():
        if method == "pretrained":
            init = f"{pre['steps']} steps here ({pre['seconds']:.0f} s{', resumed' if pre.get('resumed') else ''})"
        elif method == "ulmfit" and lstm is not None:
            g, t = lstm["general"], lstm["target"]
            init = f"LM {g['steps']} + {t['steps']} steps here ({g['seconds'] + t['seconds']:.0f} s)"
        elif method == "minilm":
            init = "pretrained elsewhere (1B+ sentence pairs)"
        elif method == "word2vec" and lstm is not None and "word2vec" in lstm:
            w = lstm["word2vec"]
            init = f"word2vec here ({w['epochs']} x {w['words'] / 1e6:.1f} M words, {w['seconds']:.0f} s)"
        elif method in ("glove", "glove_finetune"):
            init = "GloVe, elsewhere (6B tokens)"
        elif method == "prompting":
            init = "pretrained elsewhere (no update)"
        elif method in ("random", "lstm_random", "bag_random"):
            init = "none (random init)"
        else:
            init = "none"
        t = f"{r['train_seconds']:.1f} s" + (" (resumed)" if r.get("resumed") else "")
        acc = f"{r['accuracy']:.1%}"
        if r["samples"] > 1:
            acc += f" +- {r['accuracy_sd']:.1%}"
        if method == "prompting":  # no weights change: the time is caching the demonstrations
            t = f"{r['train_seconds']:.1f} s (prompt)"
        rows.append([r["title"], init, str(r["train_examples"]), t, acc, f"{r['macro_f1']:.3f}"])
    return rows


HEADER = ["method", "pretraining", "labels", "fine-tuning time", "test accuracy", "macro F1"]  # accuracy,
# F1 and time: means over the label samples (+- the accuracy's standard deviation)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(HEADER, *rows)]
    fmt = lambda r: "  ".join(x.ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(HEADER), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def write_report(cfg, data: DemoData, vocab: dict[str, Any], pre: dict[str, Any],
                 fine: dict[str, dict[str, Any]], seconds: float, lstm: dict[str, Any] | None = None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    gold = [lab for _, lab in data.test]
    steps = ["pretraining.png", "finetuning.png", "confusion.png", "bank.png"]
    bank = (float("nan"), float("nan"))
    with tqdm(total=len(steps), desc="figures", unit="png", disable=not cfg.progress, leave=False) as bar:
        plot_pretraining(out / "pretrain", pre, rep / "pretraining.png")
        bar.update(1)
        plot_finetuning(out, fine, rep / "finetuning.png")
        bar.update(1)
        plot_confusion(data.labels, gold, fine, rep / "confusion.png")
        bar.update(1)
        _, *bank = plot_bank(rep / "bank.png")
        bar.update(1)
    rows = table_rows(pre, fine, lstm)
    summary = {
        "options": cfg.results_key(),
        "split": {"test_articles": len(data.test), "train_split_articles": len(data.train),
                  "labels_per_class": cfg.labels_per_class, "labels": data.labels},
        "vocabulary": vocab,
        "pretraining": pre,
        "lstm_lm": lstm,
        "finetuning": {m: {k: v for k, v in r.items() if k not in ("pred", "raw_pred")} for m, r in fine.items()},
        "bank_cosine": {"same_sense": round(bank[0], 4), "other_sense": round(bank[1], 4)},
        "figures": steps,
        "seconds_this_run": round(seconds, 1),
    }
    atomic_write_text(rep / "results.json", json.dumps(summary, indent=1) + "\n")
    md = [f"# transferlm demo: {cfg.labels_per_class} labels per topic on BBC News", "",
          f"Scored on {len(data.test)} held-out articles (seeded stratified 80/20 split, seed {cfg.seed}); "
          f"accuracy, macro F1 and time are means over {len(data.samples)} samples of the labels "
          f"(+- the accuracy's standard deviation); figures show the first sample.", "",
          markdown_table(rows), "",
          f"Pretraining: {pre['model']}, {pre['steps']} steps of {pre['batch_size']} x {pre['max_length']} tokens "
          f"in {pre['seconds']:.0f} s; held-out MLM accuracy {pre['heldout_mlm_accuracy']:.1%} "
          f"(unigram baseline {pre['unigram_accuracy']:.1%}); mean cosine between the input embeddings of the "
          f"rarest pieces {pre['rare_embedding_cosine']:.2f} (about 0 at random initialisation).", "",
          *([f"LSTM LM (ULMFiT): {lstm['general']['steps']} steps on PTB + the BBC train split, held-out PTB valid "
             f"perplexity {lstm['general']['heldout_ppl']:.0f} (unigram model {lstm['general']['unigram_ppl']:.0f}), then "
             f"{lstm['target']['steps']} steps of target fine-tuning on the BBC train split.", ""] if lstm else []),
          f'MiniLM\'s "bank": mean cosine {bank[0]:.2f} between occurrences of the same sense, '
          f"{bank[1]:.2f} across senses.", ""]
    md += [f"![{s}]({s})" for s in steps]
    atomic_write_text(rep / "report.md", "\n".join(md) + "\n")
    print()
    print(text_table(rows))
    print()
    print(f"pretraining: held-out MLM accuracy {pre['heldout_mlm_accuracy']:.1%} after {pre['steps']} steps "
          f"(unigram baseline {pre['unigram_accuracy']:.1%});  "
          f'"bank" cosine: same sense {bank[0]:.2f}, other sense {bank[1]:.2f}')
    if lstm:
        print(f"LSTM LM: held-out PTB valid perplexity {lstm['general']['heldout_ppl']:.0f} after "
              f"{lstm['general']['steps']} steps (unigram model {lstm['general']['unigram_ppl']:.0f}), then "
              f"{lstm['target']['steps']} target steps on the BBC train split")
    print(f"report: {rep / 'report.md'} (+ {', '.join(steps)}); models: {out / 'models'}")
    return summary
