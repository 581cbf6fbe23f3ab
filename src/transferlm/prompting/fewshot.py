"""Few-shot classification by prompting a decoder: demonstrations, verbalizer scoring, calibration.

    clf = PromptClassifier.load("smollm2", labels=["business", "sport"], options=PromptOptions(shots=1))
    clf.fit(train_examples)            # (text, label) pairs: the pool demonstrations come from
    clf.classify(["Shares fell ..."])  # [{"label": ..., "scores": {...}, "probs": {...}}]

No weights change: the label is the verbalizer with the highest (calibrated) log-probability as
the prompt's continuation. The prompt is `shared part` (instruction + demonstrations) + `example
part` (the test block); when the demonstrations are the same for every test input (random or
balanced selection) the shared part runs through the model once, in `fit`, and each example only
adds its own tokens to a copy of that cache (scoring.py); calibration constants of a fixed prompt
(contextual p_cf, PMI's domain scores) are computed once too. With nearest-neighbour selection each
example has its own demonstrations: its shared part runs once and serves the example, its three
content-free inputs and its domain premise.

Lengths: `max_text_tokens` clips every text (demonstrations and test inputs) to its first N tokens
(as tokenised alone) before it enters a prompt; a prompt that still exceeds the model's context is
an error saying by how much (overflow="error"), or its test text loses its last tokens until it
fits and the example's record says how many (overflow="clip").

What this file does not do: generate free text (models/decoder.py `generate`), train, or read files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import calibration
from .scoring import check_labels, prefill, score_labels, score_labels_batch
from .selection import SELECTORS, Demo, NearestSelector, select_balanced, select_random
from .templates import ChatTemplate, PromptTemplate

CALIBRATIONS = ("none", "contextual", "pmi")


class PromptTooLong(ValueError):
    """A prompt (plus its longest verbalizer) does not fit the model's context."""


@dataclass
class PromptOptions:
    shots: int = 0  # demonstrations PER CLASS (k); random and nearest pick k x (number of labels) in all
    select: str = "balanced"  # random | balanced | nearest
    calibrate: str = "none"  # none | contextual (Zhao et al. 2021) | pmi (Holtzman et al. 2021)
    length_normalize: bool = False  # mean instead of sum of the label tokens' log-probs
    max_text_tokens: int | None = None  # clip each text to its first N tokens; None: whole texts
    overflow: str = "error"  # error | clip (drop the test text's tail until the prompt fits)
    chat: bool = False  # render through the model's chat template (system / user / assistant turns)
    seed: int = 0  # random and balanced selection

    def __post_init__(self) -> None:
        if self.shots < 0:
            raise ValueError(f"shots must be >= 0, not {self.shots}")
        if self.select not in SELECTORS:
            raise ValueError(f"select must be one of {SELECTORS}, not {self.select!r}")
        if self.calibrate not in CALIBRATIONS:
            raise ValueError(f"calibrate must be one of {CALIBRATIONS}, not {self.calibrate!r}")
        if self.overflow not in ("error", "clip"):
            raise ValueError(f"overflow must be 'error' or 'clip', not {self.overflow!r}")
        if self.max_text_tokens is not None and self.max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, not {self.max_text_tokens}")


@dataclass
class _Context:
    """A shared part, run once: its token count, cache and (for a fixed prompt) calibration constants."""

    ids: list[int]
    cache: Any
    demos: list[Demo]
    p_cf: Tensor | None = None
    domain: Tensor | None = None
    extra: dict = field(default_factory=dict)


class PromptClassifier:
    def __init__(self, model, tokenizer, labels: Sequence[str], verbalizers: dict[str, str] | None = None,
                 template: PromptTemplate | None = None, chat_template: ChatTemplate | None = None,
                 options: PromptOptions | None = None, encoder: Any = "minilm"):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels = list(labels)
        if not self.labels:
            raise ValueError("no labels to classify into")
        verbalizers = dict(verbalizers or {})
        unknown = set(verbalizers) - set(self.labels)
        if unknown:
            raise ValueError(f"verbalizers given for labels not in the label set: {sorted(unknown)}; "
                             f"labels are {self.labels}")
        self.verbalizers = [verbalizers.get(lab, lab) for lab in self.labels]
        self.template = template or PromptTemplate()
        self.options = options or PromptOptions()
        if self.options.chat and chat_template is None:
            raise ValueError("chat=True needs the model's chat template (ChatTemplate.from_model)")
        self.chat_template = chat_template if self.options.chat else None
        prefix = "" if self.chat_template is not None else self.template.label_prefix  # chat: the reply itself
        check_labels([self._ids(v) for v in self.verbalizers],
                     [f"label {lab!r} (verbalizer {v!r})" for lab, v in zip(self.labels, self.verbalizers)])
        self.label_ids = [self._ids(prefix + v) for v in self.verbalizers]
        if self.chat_template is not None:  # the reply is the label and then the end of the turn: score both
            marker = "\u2063LABEL\u2063"
            end = self.chat_template.render([{"role": "assistant", "content": marker}]).rsplit(marker, 1)[-1]
            self.label_ids = [self._ids(v + end.rstrip("\n")) for v in self.verbalizers]
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        self.lead = self._lead_ids()
        self.encoder = encoder
        self.pool: list[Demo] = []
        self.fixed: _Context | None = None
        self.selector: NearestSelector | None = None
        self.clipped_texts = 0  # texts shortened by max_text_tokens (demonstrations and test inputs)

    @classmethod
    def load(cls, model: str, labels: Sequence[str], **kwargs) -> PromptClassifier:
        """From an asset name (smollm2), a .gguf file or a Hugging Face decoder folder."""
        from pathlib import Path

        from ..cli.generate import load
        from ..data import assets

        dec, tok = load(model)
        if kwargs.get("options") is not None and kwargs["options"].chat and "chat_template" not in kwargs:
            path = assets.path(model) if model in assets.ASSETS else Path(model)
            kwargs["chat_template"] = ChatTemplate.from_model(path)
        return cls(dec, tok, labels, **kwargs)

    # ---- tokens ---------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids) if text else []

    def _lead_ids(self) -> list[int]:
        """The special tokens the tokenizer puts before a text (a Llama BOS); none for SmolLM2 / GPT-2."""
        e = self.tokenizer.encode("a")
        lead = []
        for i, special in zip(e.ids, e.special_tokens_mask):
            if not special:
                break
            lead.append(i)
        return lead

    def clip(self, text: str) -> str:
        n = self.options.max_text_tokens
        if n is None:
            return text
        ids = self._ids(text)
        if len(ids) <= n:
            return text
        self.clipped_texts += 1
        return self.tokenizer.decode(ids[:n])

    # ---- prompts --------------------------------------------------------------------------------
    def _verb(self, demos: Sequence[Demo]) -> list[tuple[str, str]]:
        index = {lab: i for i, lab in enumerate(self.labels)}
        return [(t, self.verbalizers[index[lab]]) for t, lab in demos]

    def _instruction(self) -> str:
        return self.template.instruction_text(self.verbalizers)

    def prompt_parts(self, demos: Sequence[Demo], text: str) -> tuple[str, str]:
        """(shared part, example part) of the prompt for `text` after `demos` (already clipped)."""
        if self.chat_template is not None:
            return self.chat_template.split_prompt(self._instruction(), self._verb(demos), text)
        return self.template.shared_part(self._verb(demos), self.verbalizers), self.template.query(text)

    def domain_part(self, demos: Sequence[Demo]) -> str:
        """PMI's domain premise after the shared part: the answer cue alone (Holtzman et al. 2021 sec. 3)."""
        if self.chat_template is not None:
            return self.prompt_parts(demos, self.template.domain_premise())[1]
        return self.template.domain_premise()

    def render(self, demos: Sequence[Demo], text: str) -> list[int]:
        """The whole prompt's token ids (what a one-pass-per-label reference is given)."""
        shared, part = self.prompt_parts(demos, text)
        return self.lead + self._ids(shared) + self._ids(part)

    def _context(self, demos: Sequence[Demo]) -> _Context:
        shared, _ = self.prompt_parts(demos, "")
        ids = self.lead + self._ids(shared)
        return _Context(ids, prefill(self.model, ids), list(demos))

    def _example_ids(self, ctx: _Context, text: str, where: str = "") -> tuple[list[int], int]:
        """The example part's ids after `ctx`, checked (or clipped) against the context length."""
        _, part = self.prompt_parts(ctx.demos, text)
        ids = self._ids(part)
        if not ctx.ids and not ids:
            raise ValueError("the prompt is empty")
        longest = max(len(c) for c in self.label_ids)
        total = len(ctx.ids) + len(ids) + longest
        limit = self.context_length
        if limit is None or total <= limit:
            return ids, 0
        over = total - limit
        at = f"{where}: " if where else ""
        if self.options.overflow == "error":
            raise PromptTooLong(
                f"{at}the prompt is {total} tokens ({len(ctx.ids)} of instruction and {len(ctx.demos)} "
                f"demonstrations, {len(ids)} of this example, {longest} of the longest verbalizer), {over} more "
                f"than the model's context of {limit}; clip every text with max_text_tokens (--max-text-tokens N), "
                f"use fewer shots, or overflow='clip' (--overflow clip) to drop the tail of the test text")
        text_ids = self._ids(text)
        keep = len(text_ids) - over
        while keep > 0:
            ids = self._ids(self.prompt_parts(ctx.demos, self.tokenizer.decode(text_ids[:keep]))[1])
            if len(ctx.ids) + len(ids) + longest <= limit:
                return ids, len(text_ids) - keep
            keep -= 1
        raise PromptTooLong(f"{at}the instruction and {len(ctx.demos)} demonstrations alone take {len(ctx.ids)} "
                            f"tokens; with the longest verbalizer ({longest}) no test text fits the model's "
                            f"context of {limit}; clip them with max_text_tokens or use fewer shots")

    def _scores(self, ctx: _Context, ids: list[int]) -> Tensor:
        if not ctx.ids and not ids:
            raise ValueError("the prompt is empty: there is no position to predict the label from")
        if not ids:  # nothing after the shared part: score from a copy that keeps its last token apart
            ids, past = ctx.ids[-1:], prefill(self.model, ctx.ids[:-1])
            return score_labels(self.model, ids, self.label_ids, past, self.options.length_normalize)
        return score_labels(self.model, ids, self.label_ids, ctx.cache if ctx.ids else None,
                            self.options.length_normalize)

    def _calibrate_constants(self, ctx: _Context, which: str | None = None) -> None:
        which = which or self.options.calibrate
        if which in ("contextual", "all"):
            cf = [self._scores(ctx, self._example_ids(ctx, t, "content-free input")[0])
                  for t in calibration.CONTENT_FREE]
            ctx.p_cf = calibration.content_free_probs(cf)
        if which in ("pmi", "all"):
            ctx.domain = self._scores(ctx, self._ids(self.domain_part(ctx.demos)))

    # ---- the public methods -------------------------------------------------------------------
    def _take_pool(self, examples: Sequence[Demo] | Sequence[Any], what: str) -> list[Demo]:
        """(text, label) pairs or examples with .text / .label -> clipped (text, label), labels checked."""
        pool = [(ex.text, ex.label) if hasattr(ex, "text") else (ex[0], ex[1]) for ex in examples]
        unknown = sorted({lab for _, lab in pool} - set(self.labels))
        if unknown:
            raise ValueError(f"{what} labels {unknown} are not in the label set {self.labels}")
        return [(self.clip(t), lab) for t, lab in pool]

    def fit(self, examples: Sequence[Demo] | Sequence[Any], progress: bool = False) -> PromptClassifier:
        """Take the training pool (text, label) and, for a fixed prompt, run its shared part once."""
        self.pool = self._take_pool(examples, "training")
        o = self.options
        n = o.shots * len(self.labels)
        self.fixed = None
        if o.shots and o.select == "nearest":
            if self.selector is None or self.selector.pool != self.pool:  # a refit on the same pool keeps its vectors
                self.selector = NearestSelector(self.pool, self.encoder, progress=progress)
            return self
        self.selector = None
        if not o.shots:
            demos: list[Demo] = []
        elif o.select == "random":
            demos = select_random(self.pool, n, o.seed)
        else:
            demos = select_balanced(self.pool, o.shots, self.labels, o.seed)
        self.fixed = self._context(demos)
        self._calibrate_constants(self.fixed)
        return self

    def use_demonstrations(self, demos: Sequence[Demo]) -> PromptClassifier:
        """Take exactly these (text, label) demonstrations, in this order, as the fixed prompt (no
        selection; `options.shots` and `select` are not used): what `transferlm serve`'s /prompt does
        with the demonstrations a request gives. Runs the shared part and the calibration constants."""
        self.pool = self._take_pool(demos, "demonstration")
        self.selector = None
        self.fixed = self._context(self.pool)
        self._calibrate_constants(self.fixed)
        return self

    def fixed_prompt_scores(self, text: str, where: str = "") -> Tensor:
        """Raw label scores (L,) of one (unclipped) text after the fixed prompt chosen in `fit`."""
        if self.fixed is None:
            raise RuntimeError("fixed_prompt_scores needs random or balanced demonstrations, chosen by fit()")
        ids, _ = self._example_ids(self.fixed, self.clip(text), where)
        return self._scores(self.fixed, ids)

    def fixed_prompt_scores_batch(self, texts: Sequence[str], where: str = "text") -> Tensor:
        """`fixed_prompt_scores` of several texts, (N, L): one batched pass over the shared cache
        (scoring.score_labels_batch). Texts that would leave nothing after the shared part, and
        every text when a label has 2+ tokens, are scored one by one."""
        if self.fixed is None:
            raise RuntimeError("fixed_prompt_scores_batch needs random or balanced demonstrations, chosen by fit()")
        ids = [self._example_ids(self.fixed, self.clip(t), f"{where} {i}")[0] for i, t in enumerate(texts)]
        if not all(ids):
            return torch.stack([self._scores(self.fixed, x) for x in ids])
        return score_labels_batch(self.model, ids, self.label_ids, self.fixed.cache, self.options.length_normalize)

    def fixed_prompt_constants(self) -> tuple[Tensor, Tensor]:
        """(p_cf, PMI domain scores) of the fixed prompt, whatever `calibrate` says; for comparisons."""
        if self.fixed is None:
            raise RuntimeError("fixed_prompt_constants needs random or balanced demonstrations, chosen by fit()")
        if self.fixed.p_cf is None or self.fixed.domain is None:
            self._calibrate_constants(self.fixed, "all")
        return self.fixed.p_cf, self.fixed.domain

    def _contexts(self, texts: Sequence[str], progress: bool) -> Iterator[tuple[int, str, _Context]]:
        """(i, clipped text, its context) per text: the fixed prompt, or a new context of the text's
        nearest demonstrations (without calibration constants yet)."""
        from tqdm.auto import tqdm

        if self.fixed is None and self.selector is None:
            raise RuntimeError("call fit(training examples) first (it holds the demonstrations)")
        texts = [self.clip(t) for t in texts]
        vectors = self.selector.embed(texts) if self.selector is not None else None
        for i, text in enumerate(tqdm(texts, desc="prompt", unit="ex", disable=not progress, file=sys.stderr)):
            if self.selector is not None:
                yield i, text, self._context(self.selector.select(vectors[i], self.options.shots * len(self.labels)))
            else:
                yield i, text, self.fixed

    def scores_and_constants(self, texts: Sequence[str], progress: bool = False) -> list[tuple[Tensor, Tensor, Tensor]]:
        """(raw scores, p_cf, PMI domain scores) per text, whatever `calibrate` says: every reading of one pass."""
        out = []
        for i, text, ctx in self._contexts(texts, progress):
            if ctx.p_cf is None or ctx.domain is None:
                self._calibrate_constants(ctx, "all")
            out.append((self._scores(ctx, self._example_ids(ctx, text, f"text {i}")[0]), ctx.p_cf, ctx.domain))
        return out

    def demonstrations(self) -> list[Demo]:
        return list(self.fixed.demos) if self.fixed is not None else []

    def classify(self, texts: Sequence[str], where: Sequence[str] | None = None, progress: bool = False):
        """One record per text: label, raw scores, calibrated scores, demonstrations used, clipped tokens."""
        out = []
        for i, text, ctx in self._contexts(texts, progress):
            if self.selector is not None:  # the text's own demonstrations: its own constants
                self._calibrate_constants(ctx)
            ids, clipped = self._example_ids(ctx, text, where[i] if where is not None else f"text {i}")
            out.append(self._record(ctx, self._scores(ctx, ids), clipped))
        return out

    def _record(self, ctx: _Context, raw: Tensor, clipped: int) -> dict:
        o = self.options
        if o.calibrate == "contextual":
            final = calibration.contextual_calibrate(raw, ctx.p_cf)
        elif o.calibrate == "pmi":
            final = calibration.pmi(raw, ctx.domain)
        else:
            final = raw
        probs = final if o.calibrate == "contextual" else calibration.label_probs(final)
        best = int(final.argmax())
        return {"label": self.labels[best], "scores": dict(zip(self.labels, raw.tolist())),
                "probs": dict(zip(self.labels, probs.tolist())), "demonstrations": len(ctx.demos),
                "clipped_tokens": clipped}
