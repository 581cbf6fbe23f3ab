"""Pretraining corpora: raw text -> documents -> sentences -> token ids in memory-mapped shards,
and the readers that turn the shards into training examples.

Input (`iter_documents`): text files (a blank line ends a document, BERT's
create_pretraining_data.py format), JSON lines files (`.jsonl` / `.json`: one object per line with a
"text" field = one document) and folders of those (walked in sorted order). A line of text is split
further into sentences at sentence-final punctuation (`sentence_split="punct"`) or kept whole
(`"line"`). Errors name the file and line: bytes that are not UTF-8, a bad JSON line, a JSON line
without the text field. Empty sentences and documents are skipped and counted.

On disk (`build_corpus` writes, `TokenCorpus` reads), in one folder:
  corpus.json          metadata, written last (atomically): a folder without it is not a corpus
  tokens_00000.bin ... token ids, uint16 when the vocabulary fits in 65,536 ids, else uint32
  words_00000.bin  ... uint8, 1 where a token starts a word (for whole-word and span masking)
  sentences.bin        int64, num_sentences + 1 offsets into the token stream
  documents.bin        int64, num_documents + 1 offsets into the sentence index
  counts.npy           int64 (V,) token counts: the unigram distribution for random replacements
Building streams: documents are read one at a time, tokenized in batches of sentences and appended
to the open shard; the corpus is never held in memory (only a batch and the index offsets).

Readers (map-style: `len` and `[i]`, deterministic for a given seed and epoch, so a resumed run
reads the same examples):
- `NSPDataset`: BERT's sentence-pair examples (Devlin et al. 2019 sec. 3.1 and
  create_pretraining_data.py's create_instances_from_document): `[CLS] A [SEP] B [SEP]` with B the
  actual continuation half of the time and a segment of a random other document otherwise,
  truncated longest-first (from the front or the back at random) to `max_length`.
- `PackedDataset`: the token stream cut into contiguous blocks (documents joined by a separator),
  for causal LM (GPT) and for single-segment MLM (RoBERTa FULL-SENTENCES, SpanBERT), optionally
  wrapped as `[CLS] block [SEP]`.

Does not: tokenize (it takes any tokenizer with `encode_batch`), mask (the collator does), or
deduplicate / clean text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

FORMAT = "transferlm-corpus"
VERSION = 1
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
# Split after . ! ? (and closing quotes / brackets) when whitespace and an upper-case letter,
# digit or opening quote follow. A heuristic: "Mr. Smith" splits; BERT's own data came one
# sentence per line, which `sentence_split="line"` keeps as it is.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass
class Document:
    source: str  # "path:line" where the document starts
    sentences: list[str]


def split_sentences(line: str, mode: str = "punct") -> list[str]:
    if mode == "line":
        return [line.strip()] if line.strip() else []
    if mode != "punct":
        raise ValueError(f"sentence_split must be 'punct' or 'line', not {mode!r}")
    return [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]


def _files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a file read as UTF-8, streaming; an error names the line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                 f"{e.start + 1}); expected UTF-8 text") from None


def iter_documents(paths: Iterable[str | os.PathLike], *, sentence_split: str = "punct",
                   text_key: str = "text") -> Iterator[Document]:
    """Documents of the given files and folders, in order; see the module docstring for formats."""
    for path in _files(paths):
        if path.suffix.lower() in JSON_SUFFIXES:
            for lineno, line in _lines(path):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: bad JSON ({e.msg} at column {e.colno}); "
                                     f"expected one JSON object per line") from None
                if not isinstance(obj, dict) or not isinstance(obj.get(text_key), str):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object with a string {text_key!r} field")
                sents = [s for ln in obj[text_key].splitlines() for s in split_sentences(ln, sentence_split)]
                yield Document(f"{path}:{lineno}", sents)
        else:
            sents: list[str] = []
            start = 1
            for lineno, line in _lines(path):
                if line.strip():
                    if not sents:
                        start = lineno
                    sents += split_sentences(line, sentence_split)
                elif sents:
                    yield Document(f"{path}:{start}", sents)
                    sents = []
            if sents:
                yield Document(f"{path}:{start}", sents)


# ------------------------------------------------------------------------------------------ building

TokenizeFn = Callable[[list[str]], list[tuple[list[int], list[int]]]]


def tokenize_with(tokenizer: Any) -> TokenizeFn:
    """Adapt a tokenizer with `encode_batch` (our `Tokenizer`, or HF `tokenizers.Tokenizer`) to
    texts -> [(ids, word_start flags)], without special tokens."""

    def fn(texts: list[str]) -> list[tuple[list[int], list[int]]]:
        encs = tokenizer.encode_batch(texts, add_special_tokens=False)
        out = []
        for e in encs:
            n = sum(e.attention_mask)  # tokenizers that pad a batch by default: keep the real tokens
            w = e.word_ids[:n]
            starts = [1 if j == 0 or w[j] is None or w[j] != w[j - 1] else 0 for j in range(n)]
            out.append((list(e.ids[:n]), starts))
        return out

    return fn


class _ShardWriter:
    def __init__(self, folder: Path, dtype: np.dtype, shard_tokens: int):
        self.folder, self.dtype, self.shard_tokens = folder, dtype, shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._tok = self._word = None
        self._n = 0

    def _open(self) -> None:
        k = len(self.shards)
        self.shards.append({"tokens": f"tokens_{k:05d}.bin", "words": f"words_{k:05d}.bin", "num_tokens": 0})
        self._tok = open(self.folder / self.shards[-1]["tokens"], "wb")
        self._word = open(self.folder / self.shards[-1]["words"], "wb")

    def write(self, ids: np.ndarray, starts: np.ndarray) -> None:
        while len(ids):
            if self._tok is None or self.shards[-1]["num_tokens"] >= self.shard_tokens:
                self.close()
                self._open()
            room = self.shard_tokens - self.shards[-1]["num_tokens"]
            self._tok.write(ids[:room].astype(self.dtype).tobytes())
            self._word.write(starts[:room].astype(np.uint8).tobytes())
            self.shards[-1]["num_tokens"] += len(ids[:room])
            ids, starts = ids[room:], starts[room:]

    def close(self) -> None:
        for f in (self._tok, self._word):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._tok = self._word = None


def build_corpus(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, tokenize: TokenizeFn | Any,
                 vocab_size: int, *, sentence_split: str = "punct", text_key: str = "text",
                 shard_tokens: int = 1 << 26, batch_sentences: int = 2048, progress: bool = True) -> "TokenCorpus":
    """Tokenize documents into shards in `out_dir` (see the module docstring); returns the reader.

    `tokenize` is a function texts -> [(ids, word-start flags)] or a tokenizer with `encode_batch`.
    Shards hold up to `shard_tokens` tokens (64 Mi by default: 128 MiB of uint16).
    """
    if not callable(tokenize) or hasattr(tokenize, "encode_batch"):
        tokenize = tokenize_with(tokenize)
    final = Path(out_dir)
    made = [q for q in [final.parent, *final.parent.parents] if not q.exists()]  # removed again on failure
    final.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary sibling name and renamed into place only when complete: bad input
    # (an empty corpus, bytes that are not UTF-8 on line 90,000) leaves nothing half-written.
    out = final.parent / f".{final.name}.building-{os.getpid()}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    try:
        _build_into(paths, out, tokenize, vocab_size, sentence_split=sentence_split, text_key=text_key,
                    shard_tokens=shard_tokens, batch_sentences=batch_sentences, progress=progress)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        for q in made:  # folders this call created, deepest first
            try:
                q.rmdir()
            except OSError:
                break
        raise
    if not final.exists():
        os.replace(out, final)
        return TokenCorpus(final)
    # An existing folder (a previous build, or the caller's own folder): only our files are replaced,
    # the metadata last, so the folder is never a corpus with a mix of old and new shards.
    (final / "corpus.json").unlink(missing_ok=True)
    for f in final.iterdir():
        if f.is_file() and _CORPUS_FILE.fullmatch(f.name):
            f.unlink()
    for f in sorted(out.iterdir(), key=lambda f: f.name == "corpus.json"):
        os.replace(f, final / f.name)
    out.rmdir()
    return TokenCorpus(final)


_CORPUS_FILE = re.compile(r"(tokens|words)_\d{5}\.bin|sentences\.bin|documents\.bin|counts\.npy|corpus\.json(\.tmp)?")


def _build_into(paths: Sequence[str | os.PathLike], out: Path, tokenize: TokenizeFn, vocab_size: int, *,
                sentence_split: str, text_key: str, shard_tokens: int, batch_sentences: int, progress: bool) -> None:
    meta_path = out / "corpus.json"
    dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    writer = _ShardWriter(out, dtype, shard_tokens)
    counts = np.zeros(vocab_size, dtype=np.int64)
    n_tokens = n_sents = n_docs = skipped_docs = skipped_sents = 0
    sent_f = open(out / "sentences.bin", "wb")
    doc_f = open(out / "documents.bin", "wb")
    sent_f.write(np.int64(0).tobytes())
    doc_f.write(np.int64(0).tobytes())
    pending: list[str] = []  # sentences waiting to be tokenized
    pending_docs: list[tuple[str, int]] = []  # (source, number of sentences) of the pending documents
    bar = tqdm(desc="tokenizing", unit="doc", disable=not progress)

    def flush() -> None:
        nonlocal n_tokens, n_sents, n_docs, skipped_docs, skipped_sents
        if not pending:
            return
        results = tokenize(pending)
        if len(results) != len(pending):
            raise ValueError(f"the tokenizer returned {len(results)} encodings for {len(pending)} texts")
        k = 0
        sent_offsets, doc_offsets = [], []
        for source, n in pending_docs:
            kept = 0
            for ids, starts in results[k:k + n]:
                if not ids:
                    skipped_sents += 1
                    continue
                arr = np.asarray(ids, dtype=np.int64)
                if arr.min() < 0 or arr.max() >= vocab_size:
                    raise ValueError(f"{source}: token id {int(arr.max())} outside the vocabulary of {vocab_size}")
                st = np.asarray(starts, dtype=np.uint8)
                st[0] = 1  # a sentence starts a word
                writer.write(arr, st)
                counts[:] += np.bincount(arr, minlength=vocab_size)
                n_tokens += len(arr)
                n_sents += 1
                kept += 1
                sent_offsets.append(n_tokens)
            k += n
            if kept:
                n_docs += 1
                doc_offsets.append(n_sents)
            else:
                skipped_docs += 1
        sent_f.write(np.asarray(sent_offsets, dtype=np.int64).tobytes())
        doc_f.write(np.asarray(doc_offsets, dtype=np.int64).tobytes())
        bar.update(len(pending_docs))
        bar.set_postfix(tokens=f"{n_tokens:,}")
        pending.clear()
        pending_docs.clear()

    sources = [str(p) for p in paths]
    try:
        for doc in iter_documents(paths, sentence_split=sentence_split, text_key=text_key):
            pending += doc.sentences
            pending_docs.append((doc.source, len(doc.sentences)))
            if len(pending) >= batch_sentences:
                flush()
        flush()
    finally:
        writer.close()
        for f in (sent_f, doc_f):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        bar.close()
    if n_docs == 0:
        raise ValueError(f"no text found in {', '.join(sources)}: expected at least one non-empty line "
                         f"(skipped {skipped_docs} empty documents)")
    np.save(out / "counts.npy", counts)
    meta = {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "vocab_size": vocab_size,
            "num_tokens": n_tokens, "num_sentences": n_sents, "num_documents": n_docs,
            "skipped_empty_sentences": skipped_sents, "skipped_empty_documents": skipped_docs,
            "shards": writer.shards, "sources": sources, "sentence_split": sentence_split}
    tmp = meta_path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta_path)


# ------------------------------------------------------------------------------------------ reading

class TokenCorpus:
    """Memory-mapped view of a built corpus: tokens, word starts, sentence and document offsets."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / "corpus.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: missing; build the corpus first (an interrupted build leaves none)")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}:{e.lineno}: bad JSON ({e.msg})") from None
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: expected format {FORMAT!r}, found {self.meta.get('format')!r}")
        self.dtype = np.dtype(self.meta["dtype"])
        self.vocab_size = int(self.meta["vocab_size"])
        self._tokens = [np.memmap(self.folder / s["tokens"], dtype=self.dtype, mode="r") if s["num_tokens"] else
                        np.zeros(0, self.dtype) for s in self.meta["shards"]]
        self._words = [np.memmap(self.folder / s["words"], dtype=np.uint8, mode="r") if s["num_tokens"] else
                       np.zeros(0, np.uint8) for s in self.meta["shards"]]
        self._shard_start = np.concatenate([[0], np.cumsum([s["num_tokens"] for s in self.meta["shards"]])]).astype(np.int64)
        self.sentences = np.memmap(self.folder / "sentences.bin", dtype=np.int64, mode="r")
        self.documents = np.memmap(self.folder / "documents.bin", dtype=np.int64, mode="r")
        if len(self.sentences) != self.meta["num_sentences"] + 1 or len(self.documents) != self.meta["num_documents"] + 1:
            raise ValueError(f"{self.folder}: the index files do not match corpus.json (an interrupted rebuild?)")

    @property
    def num_tokens(self) -> int:
        return int(self._shard_start[-1])

    @property
    def num_documents(self) -> int:
        return len(self.documents) - 1

    def unigram_counts(self) -> np.ndarray:
        return np.load(self.folder / "counts.npy")

    def _read(self, arrays: list[np.ndarray], start: int, end: int) -> np.ndarray:
        if not 0 <= start <= end <= self.num_tokens:
            raise IndexError(f"token range [{start}, {end}) outside the corpus of {self.num_tokens} tokens")
        parts = []
        k = int(np.searchsorted(self._shard_start, start, side="right")) - 1
        while start < end:
            s0 = self._shard_start[k]
            stop = min(end, self._shard_start[k + 1])
            parts.append(np.asarray(arrays[k][start - s0:stop - s0]))
            start, k = stop, k + 1
        return np.concatenate(parts) if parts else np.zeros(0, arrays[0].dtype if arrays else np.int64)

    def tokens(self, start: int, end: int) -> np.ndarray:
        """Token ids [start, end) of the whole stream, as int64."""
        return self._read(self._tokens, start, end).astype(np.int64)

    def word_starts(self, start: int, end: int) -> np.ndarray:
        return self._read(self._words, start, end)

    def document_sentences(self, d: int) -> tuple[int, int]:
        """Sentence index range [first, last) of document d."""
        return int(self.documents[d]), int(self.documents[d + 1])

    def sentence_span(self, first: int, last: int) -> tuple[int, int]:
        """Token range of sentences [first, last) (contiguous: they are stored in order)."""
        return int(self.sentences[first]), int(self.sentences[last])


def _word_ids(starts: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Word index per token from word-start flags; -1 at special tokens."""
    s = starts.astype(np.int64) * (special == 0)
    ids = np.cumsum(s) - 1
    return np.where(special == 1, -1, np.maximum(ids, 0))


def _seed(*parts: int) -> np.random.Generator:
    return np.random.default_rng([p & 0xFFFFFFFF for p in parts])


class NSPDataset:
    """BERT sentence pairs for MLM + NSP. Example: input_ids, token_type_ids, special_tokens_mask,
    word_ids, next_sentence_label (0 = B follows A, 1 = B is random), as numpy arrays / int.

    The pairs of an epoch are drawn once (`set_epoch`) as sentence ranges; tokens are read from the
    memory map when an example is asked for.
    """

    def __init__(self, corpus: TokenCorpus, max_length: int = 128, *, cls_id: int, sep_id: int, seed: int = 0,
                 short_seq_prob: float = 0.1, random_next_prob: float = 0.5):
        if max_length < 5:
            raise ValueError(f"max_length {max_length} leaves no room for [CLS] A [SEP] B [SEP]")
        self.corpus, self.max_length, self.cls_id, self.sep_id = corpus, max_length, cls_id, sep_id
        self.seed, self.short_seq_prob, self.random_next_prob = seed, short_seq_prob, random_next_prob
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self.plan = self._plan(_seed(self.seed, epoch, 0x4E5350))

    def _plan(self, rng: np.random.Generator) -> np.ndarray:
        """Rows (a_first, a_last, b_first, b_last, is_random) in sentence indices, following
        create_instances_from_document."""
        c = self.corpus
        sent_len = np.diff(np.asarray(c.sentences))
        docs = np.asarray(c.documents)
        n_docs = c.num_documents
        max_num_tokens = self.max_length - 3  # [CLS], [SEP], [SEP]
        rows: list[tuple[int, int, int, int, int]] = []
        for d in range(n_docs):
            first, last = int(docs[d]), int(docs[d + 1])
            # "We *usually* want to fill up the entire sequence ... however, we *sometimes* (10% of
            # the time) want to use shorter sequences to minimize the mismatch between pre-training
            # and fine-tuning." (create_pretraining_data.py)
            target = max_num_tokens
            if rng.random() < self.short_seq_prob:
                target = int(rng.integers(2, max_num_tokens + 1))
            chunk_start, cur_len, i = first, 0, first
            while i < last:
                cur_len += int(sent_len[i])
                if i == last - 1 or cur_len >= target:
                    n_chunk = i + 1 - chunk_start
                    a_end = chunk_start + (1 if n_chunk < 2 else int(rng.integers(1, n_chunk)))
                    if n_chunk == 1 or rng.random() < self.random_next_prob:
                        target_b = max(1, target - int(sent_len[chunk_start:a_end].sum()))
                        rd = d
                        for _ in range(10):  # as BERT: a different document, 10 tries
                            rd = int(rng.integers(n_docs))
                            if rd != d or n_docs == 1:
                                break
                        r_first, r_last = int(docs[rd]), int(docs[rd + 1])
                        b_first = int(rng.integers(r_first, r_last))
                        b_last, b_len = b_first, 0
                        while b_last < r_last and b_len < target_b:
                            b_len += int(sent_len[b_last])
                            b_last += 1
                        rows.append((chunk_start, a_end, b_first, b_last, 1))
                        i = a_end - 1  # the unused sentences of the chunk go back into the pool
                    else:
                        rows.append((chunk_start, a_end, a_end, i + 1, 0))
                    chunk_start, cur_len = i + 1, 0
                i += 1
        if not rows:
            raise ValueError(f"{c.folder}: no sentence pairs could be made")
        return np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        a_first, a_last, b_first, b_last, is_random = (int(x) for x in self.plan[idx])
        c = self.corpus
        a0, a1 = c.sentence_span(a_first, a_last)
        b0, b1 = c.sentence_span(b_first, b_last)
        rng = _seed(self.seed, self.epoch, idx)
        a_ids, a_w = c.tokens(a0, a1), c.word_starts(a0, a1)
        b_ids, b_w = c.tokens(b0, b1), c.word_starts(b0, b1)
        # truncate_seq_pair: trim the longer one, a token at a time from the front or the back at random
        max_num_tokens = self.max_length - 3
        a_lo, a_hi, b_lo, b_hi = 0, len(a_ids), 0, len(b_ids)
        while (a_hi - a_lo) + (b_hi - b_lo) > max_num_tokens:
            front = rng.random() < 0.5
            if a_hi - a_lo > b_hi - b_lo:
                a_lo, a_hi = (a_lo + 1, a_hi) if front else (a_lo, a_hi - 1)
            else:
                b_lo, b_hi = (b_lo + 1, b_hi) if front else (b_lo, b_hi - 1)
        a_ids, a_w, b_ids, b_w = a_ids[a_lo:a_hi], a_w[a_lo:a_hi].copy(), b_ids[b_lo:b_hi], b_w[b_lo:b_hi].copy()
        if len(a_w):
            a_w[0] = 1  # after trimming from the front the first piece starts the (partial) word
        if len(b_w):
            b_w[0] = 1
        ids = np.concatenate([[self.cls_id], a_ids, [self.sep_id], b_ids, [self.sep_id]]).astype(np.int64)
        starts = np.concatenate([[0], a_w, [0], b_w, [0]])
        special = np.zeros(len(ids), dtype=np.int64)
        special[[0, len(a_ids) + 1, len(ids) - 1]] = 1
        types = np.zeros(len(ids), dtype=np.int64)
        types[len(a_ids) + 2:] = 1  # B and its [SEP] are segment 1
        return {"input_ids": ids, "token_type_ids": types, "special_tokens_mask": special,
                "word_ids": _word_ids(starts, special), "next_sentence_label": is_random}


class PackedDataset:
    """Contiguous blocks of the token stream, documents joined by `doc_separator` (if given).

    Example i covers stream positions [i * block, (i + 1) * block); with `prefix` / `suffix` ids
    (e.g. [CLS] / [SEP] for RoBERTa-style MLM) the block holds block_size - len(prefix) - len(suffix)
    corpus tokens. Returns input_ids, special_tokens_mask (1 at prefix, suffix and separators) and
    word_ids. The tail shorter than a block is dropped.
    """

    def __init__(self, corpus: TokenCorpus, block_size: int, *, doc_separator: int | None = None,
                 prefix: Sequence[int] = (), suffix: Sequence[int] = ()):
        self.corpus, self.prefix, self.suffix, self.sep = corpus, list(prefix), list(suffix), doc_separator
        self.inner = block_size - len(self.prefix) - len(self.suffix)
        if self.inner < 1:
            raise ValueError(f"block_size {block_size} leaves no room for text")
        tok_start = np.asarray(corpus.sentences)[np.asarray(corpus.documents)]  # (D + 1,) token offsets
        self.doc_start = tok_start[:-1]
        self.doc_len = np.diff(tok_start)
        extra = 1 if doc_separator is not None else 0
        self.vstart = self.doc_start + extra * np.arange(len(self.doc_start))  # start in the virtual stream
        self.total = int(tok_start[-1]) + extra * len(self.doc_start)

    def __len__(self) -> int:
        return self.total // self.inner

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not 0 <= idx < len(self):
            raise IndexError(f"block {idx} outside 0..{len(self) - 1}")
        v = np.arange(idx * self.inner, (idx + 1) * self.inner)
        d = np.searchsorted(self.vstart, v, side="right") - 1
        off = v - self.vstart[d]
        is_sep = off >= self.doc_len[d]  # only possible with a separator
        real = self.doc_start[d] + np.minimum(off, self.doc_len[d] - 1)
        lo, hi = int(real.min()), int(real.max()) + 1
        ids = self.corpus.tokens(lo, hi)[real - lo]
        starts = self.corpus.word_starts(lo, hi)[real - lo].copy()
        if self.sep is not None:
            ids = np.where(is_sep, self.sep, ids)
        starts[0] = 1
        ids = np.concatenate([self.prefix, ids, self.suffix]).astype(np.int64)
        special = np.concatenate([np.ones(len(self.prefix)), is_sep, np.ones(len(self.suffix))]).astype(np.int64)
        starts = np.concatenate([np.zeros(len(self.prefix)), starts, np.zeros(len(self.suffix))])
        return {"input_ids": ids, "special_tokens_mask": special, "word_ids": _word_ids(starts, special)}
