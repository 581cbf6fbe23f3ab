"""LSTM language models on PTB and ULMFiT on BBC News (issue #13).

    python benchmarks/lstm.py ptb --run small [--minutes 13]   # one resumable training chunk
    python benchmarks/lstm.py ptb --report                    # valid / test perplexity of the finished runs
    python benchmarks/lstm.py ulmfit --stage general|target [--minutes 13]
    python benchmarks/lstm.py bbc [--draws 3]                  # ULMFiT vs the same LSTM from scratch, 10 per class
    python benchmarks/lstm.py elmo [--steps 1500] [--cove-steps 1500] [--epochs 5]  # ELMo / CoVe / GloVe, WNUT-16 F1

Every training run is `transferlm lm train` with --save-every, killed after --minutes (SIGTERM)
and resumed by the next call from its last checkpoint (the Trainer's exact resume), so each call
fits one ~15-minute slot of the shared heavy lock. Runs live in runs/bench-lstm/<name>.

PTB (the `ptb` asset: Mikolov's splits, 10k vocabulary with <eos>):
- small: Zaremba et al. 2014's small model (2 x 200 LSTM, BPTT 20, batch 20, SGD, init +-0.1,
  no dropout; lr 1 / clip 5 on the BPTT-summed loss = lr 20 / clip 0.25 on our mean loss) with
  tied embeddings. The published schedule is 13 epochs (30,199 steps; lr halved every epoch
  from the 5th); `--epochs E` trains E epochs with the lr held until DECAY_START epochs have
  passed (a fraction of an epoch: a constant lr 20), which is what fitted this machine's budget.
- awd, awd-light: the same model and schedule with the AWD-LSTM regularisers (awd-light: the awd-small
  preset; awd: stronger ones, nearer Merity et al.'s).
Test perplexity: `transferlm lm evaluate` (--report: 1 stream, the whole test set in order).

ULMFiT / BBC (benchmarks/finetune.py's seeded split: 1,780-article pool, 445 test articles):
- general: an LSTM LM on PTB train + the text of the pool articles ("words" tokenizer, 10k vocabulary).
- target: that LM fine-tuned on the pool's text (ULMFiT sec. 3.2: Adam, slanted triangular,
  discriminative rates).
- bbc: for each draw of 10 labelled articles per class (+10 per class dev, logged only), the
  classifier by `transferlm finetune --task classify --model <target LM>` (ULMFiT recipe) and the
  same LSTM classifier from random weights with the same recipe; accuracy on the 445 test articles.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

RUNS = ROOT / "runs" / "bench-lstm"
EPOCHS, DECAY_START = 7, 4
PTB_RUNS = {
    "small": ["--preset", "zaremba-small"],
    # Merity et al. 2018's AWD-LSTM strengths, scaled down (valid 120.3 / test 115.6 after 7 epochs)
    "awd": ["--preset", "awd-small", "--dropout", "0.3", "--dropouth", "0.2", "--dropouti", "0.4",
            "--dropoute", "0.1", "--wdrop", "0.3"],
    # the awd-small preset: about two thirds of those (valid 105.1 / test 101.3 after 7 epochs)
    "awd-light": ["--preset", "awd-small"],
}
COMMON = ["--epochs", str(EPOCHS), "--decay-start", str(DECAY_START), "--precision", "bf16", "--save-every", "200"]


def cli(args: list[str], minutes: float | None = None) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=os.environ.get("BENCH_THREADS", "2"))
    cmd = [sys.executable, "-m", "transferlm", *args]
    print("$", " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True,
                           timeout=minutes * 60 if minutes else None)
    except subprocess.TimeoutExpired:
        print(f"stopped after {minutes} minutes: run again to resume", flush=True)
        return 124, ""
    print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "(no output)", flush=True)
    return p.returncode, p.stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def metrics(run: Path) -> list[dict]:
    f = run / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.is_file() else []


def ptb_train(name: str, minutes: float, epochs: float) -> None:
    run = RUNS / f"ptb-{name}"
    cli(["lm", "train", "--train", "ptb:train", "--valid", "ptb:valid", "--out", str(run), "--no-progress",
         *PTB_RUNS[name], *COMMON, "--epochs", str(epochs)], minutes)


def ptb_report() -> None:
    print("\nPTB word-level perplexity (valid: 10 streams, BPTT 35; test: 1 stream)")
    print(f"{'run':>8} {'epochs':>6} {'steps':>6} {'valid':>8} {'test':>8} {'train tok/s':>11}")
    for name in PTB_RUNS:
        run = RUNS / f"ptb-{name}"
        if not (run / "model" / "config.json").is_file():
            print(f"{name:>8}  (not finished)")
            continue
        rows = metrics(run)
        valid = [r["eval_ppl"] for r in rows if "eval_ppl" in r]
        tok = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
        rc, out = cli(["lm", "evaluate", "--model", str(run / "model"), "--text", "ptb:test", "--batch-size", "1"])
        test = last_json(out)["perplexity"]
        print(f"{name:>8} {EPOCHS:>6} {max(r['step'] for r in rows):>6} {valid[-1]:>8.2f} {test:>8.2f} "
              f"{sorted(tok)[len(tok) // 2]:>11,.0f}")
        print(f"{'':>8} valid per epoch: {', '.join(f'{v:.1f}' for v in valid)}")


# ------------------------------------------------------------------------------------------ ULMFiT

def bbc_pool_text() -> Path:
    from finetune import bbc_split

    pool, _ = bbc_split()
    RUNS.mkdir(parents=True, exist_ok=True)
    f = RUNS / "bbc-pool.txt"
    if not f.is_file():
        f.write_text("\n".join(t for t, _ in pool) + "\n", encoding="utf-8")
    return f


def ulmfit_train(stage: str, minutes: float, epochs: float) -> None:
    text = str(bbc_pool_text())
    if stage == "general":
        cli(["lm", "train", "--train", "ptb:train", text, "--tokenizer", "words", "--max-vocab", "10000",
             "--out", str(RUNS / "ulmfit-general"), "--no-progress", "--preset", "zaremba-small",
             "--epochs", str(epochs), "--decay-start", "1", "--decay-factor", "1", "--bptt", "35",
             "--batch-size", "32", "--save-every", "20"], minutes)
    else:
        cli(["lm", "train", "--init", str(RUNS / "ulmfit-general" / "model"), "--train", text,
             "--out", str(RUNS / "ulmfit-target"), "--no-progress", "--preset", "ulmfit-finetune",
             "--epochs", str(epochs), "--bptt", "35", "--batch-size", "32", "--save-every", "20"], minutes)


def bbc(draws: int, k: int = 10, epochs: float = 20.0, max_length: int = 250) -> None:
    import torch

    from finetune import _write_jsonl, bbc_split, draw_train_dev

    from transferlm.pipelines.ulmfit import UlmfitClassifier

    torch.set_num_threads(2)
    lm_dir = RUNS / "ulmfit-target" / "model"
    pool, test = bbc_split()
    rows = []
    for d in range(draws):
        train, dev = draw_train_dev(pool, k, d)
        with tempfile.TemporaryDirectory(prefix="ulmfit-bbc-") as tmp:
            tmp = Path(tmp)
            _write_jsonl(tmp / "train.jsonl", train)
            _write_jsonl(tmp / "dev.jsonl", dev)
            t0 = time.time()
            rc, out = cli(["finetune", "--task", "classify", "--model", str(lm_dir), "--train", str(tmp / "train.jsonl"),
                           "--dev", str(tmp / "dev.jsonl"), "--out", str(tmp / "ulmfit"), "--no-progress",
                           "--epochs", str(epochs), "--max-length", str(max_length)])
            if rc != 0:
                raise RuntimeError("transferlm finetune failed")
            clf = UlmfitClassifier.from_pretrained(tmp / "ulmfit" / "model")
            acc_u = clf.evaluate([t for t, _ in test], [y for _, y in test])["accuracy"]
            t_u = time.time() - t0
            labels = sorted({y for _, y in train})
            t0 = time.time()
            scratch = UlmfitClassifier.new(lm_dir, labels, pretrained=False, seed=0, max_length=max_length)
            scratch.fit([t for t, _ in train], [y for _, y in train], epochs=epochs, out_dir=str(tmp / "scratch"),
                        progress=False)
            acc_s = scratch.evaluate([t for t, _ in test], [y for _, y in test])["accuracy"]
            t_s = time.time() - t0
        print(f"draw {d}: ULMFiT {acc_u:.4f} ({t_u:.0f}s), from scratch {acc_s:.4f} ({t_s:.0f}s)", flush=True)
        rows.append((acc_u, acc_s))
    mu = sum(r[0] for r in rows) / len(rows)
    ms = sum(r[1] for r in rows) / len(rows)
    print(f"\nBBC News, {k} labels per class, {draws} draws, accuracy on the 445 test articles")
    print(f"{'ULMFiT (PTB+BBC LM -> BBC LM -> classifier)':>45} {mu:.4f}")
    print(f"{'same LSTM classifier from scratch':>45} {ms:.4f}")
    print("per draw (ULMFiT, scratch):", [(round(a, 4), round(b, 4)) for a, b in rows])


# ------------------------------------------------------------------------------------------ ELMo

def _train_tagger(featurize, dim: int, train, tags: list[str], epochs: int, mix=None, seed: int = 0):
    """A linear softmax tagging head (with ELMo's scalar mix when given) on frozen word features."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    head = torch.nn.Linear(dim, len(tags))
    params = list(head.parameters()) + (list(mix.parameters()) if mix is not None else [])
    opt = torch.optim.Adam(params, lr=1e-2)
    tag_id = {t: i for i, t in enumerate(tags)}
    order = list(range(len(train)))
    for ep in range(epochs):
        random.Random(seed + ep).shuffle(order)
        for k in range(0, len(order), 32):
            batch = [train[i] for i in order[k:k + 32]]
            feats, mask = featurize([w for w, _ in batch])  # (B, T, dim) or layers
            x = mix(feats) if mix is not None else feats
            gold = torch.zeros(mask.shape, dtype=torch.long)
            for b, (_, ts) in enumerate(batch):
                gold[b, :len(ts)] = torch.tensor([tag_id.get(t, 0) for t in ts])
            loss = F.cross_entropy(head(F.dropout(x, 0.2))[mask], gold[mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head


def elmo_vs_glove(steps: int, epochs: int, quick: bool = False, cove_steps: int = 1500) -> None:
    """A small ELMo biLM trained here (PTB train + the WNUT training tweets), CoVe trained here on the
    same sentences (models/cove.py: a denoising seq2seq over GloVe inputs, no translation data exists
    here) as [GloVe; CoVe], and frozen GloVe 6B 50d vectors alone, each under the same linear softmax
    tagging head; entity F1 (seqeval) on the benchmarks/finetune.py WNUT-16 test split."""
    import numpy as np
    import torch
    from finetune import wnut_split
    from seqeval.metrics import f1_score

    from transferlm.embeddings.vectors import load_glove_asset
    from transferlm.models.cove import CoVe, DenoisingPairs
    from transferlm.models.elmo import BiLM, BiLMCollate, ScalarMix
    from transferlm.models.lstm import WordVocab
    from transferlm.training.trainer import Trainer, TrainerConfig

    torch.set_num_threads(2)
    train, test = wnut_split()
    if quick:
        train, test = train[:200], test[:100]
    tags = sorted({t for _, ts in train for t in ts})
    sents = [l.split() for l in assets_ptb_lines()] + [w for w, _ in train]
    vocab = WordVocab.build([" ".join(s) for s in sents], max_size=10000)
    torch.manual_seed(0)
    bilm = BiLM(len(vocab), dim=128, num_layers=2)
    t0 = time.time()
    cfg = TrainerConfig(run_dir=str(RUNS / "elmo"), max_steps=steps, batch_size=32, lr=2e-3, weight_decay=0.0,
                        log_every=50, save_every=100, progress_bar=False, precision="fp32", device="cpu")
    Trainer(bilm, sents, BiLMCollate(vocab.stoi, bilm.chars, 40), cfg).fit()
    print(f"biLM: {steps} steps of 32 sentences ({time.time() - t0:.0f}s)", flush=True)
    bilm.eval()

    def elmo_feats(sentences):
        with torch.no_grad():
            return bilm.features(sentences)

    glove = load_glove_asset()
    gi = {w: i for i, w in enumerate(glove.words)}
    gm = torch.tensor(np.asarray(glove.matrix), dtype=torch.float32)

    def glove_feats(sentences):
        T = max(map(len, sentences))
        x = torch.zeros(len(sentences), T, gm.shape[1])
        mask = torch.zeros(len(sentences), T, dtype=torch.bool)
        for b, s in enumerate(sentences):
            for t, w in enumerate(s):
                mask[b, t] = True
                if w.lower() in gi:
                    x[b, t] = gm[gi[w.lower()]]
        return x, mask

    def f1(featurize, head, mix=None):
        pred = []
        with torch.no_grad():
            for k in range(0, len(test), 64):
                batch = [w for w, _ in test[k:k + 64]]
                feats, mask = featurize(batch)
                x = mix(feats) if mix is not None else feats
                ids = head(x).argmax(-1)
                pred += [[tags[i] for i in ids[b, :len(s)].tolist()] for b, s in enumerate(batch)]
        return f1_score([ts for _, ts in test], pred)

    # CoVe: the GloVe rows these sentences reach (+ the test tweets' words: the input table is frozen
    # GloVe, nothing of the test set is learned), targets = the 10k-word vocabulary above.
    words = {w.lower() for s in sents for w in s} | {w.lower() for ws, _ in test for w in ws}
    rows = sorted(gi[w] for w in words if w in gi)
    sub = {glove.words[r]: i for i, r in enumerate(rows)}
    tgt_stoi = {w: i + 4 for i, w in enumerate(vocab.itos[2:])}  # 0 <unk>, 1 <bos>, 2 <eos>, 3 <pad>
    torch.manual_seed(0)
    cove = CoVe(gm[rows], len(tgt_stoi) + 4, hidden=128)
    pairs = DenoisingPairs(sub, cove.unk_id, tgt_stoi, max_len=40)
    t0 = time.time()
    ccfg = TrainerConfig(run_dir=str(RUNS / "cove"), max_steps=cove_steps, batch_size=32, lr=2e-3, weight_decay=0.0,
                         log_every=50, save_every=100, progress_bar=False, precision="fp32", device="cpu")
    Trainer(cove, sents, pairs, ccfg).fit()
    print(f"CoVe: {cove_steps} steps of 32 sentences ({time.time() - t0:.0f}s)", flush=True)
    cove.eval()

    def cove_feats(sentences):
        T = max(map(len, sentences))
        ids = torch.full((len(sentences), T), cove.unk_id, dtype=torch.long)
        mask = torch.zeros(len(sentences), T, dtype=torch.bool)
        for b, s in enumerate(sentences):
            ids[b, :len(s)] = torch.tensor(pairs.source_ids(s))
            mask[b, :len(s)] = True
        with torch.no_grad():
            return cove.features(ids, mask), mask

    class GloveElmo(torch.nn.Module):
        """[GloVe(w); ELMo_task(w)]: Peters et al. 2018 sec. 3.3 add ELMo to the task model's own input
        vectors (GloVe in their taggers) rather than replacing them."""

        def __init__(self):
            super().__init__()
            self.mix = ScalarMix(bilm.num_layers + 1)

        def forward(self, feats):
            layers, g = feats
            return torch.cat([g, self.mix(layers)], -1)

    def glove_elmo(sentences):  # ((ELMo layers, GloVe vectors), mask) as f1() and _train_tagger() expect
        layers, mask = elmo_feats(sentences)
        return (layers, glove_feats(sentences)[0]), mask

    mix = ScalarMix(bilm.num_layers + 1)
    head_e = _train_tagger(elmo_feats, 2 * bilm.dim, train, tags, epochs, mix=mix)
    mix_ge = GloveElmo()
    head_ge = _train_tagger(glove_elmo, gm.shape[1] + 2 * bilm.dim, train, tags, epochs, mix=mix_ge)
    head_c = _train_tagger(cove_feats, gm.shape[1] + 2 * cove.hidden, train, tags, epochs)
    head_g = _train_tagger(glove_feats, gm.shape[1], train, tags, epochs)
    fe, fge = f1(elmo_feats, head_e, mix), f1(glove_elmo, head_ge, mix_ge)
    fc, fg = f1(cove_feats, head_c), f1(glove_feats, head_g)
    print(f"\nWNUT-16 entity F1 (seqeval), frozen features + linear softmax head, {epochs} epochs, "
          f"{len(train)} train / {len(test)} test tweets")
    print(f"{'ELMo (trained here, scalar mix)':>34} {fe:.4f}")
    print(f"{'[GloVe; ELMo] (ELMo trained here)':>34} {fge:.4f}")
    print(f"{'[GloVe; CoVe] (CoVe trained here)':>34} {fc:.4f}")
    print(f"{'GloVe 6B 50d':>34} {fg:.4f}")
    print("mix weights softmax(s):", [round(float(w), 3) for w in mix.scalars.detach().softmax(0)], "gamma",
          round(float(mix.gamma.detach()), 3))


def assets_ptb_lines() -> list[str]:
    from transferlm.data import assets

    return [l for l in assets.ptb_text("train").splitlines() if l.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["ptb", "ulmfit", "bbc", "elmo"])
    ap.add_argument("--steps", type=int, default=1500, help="elmo: biLM training steps (batch 32 sentences)")
    ap.add_argument("--cove-steps", type=int, default=1500, help="elmo: CoVe training steps (batch 32 sentences)")
    ap.add_argument("--quick", action="store_true", help="elmo: 200 / 100 tweets (a smoke test)")
    ap.add_argument("--run", choices=sorted(PTB_RUNS), default="small")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--stage", choices=["general", "target"], default="general")
    ap.add_argument("--minutes", type=float, default=13.0)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=None, help="ptb: the run's epochs (default 4); ulmfit: "
                    "LM epochs (default 0.06 general, 0.15 target); bbc: classifier epochs (default 20)")
    ap.add_argument("--max-length", type=int, default=250)
    a = ap.parse_args()
    if a.what == "ptb":
        ptb_report() if a.report else ptb_train(a.run, a.minutes, a.epochs or EPOCHS)
    elif a.what == "ulmfit":
        ulmfit_train(a.stage, a.minutes, a.epochs or (0.06 if a.stage == "general" else 0.15))
    elif a.what == "elmo":
        elmo_vs_glove(a.steps, int(a.epochs or 5), a.quick, a.cove_steps)
    else:
        bbc(a.draws, epochs=a.epochs or 20.0, max_length=a.max_length)


if __name__ == "__main__":
    main()
