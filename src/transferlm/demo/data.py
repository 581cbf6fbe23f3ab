"""The demo's data: a seeded BBC News split, the few labels it fine-tunes on, and unlabeled text.

The split (documented in docs/demo_output.md):
- BBC News (2,225 articles, 5 topics) in the asset's fixed order (label, then file name);
- stratified: for each label in sorted order, `random.Random(seed)` shuffles that label's articles
  and the first round(20%) go to the test split, the rest to the train split (444 test articles
  with seed 0; every topic keeps its share);
- the few-label sample: from the train split, for each label in sorted order, one more draw of the
  same generator picks 2k articles: the first k are the training labels, the next k a small dev
  set (scored after every epoch, for the curves). The remaining train articles are used only as
  unlabeled text. With several samples (`samples`), sample s > 0 is drawn the same way with
  `random.Random(seed + 10_000 * s)`; every method is fine-tuned on each and the table averages.
  Samples may overlap each other (each is a fresh draw from the same train split).
- unlabeled text (vocabulary and pretraining): the PTB train lines plus the *train split's* BBC
  articles without their labels; the test articles are never seen before they are scored.

Does not: tokenize or train anything (stages.py does).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

Example = tuple[str, str]  # (text, label)

PTB_DOC_LINES = 20  # PTB (Mikolov's text) lost its article boundaries: 20 consecutive lines make one
# pseudo-document, so that NSP's "actual next segment" is a real continuation and "random" comes
# from elsewhere (BERT sec. 3.1 needs documents, not a shuffled bag of sentences).


def _by_label(examples: Sequence[Example]) -> list[tuple[str, list[Example]]]:
    """(label, its examples in the given order) for each label, labels sorted."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex[1]].append(ex)
    return sorted(groups.items())


def bbc_split(examples: Sequence[Example], test_fraction: float = 0.2,
              seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Stratified seeded (train, test) split; see the module docstring."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    for _, items in _by_label(examples):
        rng.shuffle(items)
        n_test = round(len(items) * test_fraction)
        test += items[:n_test]
        train += items[n_test:]
    return train, test


def few_labels(train: Sequence[Example], per_class: int, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(k-per-class training sample, k-per-class dev sample), disjoint, drawn from `train`."""
    if per_class < 1:
        raise ValueError(f"labels per class must be >= 1, not {per_class}")
    rng = random.Random(seed)
    few: list[Example] = []
    dev: list[Example] = []
    for label, items in _by_label(train):
        if len(items) < 2 * per_class:
            raise ValueError(f"label {label!r} has {len(items)} training articles, fewer than the "
                             f"{2 * per_class} needed for {per_class} labels per class plus as many for dev")
        picked = rng.sample(items, 2 * per_class)
        few += picked[:per_class]
        dev += picked[per_class:]
    return few, dev


def per_class_head(examples: Sequence[Example], n: int) -> list[Example]:
    """The first n examples of each label, in the given order (a stratified subset)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for ex in examples:
        if seen[ex[1]] < n:
            seen[ex[1]] += 1
            out.append(ex)
    return out


def corpus_text(ptb_lines: Sequence[str], articles: Sequence[str]) -> str:
    """The pretraining text file (data/corpus.py's format: a blank line ends a document)."""
    docs = ["\n".join(ptb_lines[i:i + PTB_DOC_LINES]) for i in range(0, len(ptb_lines), PTB_DOC_LINES)]
    for a in articles:  # an article's paragraphs are blank-line separated: keep them in one document
        docs.append("\n".join(ln.strip() for ln in a.splitlines() if ln.strip()))
    return "\n\n".join(d for d in docs if d) + "\n"


@dataclass
class DemoData:
    labels: list[str]  # the topics, sorted
    train: list[Example]  # the 80% train split (only `few` and `dev` of it carry labels here)
    test: list[Example]  # the held-out split every method is scored on
    # (few, dev) per label sample: few = k labelled articles per topic, all the supervision a model
    # gets; dev = another k per topic, scored after each epoch (curves only)
    samples: list[tuple[list[Example], list[Example]]]
    ptb_lines: list[str] = field(default_factory=list)  # unlabeled PTB train sentences

    @property
    def few(self) -> list[Example]:
        """The first sample's labelled articles."""
        return self.samples[0][0]

    @property
    def dev(self) -> list[Example]:
        """The first sample's dev articles."""
        return self.samples[0][1]

    @property
    def unlabeled(self) -> list[str]:
        """Text for the vocabulary and pretraining: PTB lines and the train split's articles."""
        return self.ptb_lines + [t for t, _ in self.train]

    @classmethod
    def load(cls, per_class: int, seed: int = 0, *, test_per_class: int | None = None,
             ptb_fraction: float = 1.0, train_articles: int | None = None, samples: int = 1) -> "DemoData":
        """The demo's data from the assets. `test_per_class`, `ptb_fraction` and `train_articles`
        shrink it for `--quick` (the first n test articles of each topic, the first part of PTB,
        the first train articles as unlabeled text: the few-label sample is drawn first)."""
        from ..data import assets

        train, test = bbc_split(assets.bbc_news(), 0.2, seed)
        if samples < 1:
            raise ValueError(f"samples must be >= 1, not {samples}")
        draws = [few_labels(train, per_class, seed + 10_000 * s) for s in range(samples)]
        if test_per_class is not None:
            test = per_class_head(test, test_per_class)
        if train_articles is not None:
            train = train[:: max(1, len(train) // train_articles)][:train_articles]
        ptb = [ln.strip() for ln in assets.ptb_text("train").splitlines() if ln.strip()]
        ptb = ptb[: max(1, int(len(ptb) * ptb_fraction))]
        return cls(sorted({lab for _, lab in draws[0][0]}), train, test, draws, ptb)
