"""`transferlm demo`: the main job on the built-in data.

Today it runs the first stage of the transfer-learning story: learn a WordPiece vocabulary with our
learner on unlabeled text (PTB + BBC News), save it as a Hugging Face tokenizer folder, and show
what it learned next to the vocabulary of a real pretrained model (MiniLM, bert-base-uncased ids).
Later stages (pretraining, few-label fine-tuning, the report) are issue #8.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..data import assets

SAMPLES = [
    "The unbelievably fast transformers tokenized everything.",
    "Shareholders rejected the merger after the chancellor's budget statement.",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in data (learn a WordPiece vocabulary)")
    p.add_argument("--out", default="runs/demo", help="report folder (default: runs/demo)")
    p.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary size (default: 8000)")
    p.add_argument("--quick", action="store_true", help="a small run for CI: 2,000 words of vocabulary, PTB only")
    p.set_defaults(func=run)


def corpus_texts(quick: bool) -> list[str]:
    """Unlabeled text: PTB train lines and the BBC News articles (labels are not used here)."""
    texts = [ln for ln in assets.ptb_text("train").splitlines() if ln.strip()]
    if not quick:
        texts += [text for text, _ in assets.bbc_news()]
    return texts


def pieces_per_word(tok, texts: list[str]) -> float:
    encs = tok.encode_batch(texts, add_special_tokens=False, padding=None)
    n_tokens = sum(len(e.ids) for e in encs)
    n_words = sum(len({w for w in e.word_ids if w is not None}) for e in encs)
    return n_tokens / max(n_words, 1)


def run(args: argparse.Namespace) -> int:
    from ..tokenization.io import load_tokenizer
    from ..tokenization.wordpiece import WordPieceTokenizer

    out = Path(args.out)
    vocab_size = 2000 if args.quick else args.vocab_size
    texts = corpus_texts(args.quick)
    n_chars = sum(len(t) for t in texts)
    print(f"[1/1] learning a {vocab_size:,}-piece WordPiece vocabulary on {len(texts):,} texts "
          f"({n_chars / 1e6:.1f} M characters of PTB{'' if args.quick else ' + BBC News'})")
    t0 = time.perf_counter()
    tok = WordPieceTokenizer.train_from_iterator(texts, vocab_size, lowercase=True, progress=True)
    seconds = time.perf_counter() - t0
    tok.save_pretrained(out / "tokenizer")

    minilm = load_tokenizer(assets.path("minilm"))
    heldout = [ln for ln in assets.ptb_text("valid").splitlines() if ln.strip()]
    ours_ppw, ref_ppw = pieces_per_word(tok, heldout), pieces_per_word(minilm, heldout)
    vocab = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    whole = [t for t in vocab if not t.startswith("##") and len(t) > 1 and not t.startswith("[")]
    print(f"learned {tok.vocab_size:,} pieces in {seconds:.1f} s; saved to {out / 'tokenizer'}")
    print(f"last pieces learned: {', '.join(vocab[-12:])}")
    print(f"longest whole-word pieces: {', '.join(sorted(whole, key=len)[-8:])}")
    print(f"held-out PTB valid: {ours_ppw:.3f} pieces per word with ours, "
          f"{ref_ppw:.3f} with MiniLM's 30,522-piece vocabulary")
    for s in SAMPLES:
        print(f"  ours  : {' '.join(tok.encode(s).tokens)}")
        print(f"  MiniLM: {' '.join(minilm.encode(s).tokens)}")
    summary = {"vocab_size": tok.vocab_size, "learn_seconds": round(seconds, 2), "texts": len(texts),
               "pieces_per_word_ours": round(ours_ppw, 4), "pieces_per_word_minilm": round(ref_ppw, 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0
