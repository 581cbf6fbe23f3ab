"""Byte-level BPE speed, ours against Hugging Face `tokenizers` on one thread, measured in one run.

1. Encode throughput (MB/s of UTF-8 text) with the SmolLM2 vocabulary (from the GGUF file) on
   real text (PTB valid + test and all BBC articles), a fresh tokenizer (empty cache) each side.
2. Learner time for a 30k vocabulary on ~10 MB of text (PTB train + BBC) against the Rust
   BpeTrainer, and whether the two learned the same merges.

Run: .venv/bin/python benchmarks/bpe.py [--vocab-size 30000] [--skip-train]
"""

from __future__ import annotations

import os
import sys


os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported: one thread, like ours
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402


def encode_benchmark() -> None:
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import AutoTokenizer

    from transferlm.data import assets
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer

    p = assets.path("smollm2")
    texts = assets.ptb_text("valid").split("\n") + assets.ptb_text("test").split("\n")
    texts += [t for t, _ in assets.bbc_news()]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    ours = ByteLevelBPETokenizer.from_gguf(p)
    hf = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    ref = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    ref.pre_tokenizer = pre_tokenizers.Sequence(  # SmolLM2's own split (see tests/test_bytelevel_bpe.py)
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    ref.post_processor = None

    t0 = time.perf_counter()
    ref_out = ref.encode_batch(texts, add_special_tokens=False)
    t_ref = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ours_out = [ours.encode(t) for t in texts]
        t_ours = time.perf_counter() - t0
        ours_nc = ByteLevelBPETokenizer(ours.vocab, ours.merges, pattern=ours.pattern_name,
                                        added_tokens=ours.added_token_objects())
        ours_nc.cache_size = 1  # no cache to speak of: every pre-token merged from scratch
        t0 = time.perf_counter()
        for t in texts[:2000]:
            ours_nc.encode(t)
        mb_nc = sum(len(t.encode("utf-8")) for t in texts[:2000]) / 1e6
        t_nc = time.perf_counter() - t0
    same = all(r.ids == o.ids for r, o in zip(ref_out, ours_out))
    n_tok = sum(len(o) for o in ours_out)
    print(f"encode: {len(texts)} texts, {mb:.2f} MB, {n_tok} tokens, SmolLM2 vocabulary; identical ids: {same}")
    print(f"  tokenizers (1 thread) {mb / t_ref:8.2f} MB/s   ({t_ref:.2f} s)")
    print(f"  ours                  {mb / t_ours:8.2f} MB/s   ({t_ours:.2f} s)")
    print(f"  ratio (tokenizers / ours) {t_ours / t_ref:.1f}x slower")
    print(f"  ours without the pre-token cache: {mb_nc / t_nc:.2f} MB/s (first 2000 texts)")


def train_benchmark(vocab_size: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from transferlm.data import assets
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer
    from transferlm.tokenization.corpus import count_byte_level_words

    with tempfile.TemporaryDirectory() as d:
        files = [Path(d) / "ptb_train.txt", Path(d) / "bbc.txt"]
        files[0].write_text(assets.ptb_text("train"), encoding="utf-8")
        files[1].write_text("\n".join(t for t, _ in assets.bbc_news()), encoding="utf-8")
        mb = sum(f.stat().st_size for f in files) / 1e6

        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        t0 = time.perf_counter()
        tk.train([str(f) for f in files], tr)
        t_ref = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts = count_byte_level_words(files)
        t_count = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = ByteLevelBPETokenizer.train_from_counts(counts, vocab_size, special_tokens=["<|endoftext|>"])
        t_merge = time.perf_counter() - t0
        t_ours = t_count + t_merge

    model = json.loads(tk.to_str())["model"]
    ref_merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    print(f"train: {mb:.1f} MB (PTB train + BBC), {len(counts)} distinct pre-tokens, vocab {vocab_size}")
    print(f"  tokenizers BpeTrainer (1 thread) {t_ref:7.2f} s")
    print(f"  ours                             {t_ours:7.2f} s  (count {t_count:.2f} s + merges {t_merge:.2f} s)")
    print(f"  ratio {t_ours / t_ref:.1f}x (goal: within 10x); same merges: {ours.merges == ref_merges}, "
          f"same vocab: {ours.vocab == model['vocab']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab-size", type=int, default=30000)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-encode", action="store_true")
    args = ap.parse_args()
    if not args.skip_encode:
        encode_benchmark()
    if not args.skip_train:
        train_benchmark(args.vocab_size)


if __name__ == "__main__":
    main()
