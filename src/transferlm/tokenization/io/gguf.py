"""GGUF: the tokenizer stored in a llama.cpp model file, read as byte-level BPE.

`load_gguf` reads the ``tokenizer.ggml.*`` metadata (tokens, merges, token types, the
pre-tokenizer name, the special-token ids, add_bos / add_eos) with the `gguf` package and builds
a `ByteLevelBPETokenizer`; SmolLM2's GGUF is the tested one (tests/test_bytelevel_bpe.py).

What it does not do: SentencePiece ("llama") vocabularies, writing GGUF, or the model weights
(models/ reads those).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..added import AddedToken
from ..bpe import ByteLevelBPETokenizer
from ..bytelevel import GGUF_PRE, bytes_to_unicode


def load_gguf(path: str | os.PathLike, pattern: str | None = None) -> ByteLevelBPETokenizer:
    """Build from a GGUF file's tokenizer metadata (llama.cpp's `tokenizer.ggml.*` keys).

    Token types (llama.cpp): 1 normal, 3 control -> special added token, 4 user-defined ->
    added token that is not special. `tokenizer.ggml.pre` picks the pre-split regex; for
    SmolLM2 it says "smollm", which llama.cpp and SmolLM2's own tokenizer.json implement as
    individual digits + the GPT-2 regex. (transformers' GGUF loader, as of 5.23, has no entry
    for "smollm" and falls back to the plain GPT-2 regex; the two differ only on whitespace
    right before a digit. Pass `pattern="gpt2"` to reproduce it.) `pattern` overrides the file's
    pre-tokenizer: a name of `bytelevel.PATTERNS` or a regex.
    """
    from gguf import GGUFReader

    path = Path(path)
    reader = GGUFReader(str(path))

    def get(key, default=None):
        f = reader.fields.get(key)
        return default if f is None else f.contents()

    model = get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(f"{path}: tokenizer.ggml.model is {model!r}; byte-level BPE needs 'gpt2'")
    tokens = get("tokenizer.ggml.tokens")
    merges_raw = get("tokenizer.ggml.merges")
    if tokens is None or merges_raw is None:
        raise ValueError(f"{path}: missing tokenizer.ggml.tokens or tokenizer.ggml.merges")
    types = get("tokenizer.ggml.token_type") or [1] * len(tokens)
    pre = get("tokenizer.ggml.pre", "default")
    if pre not in GGUF_PRE:
        raise ValueError(f"{path}: tokenizer.ggml.pre={pre!r} is not a pre-tokenizer we know ({sorted(GGUF_PRE)})")
    spelling = bytes_to_unicode()
    alpha = set(spelling.values())
    vocab: dict[str, int] = {}
    added = []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        if ty == 3 or ty == 4:
            added.append(AddedToken(tok, i, special=(ty == 3)))
        elif not set(tok) <= alpha:  # a token stored as raw text: spell its bytes (as transformers does)
            tok = "".join(spelling[b] for b in tok.encode("utf-8"))
        vocab[tok] = i
    merges = []
    for r, m in enumerate(merges_raw):
        parts = m.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}: tokenizer.ggml.merges[{r}] = {m!r}; expected two symbols")
        merges.append((parts[0], parts[1]))
    special = {}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"),
                      ("unk", "unknown_token_id")):
        i = get(f"tokenizer.ggml.{key}")
        if i is not None:
            special[role] = tokens[int(i)]
    tok = ByteLevelBPETokenizer(vocab, merges, pattern=pattern or GGUF_PRE[pre], added_tokens=added, special_tokens=special,
              ignore_merges=GGUF_PRE[pre] == "llama3")
    add_bos = bool(get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(get("tokenizer.ggml.add_eos_token", False))
    tok.template = tok._template_for(add_bos, add_eos)
    return tok


__all__ = ["load_gguf"]
