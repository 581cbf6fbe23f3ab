"""The one pretraining builder: objective preset -> model, dataset, collator, held-out evaluator.

    tok = load_tokenizer(folder)
    p = build_pretraining("bert", tok, corpus_dir="run/corpus", data=["text.txt"], model="bert-tiny",
                          max_length=128, seed=0)
    Trainer(p.model, p.dataset, p.collate, ...).fit(eval_fn=p.evaluator(held_corpus, n_examples=256))

Everything a preset decides is in the `OBJECTIVES` table (one row per preset: model preset, NSP,
SBO, masking, the shortest example, the exported architecture); the functions below read only
that row. `transferlm pretrain` (cli/pretrain.py), the demo's stage 2 (demo/stages.py) and
benchmarks/pretraining.py all build through here, so the three cannot drift apart.

  bert      MLM (token masking) + NSP over sentence pairs (Devlin et al. 2019)
  roberta   MLM only (dynamic token masking) over packed full sentences (Liu et al. 2019 sec. 4.2)
  spanbert  span masking + span boundary objective, single segments, no NSP (Joshi et al. 2020)
  gpt       causal LM over packed blocks (Radford et al. 2018/2019)

Seeds: the model's weights come from the global torch RNG (seed it first: training.seed_everything);
sentence pairs are drawn with `seed`, masks with `seed` (the collator's own generator); the held-out
evaluator draws its examples and fixes its masks with `seed + HELDOUT_SEED_OFFSET` and its NSP
pairs with `seed + 1`, so they never coincide with training's.

Does not: parse options or files of options (cli/pretrain.py), train (training/), or tokenize
text other than through data/corpus.py's shards.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

# The held-out evaluator's examples and masks: drawn with seed + this. (The demo used 12345 and
# `transferlm pretrain` 1,000,003 before the two shared this builder; the demo's value was kept, so
# its held-out curve is unchanged.)
HELDOUT_SEED_OFFSET = 12345


@dataclass(frozen=True)
class Objective:
    """What one pretraining preset decides."""

    name: str
    model: str  # the models/ preset used when none is named
    causal: bool = False  # causal LM over packed blocks (a Decoder); else MLM (an Encoder)
    nsp: bool = False  # sentence pairs + next sentence prediction (reads the pooler)
    sbo: bool = False  # SpanBERT's span boundary objective
    masking: str = "token"  # default masking strategy (MLM presets)
    min_length: int = 3  # the fewest tokens an example can have, specials included
    layout: str = "[CLS] text [SEP]"  # what those tokens are, for the error message
    architecture: str | None = None  # HF architecture of the exported folder (None: the family's default)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("bert", "bert-mini", nsp=True, min_length=5, layout="[CLS] A [SEP] B [SEP]",
              architecture="BertForPreTraining"),
    Objective("roberta", "bert-mini", architecture="BertForMaskedLM"),
    Objective("spanbert", "bert-mini", sbo=True, masking="span", architecture="BertForMaskedLM"),
    Objective("gpt", "gpt-mini", causal=True, min_length=2, layout="an input and a next token"),
)}
# The special tokens MLM pretraining cannot do without.
MLM_SPECIALS = ("cls", "sep", "mask", "pad")


def objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"preset must be one of {', '.join(OBJECTIVES)}, not {name!r}")
    return OBJECTIVES[name]


def special_ids(tok: Any) -> dict[str, int]:
    """role -> id for the special tokens the tokenizer has (cls, sep, mask, pad, bos, eos, ...)."""
    out = {}
    for role in tok.special_tokens:
        try:
            out[role] = tok.special_token_id(role)
        except (KeyError, ValueError):
            continue
    return out


def check_length(obj: Objective, max_length: int) -> None:
    if max_length < obj.min_length:
        raise ValueError(f"max_length {max_length} is smaller than the {obj.min_length} tokens the {obj.name} preset "
                         f"needs at least ({obj.layout}, one text token per segment)")


# ---- the model -------------------------------------------------------------------------------------------
def model_config(obj: Objective, name: str, vocab_size: int, specials: dict[str, int], max_length: int):
    """The models/ preset `name` (default: the objective's) shaped for a tokenizer and an example length:
    its vocabulary and special ids, and at least `max_length` positions."""
    from ..models import preset

    name = name or obj.model
    positions = max(max_length, preset(name).max_position_embeddings)
    if obj.causal:
        return preset(name, vocab_size=vocab_size, max_position_embeddings=positions,
                      pad_token_id=specials.get("pad"), bos_token_id=specials.get("bos"),
                      eos_token_id=specials.get("eos", specials.get("sep")))
    # Only NSP reads the pooler; without NSP it would be a parameter with no gradient (which DDP
    # rejects), and HF's BertForMaskedLM has none either.
    return preset(name, vocab_size=vocab_size, pad_token_id=specials["pad"], add_pooler=obj.nsp,
                  max_position_embeddings=positions)


def backbone(obj: Objective, vocab_size: int, specials: dict[str, int], max_length: int, model: str = "",
             init_from: str = "", tokenizer_name: str = "") -> nn.Module:
    """The Encoder (MLM presets) or Decoder (gpt): from a Hugging Face folder, else a fresh preset.
    Refuses a vocabulary other than the tokenizer's and fewer positions than `max_length`."""
    from ..models import Decoder, Encoder

    cls = Decoder if obj.causal else Encoder
    what = init_from or model or obj.model
    net = cls.from_pretrained(init_from) if init_from else cls(model_config(obj, model, vocab_size, specials,
                                                                             max_length))
    mc = net.config
    if mc.vocab_size != vocab_size:
        tname = f", {tokenizer_name}" if tokenizer_name else ""
        raise ValueError(f"{what}: the model's vocabulary ({mc.vocab_size}) is not the tokenizer's ({vocab_size}{tname})")
    if max_length > mc.max_position_embeddings:
        raise ValueError(f"max_length {max_length} is more than the {mc.max_position_embeddings} positions of {what} "
                         f"(max_position_embeddings)")
    if not obj.causal:
        if obj.nsp and net.pooler is None:
            raise ValueError("NSP needs the encoder's pooler; the model was built without one")
        if not obj.nsp:
            net.pooler = None
    return net


def objective_model(obj: Objective, net: nn.Module) -> nn.Module:
    """The backbone with the objective's heads: PretrainingModel (MLM [+ NSP | SBO]) or CausalLMModel."""
    from .pretraining import CausalLMModel, PretrainingModel

    if obj.causal:
        return CausalLMModel(net)
    mc = net.config
    return PretrainingModel(net, mc.hidden_size, mc.vocab_size, nsp=obj.nsp, sbo=obj.sbo, layer_norm_eps=mc.norm_eps)


# ---- the data --------------------------------------------------------------------------------------------
def token_corpus(sources: list[str], folder: str | Path, tok: Any, sentence_split: str = "punct",
                 progress: bool = True):
    """Token shards of `sources` in `folder`, reused when they were made from the same sources,
    vocabulary size and sentence split. Under torchrun rank 0 tokenizes and the others wait."""
    import torch.distributed as dist

    from ..data.corpus import TokenCorpus, build_corpus
    from ..training.trainer import distributed_setup

    folder = Path(folder)
    meta = folder / "corpus.json"
    sources = [str(Path(p)) for p in sources]
    rank, _, world = distributed_setup()
    if rank == 0:
        fresh = False
        if meta.exists():
            m = json.loads(meta.read_text(encoding="utf-8"))
            fresh = m.get("sources") == sources and m.get("vocab_size") == tok.vocab_size and \
                m.get("sentence_split") == sentence_split
        if not fresh:
            build_corpus(sources, folder, tok, tok.vocab_size, sentence_split=sentence_split, progress=progress)
    if world > 1:
        dist.barrier()
    return TokenCorpus(folder)


def dataset(obj: Objective, corpus: Any, max_length: int, specials: dict[str, int], seed: int):
    """Sentence pairs for NSP (bert), else packed blocks ([CLS] ... [SEP] for MLM; separated by eos for gpt)."""
    from ..data.corpus import NSPDataset, PackedDataset

    if obj.causal:
        return PackedDataset(corpus, max_length, doc_separator=specials.get("eos", specials.get("sep")))
    if obj.nsp:
        return NSPDataset(corpus, max_length, cls_id=specials["cls"], sep_id=specials["sep"], seed=seed)
    # RoBERTa FULL-SENTENCES / SpanBERT single segments: packed text in [CLS] ... [SEP]
    return PackedDataset(corpus, max_length, doc_separator=specials["sep"], prefix=[specials["cls"]],
                         suffix=[specials["sep"]])


def collator(obj: Objective, specials: dict[str, int], vocab_size: int, counts: Any = None, masking: str = "",
             mlm_probability: float = 0.15, random_distribution: str = "unigram", seed: int = 0):
    """Pads (gpt: shifted targets) or pads and masks (MLM presets; the 10% random tokens drawn by
    `counts`, the training corpus's unigram counts, when random_distribution is unigram)."""
    from ..data.collate import CausalLMCollator
    from .collate import MLMCollator
    from .masking import MaskingConfig, random_token_weights

    if obj.causal:
        return CausalLMCollator(pad_id=specials.get("pad", 0))
    config = MaskingConfig(strategy=masking or obj.masking, mlm_probability=mlm_probability,
                           random_distribution=random_distribution)
    weights = random_token_weights(vocab_size, sorted(set(specials.values())),
                                   counts if random_distribution == "unigram" else None)
    return MLMCollator(pad_id=specials["pad"], mask_id=specials["mask"], random_weights=weights, masking=config,
                       seed=seed)


@dataclass
class Pretraining:
    """What `build_pretraining` returns: everything the Trainer needs, and how to evaluate on held-out text."""

    objective: Objective
    model: nn.Module  # PretrainingModel or CausalLMModel
    dataset: Any
    collate: Any
    tokenizer: Any
    specials: dict[str, int]
    max_length: int
    seed: int

    @property
    def config(self):
        return (self.model.decoder if self.objective.causal else self.model.encoder).config

    @property
    def backbone(self) -> nn.Module:
        return self.model.decoder if self.objective.causal else self.model.encoder

    def evaluator(self, held_corpus: Any, n_examples: int, batch_size: int = 32):
        """The held-out MLM evaluation (an MLMEvaluator; None for gpt): `held_corpus` read with the
        training layout, `n_examples` of its examples masked once by a copy of the training collator
        re-seeded to seed + HELDOUT_SEED_OFFSET (every evaluation scores the same positions); the
        unigram baseline answers the training corpus's most frequent non-special token."""
        from .pretraining import MLMEvaluator

        if self.objective.causal:
            return None
        held = dataset(self.objective, held_corpus, self.max_length, self.specials, self.seed + 1)
        return MLMEvaluator.from_dataset(held, copy.deepcopy(self.collate), n_examples=n_examples,
                                         batch_size=batch_size, seed=self.seed + HELDOUT_SEED_OFFSET,
                                         counts=self.dataset.corpus.unigram_counts(),
                                         special_ids=sorted(set(self.specials.values())))

    def export(self, folder: str | Path) -> Path:
        """A Hugging Face folder: the backbone (+ MLM / NSP heads under BERT's names) and the tokenizer."""
        if self.objective.causal:
            self.model.decoder.save_pretrained(folder)  # the family's LM architecture (GPT2LMHeadModel, ...)
        else:
            self.model.encoder.save_pretrained(folder, extra_tensors=self.model.cls.hf_state_dict(),
                                               architectures=[self.objective.architecture])
        self.tokenizer.save_pretrained(folder)
        return Path(folder)


def build_pretraining(preset: str, tok: Any, corpus_dir: str | Path, data: list[str], *, model: str = "",
                      init_from: str = "", max_length: int = 128, sentence_split: str = "punct", masking: str = "",
                      mlm_probability: float = 0.15, random_distribution: str = "unigram", seed: int = 0,
                      progress: bool = True, tokenizer_name: str = "") -> Pretraining:
    """Model, dataset and collator for the objective `preset` over the text files `data` (tokenized
    into `corpus_dir` once). Everything that can be refused (tokenizer specials, vocabulary,
    positions, length) is checked before the corpus is written. Seed the global RNG first.
    tokenizer_name: where the tokenizer came from, for error messages."""
    obj = objective(preset)
    check_length(obj, max_length)
    specials = special_ids(tok)
    if not obj.causal:
        for role in MLM_SPECIALS:
            if role not in specials:
                raise ValueError(f"{tokenizer_name or 'the tokenizer'}: the tokenizer has no {role!r} token, which MLM "
                                 f"pretraining needs")
    V = tok.vocab_size
    net = backbone(obj, V, specials, max_length, model=model, init_from=init_from, tokenizer_name=tokenizer_name)
    corpus = token_corpus(data, corpus_dir, tok, sentence_split, progress)
    ds = dataset(obj, corpus, max_length, specials, seed)
    counts = corpus.unigram_counts() if not obj.causal and random_distribution == "unigram" else None
    collate = collator(obj, specials, V, counts, masking, mlm_probability, random_distribution, seed)
    return Pretraining(obj, objective_model(obj, net), ds, collate, tok, specials, max_length, seed)
