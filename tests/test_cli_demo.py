"""`transferlm demo --quick`, the README's first command in its CI-sized form, end to end."""

import json

from transferlm.cli import main
from transferlm.tokenization.io import load_tokenizer


def test_demo_quick_learns_a_vocabulary_and_reports_it(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vocab_size"] == 2000
    assert summary["texts"] == 42068  # every non-empty PTB train line
    # A 2,000-piece vocabulary splits held-out words more than MiniLM's 30,522 pieces, but covers them.
    assert 1.0 < summary["pieces_per_word_minilm"] < summary["pieces_per_word_ours"] < 8.0
    tok = load_tokenizer(out / "tokenizer")
    assert tok.vocab_size == 2000
    enc = tok.encode("the market fell")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert "[UNK]" not in enc.tokens
    assert "pieces per word" in capsys.readouterr().out
