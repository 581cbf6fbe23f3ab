"""The models one `transferlm serve` process holds, and what each can do.

    load_model("minilm", "minilm")          # an encoder: tokenize, embed
    load_model("topics", "runs/clf")        # a saved TextClassifier (encoder or GPT-1 decoder): tokenize, classify
    load_model("ulmfit", "runs/lstm/model") # a saved ULMFiT LSTM classifier: classify
    load_model("ner", "runs/tagger")        # a saved Tagger / SpanTagger: tokenize, tag
    load_model("smol", "smollm2")           # a decoder (GGUF, GPT-2 / Llama folder): tokenize, generate, prompt

A source is an asset name, a folder written by a transferlm pipeline (`transferlm_pipeline.json`;
or a ULMFiT LSTM classifier's, config.json model_type "lstm_classifier"),
a Hugging Face folder (an encoder, or a decoder when config.json says gpt2 / llama or a
*ForCausalLM architecture) or a .gguf file. Each served model turns a list of inputs into a list
of results in one forward pass (`run_batch`); the batching itself is in batching.py, the HTTP in
app.py.

What this file does not do: HTTP, queues or threads; decide batch sizes; serve question
answering pipelines (no endpoint for them yet: loading one is an error that says so).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..data import assets
from ..embeddings import contextual

TASKS = ("tokenize", "embed", "classify", "tag", "generate", "prompt")


class UnsupportedTask(LookupError):
    """A batched task sent to a model that does not serve it (routing sends a task only to a model
    whose `tasks` list names it, so this is an internal error, a 500)."""


class ModelLoadError(ValueError):
    """A --model source that cannot be served; the message says what was expected."""


@dataclass
class EmbedInput:
    """One text of an /embed request, tokenized (and truncated) before it is queued."""

    enc: contextual.Tokenized
    pooling: str  # "mean" | "cls"
    normalize: bool


@dataclass
class GenerateOptions:
    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PromptSpec:
    """What a /prompt request asks for besides its texts; equal specs share one prepared classifier."""

    labels: tuple[str, ...]
    verbalizers: tuple[tuple[str, str], ...]  # (label, words) where they differ from the label
    demonstrations: tuple[tuple[str, str], ...]  # (text, label), in prompt order
    calibrate: str = "none"
    length_normalize: bool = False
    instruction: str | None = None  # None: PromptTemplate's default
    input_prefix: str = "Article: "
    answer_cue: str = "Topic:"
    max_text_tokens: int | None = None
    overflow: str = "error"
    chat: bool = False


class ServedModel:
    """Base: a name, a tokenizer, a length limit and the tasks this model serves."""

    kind = ""
    tasks: tuple[str, ...] = ()

    def __init__(self, name: str, source: str, tokenizer: Any, max_tokens: int) -> None:
        self.name, self.source, self.tokenizer, self.max_tokens = name, source, tokenizer, max_tokens

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "tasks": list(self.tasks),
                "max_input_tokens": self.max_tokens}

    # -- tokenization (cheap; runs on the event loop) ---------------------------------------------
    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text).ids)

    def tokenize(self, text: str) -> dict[str, Any]:
        """ids, tokens, character offsets, a special-token mask and each token's text for display."""
        e = self.encode(text)
        from ..tokenization.bpe import ByteLevelBPETokenizer

        byte_level = isinstance(self.tokenizer, ByteLevelBPETokenizer)  # tokens are byte symbols ("Ġw")
        shown = [tok if sp or not byte_level else text[a:b]
                 for tok, (a, b), sp in zip(e.tokens, e.offsets, e.special_tokens_mask)]
        return {"ids": list(e.ids), "tokens": list(e.tokens), "offsets": [list(o) for o in e.offsets],
                "special": [bool(s) for s in e.special_tokens_mask], "text": shown}

    # -- inference (runs on the compute thread) ---------------------------------------------------
    def run_batch(self, task: str, inputs: list[Any]) -> list[Any]:
        """One forward pass over a dynamic batch of `task` inputs. Encoders and pipelines override it;
        DecoderModel does not (its generation is batched step by step in batching.GenerationBatcher),
        so this guard is what a batched task sent to a model without it would meet: routing only sends
        a task to a model whose `tasks` list it."""
        raise UnsupportedTask(f"{self.kind} model {self.name!r} does not {task} "
                              f"(it serves: {', '.join(self.tasks)})")


class EncoderModel(ServedModel):
    """A BERT-family encoder: sentence vectors (embeddings/contextual.py's pooling)."""

    kind = "encoder"
    tasks = ("tokenize", "embed")

    def __init__(self, name: str, source: str, model: Any, tokenizer: Any) -> None:
        super().__init__(name, source, tokenizer, contextual._model_max_length(model))
        self.model = model.eval()
        self.pad_id = contextual._pad_id(tokenizer)
        self.last = contextual._num_hidden_states(model) - 1

    def prepare(self, texts: list[str], truncate: bool) -> tuple[list[contextual.Tokenized], list[int]]:
        """Tokenize; returns (kept encodings, full lengths) so the caller can reject long texts."""
        full = contextual.encode(texts, self.tokenizer, 10 ** 9)
        lengths = [len(e.ids) for e in full]
        if truncate and max(lengths, default=0) > self.max_tokens:
            full = contextual.encode(texts, self.tokenizer, self.max_tokens)
        return full, lengths

    def run_batch(self, task: str, inputs: list[EmbedInput]) -> list[np.ndarray]:
        """One float32 vector (C,) per input, pooled for the whole pass at once (rows of one array)."""
        if task != "embed":
            return super().run_batch(task, inputs)
        out: list[np.ndarray | None] = [None] * len(inputs)
        encs = [x.enc for x in inputs]
        with torch.inference_mode():
            # one pass: batch_size = all inputs (the batcher sized it); padded to its longest
            for idx, x, am in contextual.run_batches(encs, self.model, (self.last,), "mean", len(encs), self.pad_id):
                v = contextual.mean_pool(x, am)  # (B, C)
                cls = torch.tensor([inputs[i].pooling == "cls" for i in idx])  # (B,)
                if bool(cls.any()):
                    v = torch.where(cls[:, None], contextual.cls_pool(x), v)
                norm = torch.tensor([inputs[i].normalize for i in idx])  # (B,)
                if bool(norm.any()):
                    v = torch.where(norm[:, None], contextual.l2_normalize(v), v)
                rows = v.float().numpy()  # (B, C): one conversion for the pass
                for r, i in enumerate(idx):
                    out[i] = rows[r]
        return out  # type: ignore[return-value]


class PipelineModel(ServedModel):
    """A saved fine-tuned pipeline: a TextClassifier (classify) or Tagger / SpanTagger (tag)."""

    def __init__(self, name: str, source: str, pipeline: Any) -> None:
        super().__init__(name, source, pipeline.tokenizer, pipeline.max_length)
        self.pipeline = pipeline
        self.kind = {"classify": "classifier", "pair": "classifier", "tag": "tagger", "spans": "tagger"}[pipeline.task]
        self.tasks = ("tokenize", "classify") if self.kind == "classifier" else ("tokenize", "tag")
        self.labels = list(pipeline.labels)

    def _ranked(self, probs: Any) -> list[list[dict[str, Any]]]:
        """(N, K) class probabilities -> per input, every label with its score, best first."""
        return [sorted(({"label": lab, "score": float(p)} for lab, p in zip(self.labels, row)),
                       key=lambda d: -d["score"]) for row in probs]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "labels": self.labels, "pipeline": type(self.pipeline).__name__,
                **({"pairs": True} if self.kind == "classifier" and self.pairs else {})}

    @property
    def pairs(self) -> bool:
        """A sentence-pair classifier: each input is (text, text_b)."""
        return self.pipeline.task == "pair"

    def count_tokens(self, text: str, pair: str | None = None) -> int:
        p = self.pipeline
        if hasattr(p, "_special_id"):  # a GPT-1 DecoderClassifier adds <start> [<delim>] <extract> itself
            o = p.options
            specials = p._special_id(o.start_token) + p._special_id(o.extract_token) + (
                p._special_id(o.delimiter_token) if pair is not None else [])
            return len(self.tokenizer.encode(text, pair, add_special_tokens=False).ids) + len(specials)
        return len(self.tokenizer.encode(text, pair).ids)

    def run_batch(self, task: str, inputs: list[Any]) -> list[Any]:
        if task == "classify" and self.kind == "classifier":
            texts = [x[0] for x in inputs]  # inputs are (text, text_b or None)
            pairs = [x[1] for x in inputs] if self.pairs else None
            return self._ranked(self.pipeline.predict_proba(texts, pairs, batch_size=len(inputs)))  # (N, K)
        if task == "tag" and self.kind == "tagger":
            rows = self.pipeline.predict(inputs, batch_size=len(inputs))
            # plain tag sets (POS) give every word with its "tag": one span per word, named label
            return [[{"label": e.get("label", e.get("tag")), "text": e["text"], "start": e["start"],
                      "end": e["end"], "score": float(e["score"])} for e in row] for row in rows]
        return super().run_batch(task, inputs)


class UlmfitModel(PipelineModel):
    """A ULMFiT LSTM classifier (pipelines/ulmfit.py): a word vocabulary, no subword tokenizer with
    character offsets, so it serves /classify only; inputs are counted in its words."""

    def __init__(self, name: str, source: str, pipeline: Any) -> None:
        ServedModel.__init__(self, name, source, None, int(pipeline.max_length))
        self.pipeline, self.kind, self.tasks = pipeline, "classifier", ("classify",)
        self.labels = list(pipeline.labels)

    def count_tokens(self, text: str, pair: str | None = None) -> int:
        p = self.pipeline  # UlmfitClassifier.encode, before its cut to max_length
        return max(1, sum(len(p.vocab.encode_line(line, p.model.config.tokenizer))
                          for line in text.splitlines() if line.strip()))

    def run_batch(self, task: str, inputs: list[Any]) -> list[Any]:
        if task != "classify":
            return super().run_batch(task, inputs)
        return self._ranked(self.pipeline.predict_proba([x[0] for x in inputs]))  # (N, K); single texts only


class DecoderModel(ServedModel):
    """A causal LM: greedy or sampled continuations, one step at a time (`Decoder.stream`), and
    few-shot classification by verbalizer scoring (prompting/fewshot.py's `PromptClassifier`)."""

    kind = "decoder"
    tasks = ("tokenize", "generate", "prompt")
    PROMPT_CACHE = 8  # prepared classifiers kept (their shared prompt's KV cache and calibration)

    def __init__(self, name: str, source: str, model: Any, tokenizer: Any, path: Path | None = None) -> None:
        super().__init__(name, source, tokenizer, int(model.config.max_position_embeddings))
        self.model = model.eval()
        self.path = path  # the file or folder, for the chat template
        self._classifiers: OrderedDict[PromptSpec, Any] = OrderedDict()
        self.eos = [int(model.config.eos_token_id)] if model.config.eos_token_id is not None else []
        self.chat_ids = (tokenizer.token_to_id("<|im_start|>"), tokenizer.token_to_id("<|im_end|>"))

    @property
    def chat(self) -> bool:
        return None not in self.chat_ids

    def prompt_ids(self, prompt: str, chat: bool) -> list[int]:
        if chat:  # the ChatML user turn SmolLM2-Instruct was tuned on (as `transferlm generate --chat`)
            prompt = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        return list(self.encode(prompt).ids)

    def stops(self, chat: bool) -> list[int]:
        return self.eos + ([int(self.chat_ids[1])] if chat else [])

    def steps(self, ids: list[int], opts: GenerateOptions) -> Iterator[int]:
        """New token ids, one per `next()`; each call is one forward pass (call it on the compute thread)."""
        gen = torch.Generator().manual_seed(opts.seed) if opts.seed is not None else None
        stream = self.model.stream(torch.tensor([ids]), opts.max_new_tokens, opts.do_sample, opts.temperature,
                                   opts.top_k, opts.top_p, opts.stop_token_ids, generator=gen)
        for nxt in _inference_steps(stream):
            tok = int(nxt[0])
            if tok in opts.stop_token_ids:
                return
            yield tok


    def prompt_classifier(self, spec: PromptSpec) -> Any:
        """The PromptClassifier of `spec`, its shared part and calibration constants computed once
        (a small LRU: repeated requests with the same labels and demonstrations reuse them).
        Raises ValueError (prompting's PromptTooLong included) for what the request got wrong."""
        from ..prompting import ChatTemplate, PromptClassifier, PromptOptions, PromptTemplate

        clf = self._classifiers.get(spec)
        if clf is not None:
            self._classifiers.move_to_end(spec)
            return clf
        template = PromptTemplate(input_prefix=spec.input_prefix, answer_cue=spec.answer_cue)
        if spec.instruction is not None:
            template.instruction = spec.instruction
        chat = None
        if spec.chat:
            if self.path is None:
                raise ValueError(f"chat: model {self.name!r} was not loaded from a file or folder with a chat template")
            chat = ChatTemplate.from_model(self.path)
        options = PromptOptions(calibrate=spec.calibrate, length_normalize=spec.length_normalize,
                                max_text_tokens=spec.max_text_tokens, overflow=spec.overflow, chat=spec.chat)
        with torch.inference_mode():
            clf = PromptClassifier(self.model, self.tokenizer, list(spec.labels), dict(spec.verbalizers), template,
                                   chat, options)
            clf.use_demonstrations(list(spec.demonstrations))
        self._classifiers[spec] = clf
        while len(self._classifiers) > self.PROMPT_CACHE:
            self._classifiers.popitem(last=False)
        return clf

    def prompt_classify(self, spec: PromptSpec, texts: list[str]) -> list[dict[str, Any]]:
        """One record per text (PromptClassifier.classify's: label, scores, probs, clipped_tokens);
        runs on the compute thread."""
        clf = self.prompt_classifier(spec)
        with torch.inference_mode():
            return clf.classify(texts, [f"inputs[{i}]" for i in range(len(texts))])


def _inference_steps(stream: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    while True:
        with torch.inference_mode():  # grad mode is per thread: set it around each step
            nxt = next(stream, None)
        if nxt is None:
            return
        yield nxt


class TextDecoder:
    """Token ids -> text pieces as they come: a piece is emitted once its bytes form whole
    characters (a byte-level BPE token can end inside a UTF-8 character)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.ids, self.text = tokenizer, [], ""

    def add(self, tok: int) -> str:
        self.ids.append(tok)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""  # wait for the rest of the character
        piece, self.text = text[len(self.text):], text
        return piece


def load_model(name: str, source: str) -> ServedModel:
    """An asset name, pipeline folder, HF encoder / decoder folder or .gguf file -> a served model."""
    from ..models import Decoder
    from ..pipelines import base as pipeline_base
    from ..tokenization.bpe import ByteLevelBPETokenizer
    from ..tokenization.io import load_tokenizer

    if source in assets.ASSETS:
        if source not in ("minilm", "smollm2"):
            raise ModelLoadError(f"--model {name}={source}: the asset {source!r} is data, not a model "
                                 f"(model assets: minilm, smollm2)")
        path = assets.path(source)
    else:
        path = Path(source).expanduser()
    if not path.exists():
        raise ModelLoadError(f"--model {name}={source}: no such file or folder, and not an asset name "
                             f"({', '.join(assets.ASSETS)})")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"--model {name}={source}: expected a .gguf file or a model folder")
        return DecoderModel(name, source, Decoder.from_pretrained(path), ByteLevelBPETokenizer.from_gguf(path), path)
    from ..models.lstm import is_lstm_folder
    from ..pipelines.ulmfit import is_lstm_classifier_folder

    if is_lstm_classifier_folder(path):
        return UlmfitModel(name, source, pipeline_base.load(path))
    if is_lstm_folder(path):
        raise ModelLoadError(f"--model {name}={source}: an LSTM language model; fine-tune it into a classifier "
                             f"(transferlm finetune --task classify --model {source}) and serve that folder")
    if (path / pipeline_base.PIPELINE_FILE).is_file():
        task = pipeline_base.read_pipeline_config(path)["task"]
        if task == "qa":
            raise ModelLoadError(f"--model {name}={source}: question answering pipelines are not served "
                                 f"(endpoints: {', '.join(TASKS)})")
        return PipelineModel(name, source, pipeline_base.load(path))
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"--model {name}={source}: a folder without config.json (expected a Hugging Face "
                             f"model folder or one written by a transferlm pipeline)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{cfg_file}:{e.lineno}: not valid JSON ({e.msg})") from None
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") in ("gpt2", "llama") or any(str(a).endswith("ForCausalLM") or
                                                          str(a).endswith("LMHeadModel") for a in archs):
        return DecoderModel(name, source, Decoder.from_pretrained(path), load_tokenizer(path), path)
    model, tok = contextual.load(path)
    return EncoderModel(name, source, model, tok)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """"name=source" or "source" (named after the asset or the folder / file stem) -> (name, source)."""
    if "=" in spec:
        name, source = spec.split("=", 1)
        if not name or not source:
            raise ModelLoadError(f"--model {spec!r}: expected NAME=SOURCE or SOURCE")
    else:
        source = spec
        name = spec if spec in assets.ASSETS else Path(spec.rstrip("/")).stem
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ModelLoadError(f"--model {spec!r}: a model name may hold letters, digits, '-', '_' and '.' only")
    return name, source
