"""The one merge learner: a vocabulary grown by merging adjacent symbol pairs, for BPE and WordPiece.

`learn_merges` starts from words spelled in initial symbols and repeatedly merges the best
adjacent pair into a new symbol (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
with Subword Units", sec. 3.2; Jurafsky & Martin, "Speech and Language Processing", 3rd ed.,
ch. 2, fig. 2.13; for WordPiece, Schuster & Nakajima 2012). Its callers:

* byte-level BPE (bpe.py): ``score="count"``, ``tie_break="ids"``, ``scope="entry"``: the
  merges of `tokenizers`' BpeTrainer, exactly (tests/test_bpe.py);
* Jurafsky & Martin's BPE (jurafsky_martin.py): ``score="count"``, ``tie_break="first_seen"``;
* WordPiece (wordpiece.py): ``prefix="##"``, ``scope="pair"`` and ``score="likelihood"``
  (freq(ab) / (freq(a) freq(b)), ties by the pieces' strings) or ``score="frequency"`` (=
  "count", ties by ids: what `tokenizers`' WordPieceTrainer does).

Counts are kept *incrementally*: the pair counts and, for each pair, the words that hold it; a
merge touches only those words and updates the counts of the pairs around each merge site. A
max-heap holds the candidates by priority; an entry whose priority is out of date when it reaches
the top is re-queued with its current one ("lazy deletion"). The rules the callers choose:

* score: ``"count"`` (the pair's frequency) or ``"likelihood"`` (freq(ab) / (freq(a) freq(b)),
  with symbol frequencies counted in the current segmentation; equal scores, as floats, go to the
  more frequent pair). A merge lowers the frequencies of a and b, so under "likelihood" the
  pairs holding a or b are re-queued with their (higher) scores.
* tie_break among equal priorities:
  - ``"ids"``: the smallest (left id, right id), where ids number `initial_vocab` in order and each
    new symbol gets the next id (tokenizers' BpeTrainer, and its WordPieceTrainer);
  - ``"first_seen"``: the pair seen first wins. Pairs are numbered when first seen: the initial
    pairs scanning the words in the order given and left to right in each word; a pair created by
    a merge gets the next number when it appears (words in index order, left to right). This
    reproduces J&M's worked example (``e r`` before ``r _``, ``n e`` before ``e w``);
  - ``"strings"``: the pair whose (a, b) strings sort first in code-point order.
* scope, which words a merge rewrites:
  - ``"pair"``: every word that holds the pair (the textbook algorithm);
  - ``"entry"``: the words recorded with the heap entry that won, as tokenizers' BpeTrainer does.
    A pair can be queued more than once with different words: when a merge spells a string that
    is already a symbol (``ab`` + ``c`` after ``a`` + ``bc``), the pairs it creates may already
    exist elsewhere. Each entry then wins in turn, so the pair is merged once per entry and
    appears more than once in `merges` (a merges table keeps its last rank, as tokenizers does).
* prefix: the continuation prefix of WordPiece (``##``): merging ``a`` and ``##b`` gives ``ab``,
  ``##a`` and ``##b`` gives ``##ab``.

What it does not do: count words (corpus.py), pick the initial alphabet (the callers do: it is
part of each flavour's definition), or segment new text.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count as counter
from typing import Literal

Score = Literal["count", "likelihood"]
TieBreak = Literal["ids", "first_seen", "strings"]
Scope = Literal["entry", "pair"]
_SCORES = ("count", "likelihood")
_TIE_BREAKS = ("ids", "first_seen", "strings")
_SCOPES = ("entry", "pair")

Pair = tuple[int, int]  # (left symbol id, right symbol id)


@dataclass
class LearnedMerges:
    vocab: list[str]  # id -> symbol: the initial symbols, then one per new merged string
    merges: list[tuple[str, str]]  # in the order learned (rank 0 first)


def learn_merges(
    words: Mapping[tuple[str, ...], int],
    initial_vocab: Sequence[str],
    *,
    num_merges: int | None = None,
    vocab_size: int | None = None,
    min_frequency: int = 0,
    score: Score = "count",
    tie_break: TieBreak = "ids",
    scope: Scope = "entry",
    prefix: str = "",
    progress: bool = False,
) -> LearnedMerges:
    """Learn merges from word counts (the rules are described in the module docstring).

    words: each word as its sequence of initial symbols (characters, byte symbols, ``##c``) -> count.
    initial_vocab: id order of the starting symbols (special tokens first if any, then the
        alphabet); every symbol of every word must be in it.
    Stops after `num_merges` merges, when the vocabulary reaches `vocab_size`, or when no pair
    seen at least max(1, min_frequency) times is left.
    """
    if score not in _SCORES:
        raise ValueError(f"score must be one of {_SCORES}, not {score!r}")
    if tie_break not in _TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {_TIE_BREAKS}, not {tie_break!r}")
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, not {scope!r}")
    if num_merges is None and vocab_size is None:
        raise ValueError("learn_merges needs num_merges or vocab_size to know when to stop")
    if score == "likelihood" and scope != "pair":
        raise ValueError("score='likelihood' re-queues pairs without their words: it needs scope='pair'")
    first_seen = tie_break == "first_seen"
    likelihood = score == "likelihood"
    per_entry = scope == "entry"
    minf = max(1, min_frequency)
    # Which pairs are queued: with "entry" scope an entry also carries its words, so every pair
    # that occurs is queued (as tokenizers does); with "pair" scope only those that may be merged.
    push_min = 1 if per_entry else minf

    vocab = list(initial_vocab)
    token_to_id = {t: i for i, t in enumerate(vocab)}
    if len(token_to_id) != len(vocab):
        raise ValueError("learn_merges: initial_vocab has duplicate symbols")
    seqs: list[list[int]] = []
    counts: list[int] = []
    for word, c in words.items():
        try:
            seqs.append([token_to_id[s] for s in word])
        except KeyError as e:
            raise ValueError(f"learn_merges: symbol {e.args[0]!r} of word {word!r} is not in initial_vocab") from None
        counts.append(int(c))

    # Pair counts over all adjacent windows, where each pair occurs, and (first_seen) pair numbers.
    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    serial: dict[Pair, int] = {}
    for wi, w in enumerate(seqs):
        c = counts[wi]
        for p in zip(w, w[1:]):
            pair_counts[p] += c
            where[p].add(wi)
            if first_seen and p not in serial:
                serial[p] = len(serial)
    sym_freq: list[int] = []
    pairs_of: dict[int, set[Pair]] = defaultdict(set)  # likelihood: the pairs each symbol is in
    if likelihood:
        sym_freq = [0] * len(vocab)
        for w, c in zip(seqs, counts):
            for s in w:
                sym_freq[s] += c
        for p, f in pair_counts.items():
            if f >= minf:
                pairs_of[p[0]].add(p)
                pairs_of[p[1]].add(p)

    # A heap entry: (priority..., tie key (2 items), sequence number, pair, words or None); the
    # smallest is the best. Priority: (-count,) or (-score, -count); the sequence number keeps
    # entries of one pair first in, first out. One function builds them all (it runs per push).
    n_prio = 2 if likelihood else 1
    by_string = tie_break == "strings"
    seq = counter()

    def entry(p: Pair, f: int, pos: set[int] | None) -> tuple:
        a, b = p
        if first_seen:
            t1, t2 = serial[p], 0
        elif by_string:
            t1, t2 = vocab[a], vocab[b]
        else:
            t1, t2 = a, b
        if likelihood:
            return (-f / (sym_freq[a] * sym_freq[b]), -f, t1, t2, next(seq), p, pos)
        return (-f, t1, t2, next(seq), p, pos)

    heap = [entry(p, f, where[p] if per_entry else None) for p, f in pair_counts.items() if f >= push_min]
    heapq.heapify(heap)
    heappush, heappop = heapq.heappush, heapq.heappop
    if per_entry:
        del where  # the entries own the word sets

    bar = None
    if progress:
        from tqdm import tqdm

        total = num_merges if num_merges is not None else max(0, vocab_size - len(vocab))
        bar = tqdm(total=total, desc="merges", unit="merge")

    plen = len(prefix)
    merges: list[Pair] = []
    while heap:
        if vocab_size is not None and len(vocab) >= vocab_size:
            break
        if num_merges is not None and len(merges) >= num_merges:
            break
        top = heappop(heap)
        p, pos = top[-2], top[-1]
        f = pair_counts.get(p, 0)
        if f < minf and not per_entry:
            continue  # merged away or too rare for now (queued afresh if it grows)
        fresh = entry(p, f, pos)
        if fresh[:n_prio] != top[:n_prio]:  # stale: re-queue with the current priority
            # "pair" scope: a pair whose priority rose was queued afresh when it rose, so only
            # fallen ones come back; "entry" scope: every entry, since it owns its words.
            if per_entry or fresh[:n_prio] > top[:n_prio]:
                heappush(heap, fresh)
            continue
        if f < minf:
            break  # "entry" scope, count score: the best count left is too low
        a, b = p
        sa, sb = vocab[a], vocab[b]
        new_str = sa + (sb[plen:] if plen and sb.startswith(prefix) else sb)
        new = token_to_id.get(new_str)
        if new is None:  # the same string can come from two different pairs ('ab'+'c', 'a'+'bc')
            new = len(vocab)
            vocab.append(new_str)
            token_to_id[new_str] = new
            if likelihood:
                sym_freq.append(0)
        merges.append(p)
        if bar is not None:
            bar.update(1)

        # Merge every occurrence, left to right, in each word, and update the counts of the
        # neighbouring pairs: (prev, a) and (b, next) lose, (prev, new) and (new, next) gain.
        # (The merged pair's own count is left as it is, as tokenizers leaves it.)
        grown: dict[Pair, set[int]] = {}
        positions = pos if per_entry else where.pop(p, ())
        for wi in sorted(positions) if first_seen else positions:
            w = seqs[wi]
            if a not in w:
                continue
            c = counts[wi]
            n = len(w)
            out: list[int] = []
            sites = 0
            i = 0
            while i < n:
                x = w[i]
                if x == a and i + 1 < n and w[i + 1] == b:
                    if out:
                        prev = out[-1]
                        pair_counts[(prev, a)] -= c
                        q = (prev, new)
                        pair_counts[q] += c
                        grown.setdefault(q, set()).add(wi)
                        if first_seen and q not in serial:
                            serial[q] = len(serial)
                    if i + 2 < n:
                        nxt = w[i + 2]
                        pair_counts[(b, nxt)] -= c
                        q = (new, nxt)
                        pair_counts[q] += c
                        grown.setdefault(q, set()).add(wi)
                        if first_seen and q not in serial:
                            serial[q] = len(serial)
                    out.append(new)
                    sites += 1
                    i += 2
                else:
                    out.append(x)
                    i += 1
            if sites:
                seqs[wi] = out
                if likelihood:
                    k = sites * c
                    sym_freq[a] -= k
                    sym_freq[b] -= k
                    sym_freq[new] += k
        if not per_entry:
            pair_counts.pop(p, None)  # every occurrence is merged

        for q, ws in grown.items():
            if not per_entry:
                where[q] |= ws
            fq = pair_counts[q]
            if fq >= push_min:
                heappush(heap, entry(q, fq, ws if per_entry else None))
            if likelihood and fq >= minf:
                pairs_of[q[0]].add(q)
                pairs_of[q[1]].add(q)
        if likelihood:
            # a and b lost occurrences, so every pair holding them now scores higher.
            for s in {a, b}:
                mine = pairs_of.get(s, ())
                dead = 0
                for q in mine:
                    fq = pair_counts.get(q, 0)
                    if fq < minf:
                        dead += 1
                    elif q not in grown:
                        heappush(heap, entry(q, fq, None))
                if dead * 4 > len(mine):  # forget pairs that can no longer be merged, now and then
                    pairs_of[s] = {q for q in mine if pair_counts.get(q, 0) >= minf}
    if bar is not None:
        bar.close()
    return LearnedMerges(vocab=vocab, merges=[(vocab[a], vocab[b]) for a, b in merges])


__all__ = ["LearnedMerges", "Scope", "Score", "TieBreak", "learn_merges"]
