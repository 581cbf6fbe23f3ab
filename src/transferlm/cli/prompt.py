"""`transferlm prompt`: use a decoder without training it: few-shot classification, streamed generation.

    transferlm prompt classify --model smollm2 --train train.csv --test test.csv --shots 1 \\
        --select balanced --calibrate contextual --out predictions.jsonl
    transferlm prompt generate --model smollm2 --prompt "The capital of France is" --max-new-tokens 20
    transferlm prompt generate --model smollm2 --chat --prompt "Name three rivers." --temperature 0.7

classify: the label of each test text is the verbalizer (the label itself, or --verbalizer
LABEL=WORDS) the model finds likeliest after a prompt of --shots demonstrations PER CLASS from the
training file (--select random | balanced | nearest: MiniLM nearest neighbours of each test text),
optionally calibrated (--calibrate contextual: Zhao et al. 2021; pmi: Holtzman et al. 2021).
Files: CSV / TSV / JSON lines with text and label columns, as `finetune` reads them; a test label
not among the training labels is an error naming the file and line. A progress bar goes to stderr;
--out writes one JSON line per test example; the LAST stdout line is one JSON object with accuracy
and macro F1. --max-text-tokens N clips every article to its first N tokens; a prompt longer than the
model's context is an error saying by how much, unless --overflow clip (the test text's tail is dropped
and each record says how many tokens).

generate: `transferlm generate`'s sampling options, the tokens printed as they come; --chat renders
the prompt as a user turn with the model's own chat template (GGUF / tokenizer_config.json).

Does not: fine-tune (`finetune`), or batch several prompts for generation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..data.formats import FORMATS
from . import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompt", help="few-shot classification and streamed generation with a decoder",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="prompt_command", required=True)

    c = cmds.add_parser("classify", help="k-shot classification by verbalizer scoring (last line: JSON)")
    c.add_argument("--model", default="smollm2", help="asset name, .gguf file or HF decoder folder (default: smollm2)")
    c.add_argument("--train", required=True, help="labelled examples the demonstrations come from")
    c.add_argument("--test", required=True, help="labelled examples to classify and score")
    c.add_argument("--format", default=None, choices=FORMATS, help="both files' format (default: sniffed)")
    c.add_argument("--shots", type=int, default=0, help="demonstrations per class (default: 0)")
    c.add_argument("--select", default="balanced", choices=["random", "balanced", "nearest"],
                   help="how demonstrations are chosen (default: balanced; random and nearest take "
                        "shots x labels in all)")
    c.add_argument("--calibrate", default="none", choices=["none", "contextual", "pmi"],
                   help="none, contextual calibration (Zhao et al. 2021) or domain-conditional PMI (default: none)")
    c.add_argument("--length-normalize", action="store_true",
                   help="average the label tokens' log-probs instead of summing them")
    c.add_argument("--verbalizer", action="append", default=[], metavar="LABEL=WORDS",
                   help="the words scored for a label (default: the label itself); repeatable")
    c.add_argument("--instruction", default=None,
                   help="first line of the prompt; {labels} is replaced by the verbalizers "
                        "(default: 'Classify each article as one of: {labels}.'; '' for none)")
    c.add_argument("--input-prefix", default="Article: ", help="text before each input (default: 'Article: ')")
    c.add_argument("--answer-cue", default="Topic:", help="text after each input, before the label (default: 'Topic:')")
    c.add_argument("--max-text-tokens", type=int, default=None, help="clip every text to its first N tokens")
    c.add_argument("--overflow", default="error", choices=["error", "clip"],
                   help="a prompt over the model's context: error (default) or clip the test text's tail")
    c.add_argument("--chat", action="store_true", help="render demonstrations as chat turns with the model's template")
    c.add_argument("--seed", type=int, default=0, help="seed of random / balanced selection (default: 0)")
    c.add_argument("--limit", type=int, default=None, help="classify only the first N test examples")
    c.add_argument("--out", default=None, help="write one JSON line per test example here")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_classify)

    g = cmds.add_parser("generate", help="continue a prompt, streaming the tokens to stdout")
    g.add_argument("--model", default="smollm2", help="asset name, .gguf file or HF decoder folder (default: smollm2)")
    g.add_argument("--prompt", required=True, help="the text to continue")
    g.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate at most (default: 32)")
    g.add_argument("--temperature", type=float, default=None, help="sample with this temperature; 0 means greedy")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass >= p")
    g.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    g.add_argument("--chat", action="store_true", help="render the prompt as a user turn with the model's chat template")
    g.set_defaults(func=run_generate)


def _model_path(model: str) -> Path:
    from ..data import assets

    return assets.path(model) if model in assets.ASSETS else Path(model)


def _verbalizers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--verbalizer {item!r}: expected LABEL=WORDS")
        lab, words = item.split("=", 1)
        out[lab.strip()] = words
    return out


def run_classify(args: argparse.Namespace) -> int:
    import torch

    from ..data.formats import LabelSet, read_classification
    from ..prompting.fewshot import PromptClassifier, PromptOptions
    from ..prompting.templates import ChatTemplate, PromptTemplate
    from ..training import metrics

    if args.shots < 0:
        raise UserError(f"--shots must be >= 0, not {args.shots}")
    train = read_classification(args.train, fmt=args.format, pairs=False)
    if not train:
        raise UserError(f"{args.train}: no training examples")
    labels = LabelSet.from_data(ex.label for ex in train)
    test = read_classification(args.test, fmt=args.format, pairs=False, label_set=labels)
    if args.limit is not None:
        test = test[:args.limit]
    if not test:
        raise UserError(f"{args.test}: no test examples")
    options = PromptOptions(shots=args.shots, select=args.select, calibrate=args.calibrate,
                            length_normalize=args.length_normalize, max_text_tokens=args.max_text_tokens,
                            overflow=args.overflow, chat=args.chat, seed=args.seed)
    template = PromptTemplate(input_prefix=args.input_prefix, answer_cue=args.answer_cue)
    if args.instruction is not None:
        template.instruction = args.instruction
    from .generate import load

    model, tok = load(args.model)
    chat = ChatTemplate.from_model(_model_path(args.model)) if args.chat else None
    t0 = time.perf_counter()
    with torch.inference_mode():
        clf = PromptClassifier(model, tok, labels.labels, _verbalizers(args.verbalizer), template, chat, options)
        clf.fit(train, progress=not args.no_progress)
        t1 = time.perf_counter()
        where = [f"{args.test}:{ex.line}" for ex in test]
        records = clf.classify([ex.text for ex in test], where, progress=not args.no_progress)
    t2 = time.perf_counter()
    gold = [ex.label for ex in test]
    pred = [r["label"] for r in records]
    if args.out:
        from ..fileio import atomic_write_text

        lines = [json.dumps({"line": ex.line, "gold": ex.label, **r}) for ex, r in zip(test, records)]
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    counts = {lab: pred.count(lab) for lab in labels.labels}
    result = {"accuracy": metrics.accuracy(gold, pred), "macro_f1": metrics.f1(gold, pred, "macro"),
              "examples": len(test), "shots": args.shots, "select": args.select, "calibrate": args.calibrate,
              "predicted_counts": counts, "clipped_texts": clf.clipped_texts,
              "clipped_test_tokens": sum(r["clipped_tokens"] for r in records),
              "fit_seconds": round(t1 - t0, 3), "seconds_per_example": round((t2 - t1) / len(test), 4)}
    print(json.dumps(result))
    return 0


class TokenPrinter:
    """Writes decoded text as tokens arrive; holds back a split UTF-8 character until it is whole."""

    def __init__(self, tokenizer, stops: set[int], out=None):
        self.tok, self.stops, self.out = tokenizer, stops, out if out is not None else sys.stdout
        self.ids: list[int] = []
        self.printed = 0
        self.stopped = False

    def __call__(self, new) -> None:
        t = int(new[0])
        if self.stopped or t in self.stops:
            self.stopped = True
            return
        self.ids.append(t)
        text = self.tok.decode(self.ids)
        if text.endswith("\ufffd"):  # an incomplete character: wait for its remaining bytes
            return
        self.out.write(text[self.printed:])
        self.out.flush()
        self.printed = len(text)

    def finish(self) -> str:
        text = self.tok.decode(self.ids)
        self.out.write(text[self.printed:] + "\n")
        self.out.flush()
        return text


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from ..prompting.templates import ChatTemplate
    from .generate import load, sampling_options

    temperature, do_sample = sampling_options(args)
    model, tok = load(args.model)
    stops: set[int] = set()
    if model.config.eos_token_id is not None:
        stops.add(int(model.config.eos_token_id))
    prompt = args.prompt
    if args.chat:
        chat = ChatTemplate.from_model(_model_path(args.model))
        prompt = chat.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
        if chat.eos_token and tok.token_to_id(chat.eos_token) is not None:
            stops.add(int(tok.token_to_id(chat.eos_token)))
        end = tok.token_to_id("<|im_end|>")  # ChatML's end of turn (SmolLM2)
        if end is not None:
            stops.add(int(end))
    ids = tok.encode(prompt).ids
    if not ids:
        raise UserError("--prompt: the prompt encodes to no tokens")
    if not args.chat:
        sys.stdout.write(args.prompt)
    printer = TokenPrinter(tok, stops)
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens, do_sample=do_sample,
                   temperature=temperature, top_k=args.top_k, top_p=args.top_p, stop_token_ids=sorted(stops),
                   generator=generator, on_token=printer)
    printer.finish()
    return 0
