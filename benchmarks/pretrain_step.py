"""The demo's pretraining step: steps per minute of this tree against a baseline commit, one process.

`transferlm demo` pretrains a bert-tiny BERT (MLM + NSP) for a fixed wall-time budget, so every
millisecond cut from its step is more pretraining in the same minutes. This script builds the
demo's stage-2 pretraining twice in one process: once from the package as it was at `--baseline`
(a git commit, extracted with `git archive` and imported as `transferlm_baseline`), with that
commit's `DemoConfig` defaults, and once from this tree with its own defaults (or the `--configs`
given). Each is built by its own package's builder, as its demo's stage 2 builds it (this tree:
objectives/builder.py's `build_pretraining("bert", ...)`; the baseline: its cli/pretrain.py
`build()`): the demo's model preset, a WordPiece vocabulary of the demo's size learned on PTB
train (the text the demo pretrains on, less the BBC articles), NSP sentence pairs, the MLM collator
with token masking; each step is the shared Trainer's whole step (collate, forward, backward,
clipping, AdamW, schedule) with precision fp32, as stage 2 runs it. The steps of all
configurations alternate, one each in turn, so that every one sees the same machine load.

Prints, per configuration: wall and CPU ms per step (medians), steps per minute, tokens per second
(real tokens, padding excluded) and the ratios against the baseline measured in the same run.

With `--budget-minutes M` it then pretrains each configuration from scratch for the step count
that M minutes give at the speed just measured (the demo's own planning: budget / seconds per
step; warmup 6%, linear decay), and scores the held-out MLM accuracy on the same 256 PTB valid
sentence pairs with the same masks for all (the demo's held-out measure), beside the unigram
baseline. The step count comes from the timing above, so give enough `--steps` (30) for a
steady plan: with 10 on a shared machine the plan can be off by 10% or more.

    python benchmarks/pretrain_step.py [--baseline REV] [--steps 30] [--threads 1] [--work DIR]
                                       [--configs 16x64,32x64,16x64:bf16] [--budget-minutes 4]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import transferlm
from transferlm.demo.data import corpus_text

REPO = Path(__file__).resolve().parents[1]


def baseline_package(rev: str, where: Path):
    """The package as it was at commit `rev`, imported as `transferlm_baseline` (relative imports only)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    home = where / f"baseline_{commit[:12]}"
    dest = home / "transferlm_baseline"
    if not dest.exists():
        tmp = Path(tempfile.mkdtemp(dir=where))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src/transferlm"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        home.mkdir(parents=True, exist_ok=True)
        (tmp / "src" / "transferlm").rename(dest)
    sys.path.insert(0, str(home))
    return importlib.import_module("transferlm_baseline")


def prepare(work: Path, vocab_size: int) -> tuple[Path, Path, Path]:
    """PTB train as the demo's pretraining text, a WordPiece vocabulary of the demo's size learned
    on it (as stage 1, frequency score, min count 2), and PTB valid as the held-out text."""
    from transferlm.data import assets
    from transferlm.fileio import atomic_write_text
    from transferlm.tokenization.wordpiece import WordPieceTokenizer

    tok_dir, text, held = work / f"tokenizer_{vocab_size}", work / "ptb_train.txt", work / "ptb_valid.txt"
    if not (tok_dir / "vocab.txt").exists():
        lines = [ln.strip() for ln in assets.ptb_text("train").splitlines() if ln.strip()]
        tok = WordPieceTokenizer.train_from_iterator(lines, vocab_size, lowercase=True, min_frequency=2,
                                                     score="frequency", progress=False)
        tok.save_pretrained(tok_dir)
        atomic_write_text(text, corpus_text(lines, []))
        valid = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()]
        atomic_write_text(held, corpus_text(valid, []))
    return tok_dir, text, held


class Run:
    """One configuration: a package (baseline or this tree), batch x length, its model and Trainer."""

    def __init__(self, name: str, pkg, demo_cfg, batch: int, length: int, tok_dir: Path, text: Path,
                 work: Path, max_steps: int, warmup_fraction: float = 0.0, precision: str = "fp32"):
        self.name, self.pkg, self.batch, self.length = name, pkg, batch, length
        P = pkg.__name__
        m = lambda mod: importlib.import_module(f"{P}.{mod}")  # noqa: E731
        tok = m("tokenization.io").load_tokenizer(tok_dir)
        m("training").seed_everything(demo_cfg.seed)
        try:
            builder = m("objectives.builder")  # this tree: the one pretraining builder (CLI, demo, benchmarks)
        except ModuleNotFoundError:
            builder = None
        if builder is not None:
            p = builder.build_pretraining("bert", tok, work / f"corpus_{P}", [str(text)], model=demo_cfg.model,
                                          max_length=length, seed=demo_cfg.seed, progress=False)
            self.model, self.dataset, self.collate, self.specials = p.model, p.dataset, p.collate, p.specials
            self.pretraining = p
        else:  # the baseline: cli/pretrain.py's build(), which its demo stage 2 called
            cli = m("cli.pretrain")
            pcfg = cli.PretrainConfig(preset="bert", data=[str(text)], tokenizer=str(tok_dir), model=demo_cfg.model,
                                      output=str(work / f"out_{P}"), max_length=length, batch_size=batch,
                                      lr=demo_cfg.lr, seed=demo_cfg.seed, progress_bar=False)
            self.model, self.dataset, self.collate, tok, _ = cli.build(pcfg)
            self.specials = {r: tok.special_token_id(r) for r in ("cls", "sep", "mask", "pad")}
            self.pretraining = None
        tr = m("training")
        cfg = tr.TrainerConfig(run_dir=str(work / "runs" / name.replace(" ", "_")), max_steps=max_steps,
                               batch_size=batch, lr=demo_cfg.lr,
                               warmup_steps=max(1, int(warmup_fraction * max_steps)), seed=demo_cfg.seed,
                               log_every=max(1, min(10, max_steps // 20)), save_every=0, progress_bar=False,
                               precision=precision, resume=False)
        self.trainer = tr.Trainer(self.model, self.dataset, self.collate, cfg)
        self.model.train()
        self.times: list[float] = []  # wall seconds per step
        self.cpu: list[float] = []  # this thread's CPU seconds per step (all of it with 1 thread)
        self.tokens: list[int] = []

    def step(self) -> None:
        """One optimizer step of the Trainer (the data position advances as in fit())."""
        t = self.trainer
        t0, c0 = time.perf_counter(), time.thread_time()
        _, n_tokens = t._train_step(t.model)
        self.cpu.append(time.thread_time() - c0)
        self.times.append(time.perf_counter() - t0)
        self.tokens.append(n_tokens)
        t.step += 1


def heldout_evaluator(held: Path, tok_dir: Path, work: Path, run: Run, n_examples: int = 256):
    """The demo's held-out measure, from this tree's builder: PTB valid NSP pairs, masked once
    (fixed masks); the same batches score every configuration."""
    from transferlm.objectives.builder import token_corpus
    from transferlm.tokenization.io import load_tokenizer

    corpus = token_corpus([str(held)], work / "heldout_corpus", load_tokenizer(tok_dir), progress=False)
    return run.pretraining.evaluator(corpus, n_examples)


def _shape(spec: str) -> tuple[int, int, str]:
    """"16x64" -> (16, 64, "fp32"); "16x64:bf16" -> bf16 autocast (the Trainer's precision option)."""
    shape, _, precision = spec.partition(":")
    b, t = shape.split("x")
    return int(b), int(t), precision or "fp32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="8e903e0", help="git commit of the baseline (default: main before issue #12's speed work)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "transferlm_pretrain_step"))
    ap.add_argument("--configs", default="", help="this tree's batch x length list, e.g. 16x64,32x64,16x64:bf16 "
                    "(default: its DemoConfig's, fp32 as the demo)")
    ap.add_argument("--budget-minutes", type=float, default=0.0, help="then pretrain each for this budget and "
                    "score held-out MLM accuracy (0: timing only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    base = baseline_package(args.baseline, work)
    base_cfg = importlib.import_module("transferlm_baseline.demo.stages").DemoConfig()
    new_cfg = importlib.import_module("transferlm.demo.stages").DemoConfig()
    if base_cfg.vocab_size != new_cfg.vocab_size or base_cfg.model != new_cfg.model:
        raise SystemExit("the baseline and this tree pretrain different vocabularies or models: not one demo")
    tok_dir, text, held = prepare(work, new_cfg.vocab_size)
    shapes = [_shape(c) for c in args.configs.split(",") if c] or [(new_cfg.batch_size, new_cfg.max_length, "fp32")]

    def make_runs(max_steps: dict[str, int] | None = None) -> list[Run]:
        """The baseline with its defaults, then this tree's shapes; `max_steps` per name for real runs."""
        specs = [(f"baseline {args.baseline} {base_cfg.batch_size}x{base_cfg.max_length}", base, base_cfg,
                  base_cfg.batch_size, base_cfg.max_length, "fp32")]
        specs += [(f"this tree {b}x{t}{' bf16' if p == 'bf16' else ''}", transferlm, new_cfg, b, t, p)
                  for b, t, p in shapes]
        shutil.rmtree(work / "runs", ignore_errors=True)
        return [Run(name, pkg, cfg, b, t, tok_dir, text, work, (max_steps or {}).get(name, 10**6),
                    cfg.warmup_fraction if max_steps else 0.0, p) for name, pkg, cfg, b, t, p in specs]

    runs = make_runs()
    print(f"torch {torch.__version__}, {args.threads} thread(s); model {new_cfg.model}, vocabulary "
          f"{new_cfg.vocab_size}; {len(runs[0].dataset):,} sentence pairs of PTB train; baseline = {args.baseline}",
          flush=True)
    for _ in range(args.warmup):
        for r in runs:
            r.step()
    for r in runs:
        r.times.clear(), r.cpu.clear(), r.tokens.clear()
    for _ in range(args.steps):
        for r in runs:
            r.step()
    # Wall time is what the demo's budget counts; on a shared machine it also counts the time other
    # processes hold the core, so the thread's CPU time is printed too (with 1 thread it is the
    # whole step). "paired": the median over rounds of (baseline's step / this one's) in the same
    # round, the steps next to each other in time, which load drifting during the run moves less.
    print(f"{'configuration':34s} {'wall ms':>8s} {'CPU ms':>7s} {'steps/min':>10s} {'tokens/s':>9s}   "
          f"ratios to the baseline: {'steps/min':>9s} {'paired':>7s} {'CPU':>6s} {'tokens/s':>9s}")
    ref, ref_cpu = statistics.median(runs[0].times), statistics.median(runs[0].cpu)
    ref_tok = sum(runs[0].tokens) / sum(runs[0].times)
    for r in runs:
        med, cpu = statistics.median(r.times), statistics.median(r.cpu)
        tok_s = sum(r.tokens) / sum(r.times)
        paired = statistics.median(b / t for b, t in zip(runs[0].times, r.times))
        print(f"{r.name:34s} {med * 1e3:8.1f} {cpu * 1e3:7.1f} {60 / med:10.0f} {tok_s:9,.0f}   "
              f"{'':23s} {ref / med:8.2f}x {paired:6.2f}x {ref_cpu / cpu:5.2f}x "
              f"{tok_s / ref_tok:8.2f}x", flush=True)
    if args.budget_minutes <= 0:
        return

    plan = {r.name: max(10, int(args.budget_minutes * 60 / statistics.median(r.times))) for r in runs}  # wall time
    print(f"\npretraining each for {args.budget_minutes:g} min worth of steps at the speed measured above:", flush=True)
    runs = make_runs(plan)
    evaluator = heldout_evaluator(held, tok_dir, work, next(r for r in runs if r.pretraining is not None))
    print(f"held-out: {evaluator.masked_tokens} masked tokens of 256 PTB valid pairs; unigram baseline "
          f"{evaluator.unigram_accuracy:.1%}", flush=True)
    for r in runs:
        t0 = time.perf_counter()
        r.trainer.fit()
        seconds = time.perf_counter() - t0
        r.model.eval()
        with torch.no_grad():
            res = evaluator(r.model)
        print(f"{r.name:34s} {plan[r.name]:6d} steps of {r.batch}x{r.length} in {seconds:6.1f} s: held-out MLM "
              f"accuracy {res['mlm_accuracy']:.2%} (loss {res['mlm_loss']:.3f})", flush=True)


if __name__ == "__main__":
    main()
