"""`transferlm generate`: continue a prompt with a decoder (SmolLM2 GGUF, GPT-2 / Llama folders).

    transferlm generate --model smollm2 --prompt "The capital of France is" --max-new-tokens 20
    transferlm generate --model smollm2 --chat --prompt "Name three rivers." --temperature 0.7 --top-p 0.9

Greedy by default; any of --temperature (> 0), --top-k, --top-p turns sampling on (--seed makes
it repeatable). Stops at the model's end-of-sequence token (and <|im_end|> with --chat). Prints
the prompt and its continuation on stdout (with --chat, the reply alone).

Does not: batch several prompts, stream tokens as they come, or apply arbitrary chat templates
(--chat writes the ChatML turn SmolLM2-Instruct was tuned on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a decoder language model",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2",
                   help="an asset name (smollm2), a .gguf file, or a Hugging Face decoder folder with its "
                        "tokenizer (default: smollm2)")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate at most (default: 32)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sample with this temperature (> 0); 0 means greedy (default: greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass >= p")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a ChatML user turn (SmolLM2-Instruct)")
    p.set_defaults(func=run)


def load(model: str):
    """(Decoder, tokenizer) for an asset name, a GGUF file or an HF folder."""
    from ..data import assets
    from ..models import Decoder
    from ..tokenization.bpe import ByteLevelBPETokenizer
    from ..tokenization.io import load_tokenizer

    path = assets.path(model) if model in assets.ASSETS else Path(model)
    if not path.exists():
        raise FileNotFoundError(f"--model {model}: not an asset name ({', '.join(assets.ASSETS)}), file or folder")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"--model {path}: expected a .gguf file or a model folder")
        return Decoder.from_pretrained(path), ByteLevelBPETokenizer.from_gguf(path)
    return Decoder.from_pretrained(path), load_tokenizer(path)


def sampling_options(args: argparse.Namespace) -> tuple[float, bool]:
    """--max-new-tokens / --temperature / --top-k / --top-p checked -> (temperature, do_sample):
    sampling when a temperature > 0 is given, or top-k / top-p without a temperature; else greedy.
    Shared by `generate` and `prompt generate`."""
    from ..models.decoder import check_sampling
    from . import UserError

    if args.max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must be >= 0, not {args.max_new_tokens}")
    temperature = 1.0 if args.temperature is None else args.temperature
    try:
        check_sampling(temperature, args.top_k, args.top_p)
    except ValueError as e:
        raise UserError(f"--{str(e).split()[0].replace('_', '-')}: {e}") from None
    do_sample = (args.temperature is not None and args.temperature > 0) or (
        args.temperature is None and (args.top_k is not None or args.top_p is not None))
    return temperature, do_sample


def run(args: argparse.Namespace) -> int:
    temperature, do_sample = sampling_options(args)
    model, tok = load(args.model)
    prompt = args.prompt
    stops: list[int] = []
    if model.config.eos_token_id is not None:
        stops.append(int(model.config.eos_token_id))
    if args.chat:
        end = tok.token_to_id("<|im_end|>")
        if tok.token_to_id("<|im_start|>") is None or end is None:
            raise UserError(f"--chat: the tokenizer of {args.model} has no <|im_start|> / <|im_end|> tokens")
        prompt = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        stops.append(end)
    ids = tok.encode(prompt).ids
    if not ids:
        raise UserError("--prompt: the prompt encodes to no tokens")
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens, do_sample=do_sample,
                         temperature=temperature, top_k=args.top_k, top_p=args.top_p, stop_token_ids=stops,
                         generator=generator)
    new = out[0, len(ids):].tolist()
    cut = next((i for i, t in enumerate(new) if t in stops), len(new))
    new = new[:cut]  # the stop token itself (and any padding after it) is not text
    text = tok.decode(new)
    sys.stdout.write((text if args.chat else args.prompt + text) + "\n")  # --chat: the reply alone
    sys.stdout.flush()
    return 0
