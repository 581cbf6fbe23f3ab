"""Readers for fine-tuning data: classification, sentence pairs, tagging, spans and SQuAD.

What this file does:
- `read_classification`: CSV, TSV (GLUE layout: a header row, named columns, no quoting) and JSON
  lines with a text (and optional second text) and a label -> `TextExample`s;
- `read_conll`: CoNLL tagging files (`token<TAB>tag` or space separated, extra middle columns
  allowed, the tag is the last column; a blank line between sentences; `-DOCSTART-` lines
  skipped) of any tag set -> `TaggedSentence`s; the tag scheme (`detect_scheme`: "bio", "bioes"
  or "plain" for part-of-speech and any other tags) is detected from the file's tags, or given
  and then checked on every line; `bio_to_bioes` / `bioes_to_bio`;
- `read_conllu`: CoNLL-U (Universal Dependencies: 10 columns, `#` comments, multiword-token
  ranges `1-2` and empty nodes `1.1` skipped) -> FORM (column 2) and UPOS (column 4, or XPOS);
- `read_spans`: span JSON lines `{"tokens": [...], "spans": [{"start": i, "end": j, "label": L}]}`
  where `end` is EXCLUSIVE (the span is tokens[start:end], Python slice convention); spans may
  nest and overlap -> `SpanExample`s;
- `read_squad`: SQuAD v1.1 / v2.0 JSON (character offsets checked against the context,
  `is_impossible`) -> `QAExample`s;
- `LabelSet`: label <-> id, built from training data, saved / loaded as JSON (atomically);
- `sniff_format` / `read_examples`: pick the reader from the file's extension (trusted when it
  names a format) and, for other extensions, the content.

Errors: bad input raises `FormatError` naming the file, the (1-based) line and what was
expected. With `skip_bad=True` the bad record is skipped instead, recorded in the returned
`Examples.skipped` list and reported once as a warning: nothing is silently dropped.

What it does not: no tokenisation, no subword alignment (data/finetune_collate.py), no batching,
and no network; texts are read as UTF-8.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..fileio import atomic_write_text


class FormatError(ValueError):
    """A record in a data file is not what the reader expects."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path, self.line, self.reason = str(path), line, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Skipped:
    line: int | None
    reason: str


class Examples(list):
    """A list of examples that also carries what the reader skipped (with skip_bad=True)."""

    def __init__(self, items: Iterable = (), source: str = "", skipped: list[Skipped] | None = None):
        super().__init__(items)
        self.source = source
        self.skipped: list[Skipped] = skipped or []
        self.scheme: str | None = None  # tagging files: "bio", "bioes" or "plain"


class _Collector:
    """Raises on bad records, or (skip_bad) counts and remembers them."""

    def __init__(self, path: Path, skip_bad: bool):
        self.path, self.skip_bad = path, skip_bad
        self.skipped: list[Skipped] = []

    def bad(self, line: int | None, message: str) -> None:
        if not self.skip_bad:
            raise FormatError(self.path, line, message)
        self.skipped.append(Skipped(line, message))

    def finish(self, items: list) -> Examples:
        if self.skipped:
            first = self.skipped[0]
            warnings.warn(f"{self.path}: skipped {len(self.skipped)} bad record(s); first at line "
                          f"{first.line}: {first.reason}", stacklevel=3)
        return Examples(items, str(self.path), self.skipped)


# ----------------------------------------------------------------------------------------------
# labels


class LabelSet:
    """An ordered label vocabulary. Ids follow the given order; `from_data` sorts the labels
    (with "O" first for tag sets) so the same training data always gives the same ids."""

    def __init__(self, labels: Sequence[str]):
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate labels in {labels}")
        if not labels:
            raise ValueError("a LabelSet needs at least one label")
        self.labels = labels
        self._index = {lab: i for i, lab in enumerate(labels)}

    @classmethod
    def from_data(cls, labels: Iterable[str]) -> "LabelSet":
        seen = sorted(set(labels))
        if "O" in seen:  # tagging convention: the outside tag gets id 0
            seen.remove("O")
            seen.insert(0, "O")
        return cls(seen)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and other.labels == self.labels

    def __repr__(self) -> str:
        return f"LabelSet({self.labels})"

    def id(self, label: str, where: str = "") -> int:
        """The id of `label`; an unknown label raises KeyError saying where it was met."""
        try:
            return self._index[label]
        except KeyError:
            at = f"{where}: " if where else ""
            raise KeyError(f"{at}unknown label {label!r}; the label set has {self.labels}") from None

    def label(self, i: int) -> str:
        return self.labels[i]

    def encode(self, labels: Iterable[str]) -> list[int]:
        return [self.id(lab) for lab in labels]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.labels[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(Path(path), json.dumps({"labels": self.labels}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LabelSet":
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise FormatError(path, e.lineno, f"not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("labels"), list) or not all(
                isinstance(x, str) for x in obj["labels"]):
            raise FormatError(path, 1, 'expected {"labels": [<string>, ...]}')
        return cls(obj["labels"])


def _check_label(label: str, label_set: LabelSet | None, col: _Collector, line: int) -> bool:
    if label_set is not None and label not in label_set:
        col.bad(line, f"unknown label {label!r}; expected one of {label_set.labels}")
        return False
    return True


# ----------------------------------------------------------------------------------------------
# classification and sentence pairs


@dataclass
class TextExample:
    text: str
    label: str | float | None  # None when the file has no label column (a test split)
    text_b: str | None = None  # the second sentence of a pair
    line: int = 0  # 1-based line in the source file


# Column names tried in order when the caller does not name them (GLUE's and common layouts).
# Pairs first: (first text, second text) as GLUE's TSVs name them (RTE/MNLI/STS-B, QQP, MRPC,
# SNLI-style, QNLI).
PAIR_COLUMNS = (("text_a", "text_b"), ("text", "text_b"), ("sentence1", "sentence2"),
                ("question1", "question2"), ("#1 String", "#2 String"), ("premise", "hypothesis"),
                ("question", "sentence"))
TEXT_COLUMNS = ("text", "text_a", "sentence", "sentence1", "question1", "question", "#1 String",
                "premise")
LABEL_COLUMNS = ("label", "gold_label", "Quality", "is_duplicate", "score")


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], path: Path,
          what: str, required: bool) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise FormatError(path, 1, f"no {what} column {wanted!r}; the header has {list(columns)}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise FormatError(path, 1, f"no {what} column: expected one of {list(candidates)} in the "
                                   f"header {list(columns)}")
    return None


def _rows(path: Path, fmt: str, on_header: Callable[[list[str]], None] | None = None
          ) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line, record, error) for each record of a csv / tsv / jsonl file.

    A CSV / TSV header row is passed to `on_header` (once, before the first record) and is not
    a record itself: every yielded record is data, whatever its keys."""
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as e:
                    yield lineno, None, f"not valid JSON ({e.msg} at column {e.colno})"
                    continue
                if not isinstance(obj, dict):
                    yield lineno, None, f"expected a JSON object, got {type(obj).__name__}"
                    continue
                yield lineno, obj, None
            return
        # GLUE TSVs are not quoted (texts hold bare quotes): QUOTE_NONE for tabs, RFC 4180 for CSV
        reader = (csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv"
                  else csv.reader(f))
        header: list[str] | None = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a field over csv's size limit, a NUL byte
                raise FormatError(path, reader.line_num, f"unreadable {fmt.upper()} record ({e})") from None
            lineno = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip() for c in row]
                if on_header is not None:
                    on_header(header)
                continue
            if len(row) != len(header):
                yield lineno, None, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}"
                continue
            yield lineno, dict(zip(header, row)), None


def read_classification(path: str | os.PathLike, *, fmt: str | None = None,
                        text_column: str | None = None, text_b_column: str | None = None,
                        label_column: str | None = None, pairs: bool | None = None,
                        regression: bool = False, label_set: LabelSet | None = None,
                        require_label: bool = True, skip_bad: bool = False) -> Examples:
    """Text (or text pair) classification / regression examples.

    fmt: "csv", "tsv" or "jsonl" (default: from the extension, see `sniff_format`).
    Columns: named explicitly, or found: the first PAIR_COLUMNS pair present (unless pairs=False),
    else the first of TEXT_COLUMNS; the first of LABEL_COLUMNS.
    pairs: True requires a second text, False ignores it, None uses it when the columns exist.
    regression: labels are parsed as floats. label_set: labels must be in it (evaluation data).
    require_label: False lets a file without a label column through (labels are None).
    """
    path = Path(path)
    fmt = fmt or sniff_format(path)
    if fmt not in ("csv", "tsv", "jsonl"):
        raise FormatError(path, None, f"read_classification reads csv, tsv or jsonl, not {fmt!r}")
    col = _Collector(path, skip_bad)
    out: list[TextExample] = []
    cols: tuple[str | None, str | None, str | None] | None = None

    def header(names: list[str]) -> None:
        nonlocal cols
        cols = _columns(names, path, text_column, text_b_column, label_column, pairs, require_label)

    for lineno, rec, err in _rows(path, fmt, on_header=header):
        if err is not None:
            col.bad(lineno, err)
            continue
        assert rec is not None
        if fmt == "jsonl":
            try:
                tc, bc, lc = _columns(list(rec), path, text_column, text_b_column, label_column,
                                      pairs, require_label, lineno)
            except FormatError as e:
                col.bad(lineno, e.reason)
                continue
        else:
            assert cols is not None
            tc, bc, lc = cols
        ex = _text_example(rec, tc, bc, lc, lineno, regression, label_set, col)
        if ex is not None:
            out.append(ex)
    return col.finish(out)


def _columns(keys: Sequence[str], path: Path, text_column, text_b_column, label_column, pairs,
             require_label, line: int = 1):
    try:
        tc = bc = None
        if pairs is not False and text_column is None and text_b_column is None:
            tc, bc = next(((a, b) for a, b in PAIR_COLUMNS if a in keys and b in keys), (None, None))
        if tc is None:
            tc = _pick(keys, text_column, TEXT_COLUMNS, path, "text", True)
            if text_b_column is not None:
                bc = _pick(keys, text_b_column, (), path, "second text", True)
        if pairs is True and bc is None:
            raise FormatError(path, line, f"pairs=True but no pair of text columns among "
                                          f"{list(keys)}; expected one of {list(PAIR_COLUMNS)}")
        lc = _pick(keys, label_column, LABEL_COLUMNS, path, "label", require_label)
    except FormatError as e:
        raise FormatError(path, line, e.reason) from None
    return tc, bc, lc


def _text_example(rec: dict, tc: str, bc: str | None, lc: str | None, lineno: int,
                  regression: bool, label_set: LabelSet | None, col: _Collector) -> TextExample | None:
    text = rec.get(tc)
    if not isinstance(text, str) or not text.strip():
        col.bad(lineno, f"empty or missing text in column {tc!r}")
        return None
    text_b = None
    if bc is not None:
        text_b = rec.get(bc)
        if not isinstance(text_b, str) or not text_b.strip():
            col.bad(lineno, f"empty or missing second text in column {bc!r}")
            return None
    label: str | float | None = None
    if lc is not None:
        raw = rec.get(lc)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            col.bad(lineno, f"missing label in column {lc!r}")
            return None
        if regression:
            try:
                label = float(raw)
            except (TypeError, ValueError):
                col.bad(lineno, f"expected a number in column {lc!r}, got {raw!r}")
                return None
        else:
            label = str(raw).strip()
            if not _check_label(label, label_set, col, lineno):
                return None
    return TextExample(text, label, text_b, lineno)


# ----------------------------------------------------------------------------------------------
# CoNLL tagging


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]
    line: int = 0  # line of the first token


SCHEMES = ("bio", "bioes", "plain")  # entity tags (IOB2), entity tags with E-/S-, any tag set


def normalize_scheme(scheme: str) -> str:
    """"bio" / "bioes" / "plain" from any case ("BIO", "BIOES" are the spellings of the entity
    metrics and the CRF constraints)."""
    s = str(scheme).lower()
    if s not in SCHEMES:
        raise ValueError(f"tag scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    return s


def _entity_prefix(tag: str) -> str | None:
    """"O", or the B/I/E/S prefix of a B-X / I-X / E-X / S-X tag (X non-empty), else None."""
    if tag == "O":
        return "O"
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES":
        return tag[0]
    return None


def detect_scheme(tags: Iterable[str]) -> str:
    """The tag scheme of a tag set: "bio" if every tag is O, B-X or I-X; "bioes" if every tag is
    O, B-X, I-X, E-X or S-X and one is E-X or S-X; else "plain" (part-of-speech tags such as
    Brown's `ppss`, `ber*`, `.`, `np-tl`, UD's `NOUN`, the PTB's `NN`, `-LRB-`, `$`: any tag not
    of the entity shape makes the whole set plain)."""
    prefixes = set()
    for t in tags:
        p = _entity_prefix(t)
        if p is None:
            return "plain"
        prefixes.add(p)
    return "bioes" if prefixes & {"E", "S"} else "bio"


def first_plain_tag(tags: Iterable[str]) -> str | None:
    """The first tag that is not of the entity shape (what makes a tag set plain), or None."""
    return next((t for t in tags if _entity_prefix(t) is None), None)


def check_tag(tag: str, scheme: str) -> str | None:
    """None if `tag` is a valid tag of `scheme` (any tag is valid in "plain"), else what is wrong."""
    scheme = normalize_scheme(scheme)
    if scheme == "plain" or tag == "O":
        return None
    name = scheme.upper()
    prefixes = {"BIO": "BI", "BIOES": "BIES"}[name]
    if len(tag) < 3 or tag[1] != "-" or tag[0] not in prefixes:
        return (f"expected 'O' or {'/'.join(prefixes)}-<type> ({name}), got {tag!r} (a "
                f"part-of-speech or other tag set is scheme 'plain')")
    return None


def _finish_tagged(col: "_Collector", out: list[TaggedSentence], scheme: str | None,
                   first_line: dict[str, int]) -> Examples:
    """The Examples of a tagging file, with `.scheme` detected from its tags when not given."""
    ex = col.finish(out)
    if scheme is None:
        scheme = detect_scheme(first_line)
    ex.scheme = scheme
    return ex


def read_conll(path: str | os.PathLike, *, scheme: str | None = None,
               label_set: LabelSet | None = None, skip_bad: bool = False) -> Examples:
    """CoNLL-style tagging data: one `token<TAB>tag` (or `token tag`, or `token ... tag`) per line.

    A blank line ends a sentence; `-DOCSTART-` lines are skipped. Any tag string is read.
    scheme: None detects it from the file's tags (`detect_scheme`; the result is the returned
    `Examples.scheme`); "bio" / "bioes" check every tag's form (a bad one is an error at its
    line); "plain" takes any tag. With skip_bad a bad line drops its whole sentence (one skip,
    recorded at the bad line).
    """
    path = Path(path)
    scheme = None if scheme is None else normalize_scheme(scheme)
    col = _Collector(path, skip_bad)
    out: list[TaggedSentence] = []
    toks: list[str] = []
    tags: list[str] = []
    seen: dict[str, int] = {}  # tag -> first line
    start = 0
    bad = False

    def flush() -> None:
        nonlocal toks, tags, bad
        if toks and not bad:
            out.append(TaggedSentence(toks, tags, start))
        toks, tags, bad = [], [], False

    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            if line.startswith("-DOCSTART-"):
                flush()
                continue
            if bad:
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [p.strip() for p in parts]
            if len(parts) < 2 or not parts[0] or not parts[-1]:
                col.bad(lineno, f"expected 'token<TAB>tag' (or space separated), got {line!r}")
                bad = True
                continue
            token, tag = parts[0], parts[-1]
            problem = check_tag(tag, scheme) if scheme else None
            if problem is None and label_set is not None and tag not in label_set:
                problem = f"unknown tag {tag!r}; expected one of {label_set.labels}"
            if problem is not None:
                col.bad(lineno, problem)
                bad = True
                continue
            if not toks:
                start = lineno
            toks.append(token)
            tags.append(tag)
            seen.setdefault(tag, lineno)
    flush()
    return _finish_tagged(col, out, scheme, seen)


CONLLU_COLUMNS = {"upos": 3, "xpos": 4}  # 0-based: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC


def read_conllu(path: str | os.PathLike, *, tag_column: str = "upos", scheme: str | None = None,
                label_set: LabelSet | None = None, skip_bad: bool = False) -> Examples:
    """CoNLL-U (Universal Dependencies): 10 tab-separated columns per word, `#` comment lines,
    a blank line after each sentence. Words are FORM (column 2), tags UPOS (column 4, the
    default) or XPOS (column 5, `tag_column="xpos"`). Multiword-token ranges (ID `1-2`) and
    empty nodes (ID `1.1`) are skipped: the syntactic words carry the tags. A word whose tag is
    `_` (not annotated) is a bad record. scheme / label_set / skip_bad as in `read_conll`.
    """
    path = Path(path)
    if tag_column not in CONLLU_COLUMNS:
        raise ValueError(f"tag_column must be one of {sorted(CONLLU_COLUMNS)}, not {tag_column!r}")
    tc = CONLLU_COLUMNS[tag_column]
    scheme = None if scheme is None else normalize_scheme(scheme)
    col = _Collector(path, skip_bad)
    out: list[TaggedSentence] = []
    toks: list[str] = []
    tags: list[str] = []
    seen: dict[str, int] = {}
    start = 0
    bad = False

    def flush() -> None:
        nonlocal toks, tags, bad
        if toks and not bad:
            out.append(TaggedSentence(toks, tags, start))
        toks, tags, bad = [], [], False

    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            if line.startswith("#") or bad:
                continue
            parts = line.split("\t")
            if len(parts) != 10:
                col.bad(lineno, f"expected 10 tab-separated CoNLL-U columns, got {len(parts)}: {line[:80]!r}")
                bad = True
                continue
            wid = parts[0]
            if "-" in wid or "." in wid:  # multiword token range / empty node
                continue
            if not wid.isdigit():
                col.bad(lineno, f"expected a word ID (1, 2, ...; or a range 1-2 / empty node 1.1), got {wid!r}")
                bad = True
                continue
            token, tag = parts[1], parts[tc]
            problem = None
            if not token:
                problem = "empty FORM (column 2)"
            elif tag in ("", "_"):
                other = "xpos" if tag_column == "upos" else "upos"
                problem = (f"no {tag_column.upper()} tag (column {tc + 1} is {tag!r}); "
                           f"read the {other.upper()} column instead (tag_column={other!r})")
            elif scheme:
                problem = check_tag(tag, scheme)
            if problem is None and label_set is not None and tag not in label_set:
                problem = f"unknown tag {tag!r}; expected one of {label_set.labels}"
            if problem is not None:
                col.bad(lineno, problem)
                bad = True
                continue
            if not toks:
                start = lineno
            toks.append(token)
            tags.append(tag)
            seen.setdefault(tag, lineno)
    flush()
    return _finish_tagged(col, out, scheme, seen)


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO (IOB2) -> BIOES: a one-word entity becomes S-X, the last word of a longer one E-X.
    An I-X that does not continue an X entity is read as starting one (conlleval's rule)."""
    out = []
    for k, tag in enumerate(tags):
        if tag == "O":
            out.append(tag)
            continue
        prefix, type_ = tag[0], tag[2:]
        prev = tags[k - 1] if k else "O"
        begins = prefix == "B" or prev == "O" or prev[2:] != type_
        nxt = tags[k + 1] if k + 1 < len(tags) else "O"
        continues = nxt.startswith("I-") and nxt[2:] == type_
        out.append(("B-" if continues else "S-") + type_ if begins
                   else ("I-" if continues else "E-") + type_)
    return out


def bioes_to_bio(tags: Sequence[str]) -> list[str]:
    """BIOES -> BIO (IOB2): S-X -> B-X, E-X -> I-X."""
    return ["B" + t[1:] if t[:1] == "S" else "I" + t[1:] if t[:1] == "E" else t for t in tags]


def write_conll(path: str | os.PathLike, sentences: Iterable[TaggedSentence | tuple]) -> None:
    """Write `token<TAB>tag` lines, a blank line after each sentence (atomically)."""
    lines = []
    for s in sentences:
        toks, tags = (s.tokens, s.tags) if isinstance(s, TaggedSentence) else s
        lines.extend(f"{a}\t{b}" for a, b in zip(toks, tags))
        lines.append("")
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))


# ----------------------------------------------------------------------------------------------
# span JSON lines


@dataclass(frozen=True)
class Span:
    start: int  # first token
    end: int  # one past the last token (EXCLUSIVE): the span is tokens[start:end]
    label: str


@dataclass
class SpanExample:
    tokens: list[str]
    spans: list[Span]
    line: int = 0


def read_spans(path: str | os.PathLike, *, label_set: LabelSet | None = None,
               skip_bad: bool = False) -> Examples:
    """Span JSON lines: {"tokens": [str, ...], "spans": [{"start": i, "end": j, "label": L}, ...]}.

    `end` is exclusive (0 <= start < end <= len(tokens)). Nested and overlapping spans are kept
    as they are; an exact duplicate (same start, end and label) is a bad record.
    """
    path = Path(path)
    col = _Collector(path, skip_bad)
    out: list[SpanExample] = []
    for lineno, rec, err in _rows(path, "jsonl"):
        if err is not None:
            col.bad(lineno, err)
            continue
        assert rec is not None
        ex = _span_example(rec, lineno, label_set, col)
        if ex is not None:
            out.append(ex)
    return col.finish(out)


def _span_example(rec: dict, lineno: int, label_set: LabelSet | None, col: _Collector):
    tokens = rec.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(
            isinstance(t, str) and t for t in tokens):
        col.bad(lineno, 'expected "tokens": a non-empty list of non-empty strings')
        return None
    spans_raw = rec.get("spans", [])
    if not isinstance(spans_raw, list):
        col.bad(lineno, 'expected "spans": a list of {"start", "end", "label"} objects')
        return None
    spans: list[Span] = []
    for k, s in enumerate(spans_raw):
        if not isinstance(s, dict) or not isinstance(s.get("start"), int) or not isinstance(
                s.get("end"), int) or not isinstance(s.get("label"), str) or not s["label"]:
            col.bad(lineno, f'span {k}: expected {{"start": int, "end": int, "label": str}}, got {s!r}')
            return None
        sp = Span(s["start"], s["end"], s["label"])
        if not (0 <= sp.start < sp.end <= len(tokens)):
            col.bad(lineno, f"span {k} [{sp.start}, {sp.end}) is outside the sentence of "
                            f"{len(tokens)} tokens (end is exclusive: need 0 <= start < end <= "
                            f"{len(tokens)})")
            return None
        if sp in spans:
            col.bad(lineno, f"span {k} {sp} appears twice")
            return None
        if not _check_label(sp.label, label_set, col, lineno):
            return None
        spans.append(sp)
    return SpanExample(list(tokens), spans, lineno)


# ----------------------------------------------------------------------------------------------
# SQuAD v1.1 / v2.0


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset into the context


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[Answer]  # empty for an impossible (v2.0) question in training data
    is_impossible: bool = False
    title: str = ""
    line: int = 0  # line of the question's "id" in the file (0 if not found)
    plausible_answers: list[Answer] = field(default_factory=list)  # v2.0 dev/train extra


def read_squad(path: str | os.PathLike, *, skip_bad: bool = False) -> Examples:
    """SQuAD v1.1 / v2.0 JSON: {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}.

    Every answer's `answer_start` is checked: context[start:start+len(text)] must equal the text.
    A question marked `is_impossible` must have no answers. JSON carries no line numbers past the
    parser, so errors name the line where the question's id occurs in the file.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise FormatError(path, e.lineno, f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise FormatError(path, 1, 'expected a SQuAD object {"version", "data": [...]}')
    lines = _id_lines(raw)
    col = _Collector(path, skip_bad)
    out: list[QAExample] = []
    for a, article in enumerate(obj["data"]):
        where = f"data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            col.bad(None, f"{where}: expected an article with a 'paragraphs' list")
            continue
        title = str(article.get("title", ""))
        for p, para in enumerate(article["paragraphs"]):
            pwhere = f"{where}.paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not \
                    isinstance(para.get("qas"), list):
                col.bad(None, f"{pwhere}: expected {{'context': str, 'qas': [...]}}")
                continue
            context = para["context"]
            if not context.strip():
                col.bad(None, f"{pwhere}: empty context")
                continue
            for q, qa in enumerate(para["qas"]):
                ex = _qa_example(qa, context, title, f"{pwhere}.qas[{q}]", lines, col)
                if ex is not None:
                    out.append(ex)
    return col.finish(out)


def _id_lines(raw: str) -> dict[str, int]:
    """Line of each `"id": "<value>"` in the raw JSON text (best effort, for error messages)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(raw.splitlines(), 1):
        pos = line.find('"id"')
        while pos >= 0:
            rest = line[pos + 4:].lstrip()
            if rest.startswith(":"):
                rest = rest[1:].lstrip()
                if rest.startswith('"'):
                    end = rest.find('"', 1)
                    if end > 0:
                        out.setdefault(rest[1:end], lineno)
            pos = line.find('"id"', pos + 4)
    return out


def _answers(raw: Any, context: str, where: str, line: int, col: _Collector) -> list[Answer] | None:
    if not isinstance(raw, list):
        col.bad(line, f"{where}: expected a list of answers")
        return None
    out = []
    for k, a in enumerate(raw):
        if not isinstance(a, dict) or not isinstance(a.get("text"), str) or not isinstance(
                a.get("answer_start"), int):
            col.bad(line, f"{where}[{k}]: expected {{'text': str, 'answer_start': int}}, got {a!r}")
            return None
        text, start = a["text"], a["answer_start"]
        if not text or context[start:start + len(text)] != text or start < 0:
            col.bad(line, f"{where}[{k}]: answer {text!r} is not at character {start} of the "
                          f"context (found {context[max(start, 0):max(start, 0) + len(text)]!r})")
            return None
        out.append(Answer(text, start))
    return out


def _qa_example(qa: Any, context: str, title: str, where: str, lines: dict[str, int],
                col: _Collector) -> QAExample | None:
    if not isinstance(qa, dict) or not isinstance(qa.get("id"), str):
        col.bad(None, f"{where}: expected a question with a string 'id'")
        return None
    line = lines.get(qa["id"], 0) or None
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        col.bad(line, f"{where} (id {qa['id']}): empty or missing question")
        return None
    impossible = bool(qa.get("is_impossible", False))
    answers = _answers(qa.get("answers", []), context, f"{where}.answers", line, col)
    if answers is None:
        return None
    plausible = _answers(qa.get("plausible_answers", []), context, f"{where}.plausible_answers",
                         line, col)
    if plausible is None:
        return None
    if impossible and answers:
        col.bad(line, f"{where} (id {qa['id']}): is_impossible is true but it has answers")
        return None
    if not impossible and not answers:
        col.bad(line, f"{where} (id {qa['id']}): no answers and not marked is_impossible")
        return None
    return QAExample(qa["id"], question, context, answers, impossible, title, line or 0, plausible)


# ----------------------------------------------------------------------------------------------
# sniffing and dispatch

FORMATS = ("csv", "tsv", "jsonl", "spans", "conll", "conllu", "squad")
# Extensions that name a tagging format: trusted, never second-guessed from the tags' shape
# (part-of-speech tags such as `ppss`, `ber*`, `.` look like nothing in particular).
CONLL_EXTENSIONS = (".conll", ".bio", ".iob", ".iob2", ".bioes")
CONLLU_EXTENSIONS = (".conllu",)


def sniff_format(path: str | os.PathLike) -> str:
    """One of FORMATS, from the extension and, for other extensions, the first lines.

    Trusted extensions: .csv -> csv, .tsv -> tsv, .conll/.bio/.iob/.iob2/.bioes -> conll,
    .conllu -> conllu; .jsonl/.json: a JSON lines file whose first record has "tokens" and
    "spans" -> spans, other JSON lines -> jsonl, a single JSON object with "data" -> squad.
    Any other extension (.txt, none): lines of 10 tab-separated columns with numeric IDs (and
    `#` comments) -> conllu; lines of 2+ tab-separated columns in blank-line separated groups
    -> conll, whatever the tags look like; without a blank line, 2+ columns whose last looks
    like an entity tag (O, B-X, ...) -> conll; else a tab-separated header -> tsv, a
    comma-separated header -> csv.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".csv":
        return "csv"
    if ext == ".tsv":
        return "tsv"
    if ext in CONLL_EXTENSIONS:
        return "conll"
    if ext in CONLLU_EXTENSIONS:
        return "conllu"
    with open(path, encoding="utf-8") as f:
        head = f.read(65536)
    all_lines = head.splitlines()
    if len(head) == 65536 and len(all_lines) > 1:
        all_lines = all_lines[:-1]  # the last line may be cut
    lines = [ln for ln in all_lines if ln.strip()]
    if not lines:
        raise FormatError(path, None, "the file is empty; cannot tell its format")
    first = lines[0].strip()
    if first.startswith("{") or ext in (".json", ".jsonl"):
        try:
            rec = json.loads(first)
        except json.JSONDecodeError:
            rec = None
        if isinstance(rec, dict):
            if "tokens" in rec and "spans" in rec:
                return "spans"
            if "data" in rec and ext != ".jsonl":
                return "squad"
            return "jsonl"
        if first.startswith("{") and ext != ".jsonl":
            return "squad"  # a pretty-printed single JSON object
        raise FormatError(path, 1, "expected JSON lines or a SQuAD JSON object")
    sample = [ln for ln in lines[:200] if not ln.startswith("-DOCSTART-")]
    words = [ln for ln in sample if not ln.startswith("#")]
    if words and all(_looks_conllu(ln) for ln in words):
        return "conllu"
    # blank-line groups: a blank line between two non-blank ones within the sample
    first_i = next(i for i, ln in enumerate(all_lines) if ln.strip())
    last_i = max(i for i, ln in enumerate(all_lines) if ln.strip())
    grouped = any(not ln.strip() for ln in all_lines[first_i:last_i + 1])
    if sample and grouped and all(len(ln.split("\t")) >= 2 for ln in sample):
        return "conll"
    if sample and all(_looks_conll(ln) for ln in sample):
        return "conll"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise FormatError(path, 1, f"cannot tell the format of {path.name} from its extension or its "
                               f"first line {first[:80]!r}")


def _looks_conllu(line: str) -> bool:
    parts = line.split("\t")
    return len(parts) == 10 and parts[0].replace("-", "").replace(".", "").isdigit()


def _looks_conll(line: str) -> bool:
    parts = line.split("\t") if "\t" in line else line.split()
    if len(parts) < 2:
        return False
    tag = parts[-1].strip()
    return tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in "BIESUL")


def read_examples(path: str | os.PathLike, fmt: str | None = None, **kwargs) -> Examples:
    """Read any supported file with the reader its (sniffed) format calls for."""
    fmt = fmt or sniff_format(path)
    if fmt in ("csv", "tsv", "jsonl"):
        return read_classification(path, fmt=fmt, **kwargs)
    if fmt == "conll":
        return read_conll(path, **kwargs)
    if fmt == "conllu":
        return read_conllu(path, **kwargs)
    if fmt == "spans":
        return read_spans(path, **kwargs)
    if fmt == "squad":
        return read_squad(path, **kwargs)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
