"""Tokens/s of one MLM pretraining step: our BERT-mini vs transformers' BertForMaskedLM.

Same shape (BERT-mini: 4 layers, 256 wide, 4 heads; vocabulary 30,522), same batch (32 x 128
tokens, 15% masked by our collator's token masking), same threads, same optimizer (fused AdamW):
each step is forward + backward + optimizer step. The models alternate, step by step, so that
both see the same machine load. Prints tokens/s of each and the ratio ours / transformers.

The main lever is the MLM head: we project to the vocabulary only at the ~15% chosen positions
(gather first), transformers projects every position and lets cross-entropy ignore 85% of them.

    python benchmarks/pretraining.py [--steps 5] [--warmup 1] [--threads N] [--device cpu|cuda] [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


import numpy as np  # noqa: E402
import torch  # noqa: E402

from transferlm.data.collate import MLMCollator  # noqa: E402
from transferlm.models import Encoder, preset  # noqa: E402
from transferlm.objectives.masking import random_token_weights  # noqa: E402
from transferlm.objectives.pretraining import PretrainingModel  # noqa: E402
from transferlm.training.optim import build_optimizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for both")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    from transformers import BertConfig, BertForMaskedLM

    V, B, T = 30522, args.batch, args.seq
    mc = preset("bert-mini", vocab_size=V, add_pooler=False)
    torch.manual_seed(0)
    ours = PretrainingModel(Encoder(mc), mc.hidden_size, V, nsp=False).to(dev)
    hf_cfg = BertConfig(vocab_size=V, hidden_size=mc.hidden_size, num_hidden_layers=mc.num_layers,
                        num_attention_heads=mc.num_heads, intermediate_size=mc.intermediate_size,
                        max_position_embeddings=mc.max_position_embeddings, attn_implementation="sdpa")
    hf = BertForMaskedLM(hf_cfg).to(dev)
    n_ours = sum(p.numel() for p in {id(p): p for p in ours.parameters()}.values())
    n_hf = sum(p.numel() for p in hf.parameters())

    rng = np.random.default_rng(0)
    examples = [{"input_ids": np.concatenate([[101], rng.integers(1000, V, T - 2), [102]]),
                 "special_tokens_mask": np.r_[1, np.zeros(T - 2, dtype=np.int64), 1]} for _ in range(B)]
    collate = MLMCollator(pad_id=0, mask_id=103, random_weights=random_token_weights(V, [0, 100, 101, 102, 103]))
    batch = {k: v.to(dev) for k, v in collate(examples).items()}
    batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])

    # the same optimizer for both: fused AdamW (our build_optimizer's choice, and the Hugging Face
    # Trainer's default "adamw_torch_fused")
    opt_ours = build_optimizer(ours, lr=1e-4, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True)

    def step_ours() -> float:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = ours(batch)["loss"]
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        return float(loss.detach())

    def step_hf() -> float:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], labels=batch["labels"]).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)
        return float(loss.detach())

    def timed(fn) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    ours.train(), hf.train()
    for _ in range(args.warmup):
        step_ours(), step_hf()
    t_ours, t_hf = [], []
    for _ in range(args.steps):
        t_ours.append(timed(step_ours))
        t_hf.append(timed(step_hf))
    tokens = B * T
    med_ours, med_hf = statistics.median(t_ours), statistics.median(t_hf)
    print(f"device {dev} threads {args.threads} bf16 {args.bf16}; batch {B} x {T} = {tokens} tokens, "
          f"{int((batch['labels'] != -100).sum())} masked; params ours {n_ours:,} hf {n_hf:,}")
    print(f"ours (MLM logits at masked positions only): {tokens / med_ours:10,.0f} tokens/s  (median {med_ours * 1e3:.1f} ms/step)")
    print(f"transformers BertForMaskedLM:               {tokens / med_hf:10,.0f} tokens/s  (median {med_hf * 1e3:.1f} ms/step)")
    print(f"ratio ours / transformers: {med_hf / med_ours:.2f}x")


if __name__ == "__main__":
    main()
