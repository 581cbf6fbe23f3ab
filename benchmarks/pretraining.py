"""Tokens/s of one MLM pretraining step: our BERT-mini vs transformers' BertForMaskedLM.

Same shape (BERT-mini: 4 layers, 256 wide, 4 heads; vocabulary 30,522), same batch (32 x 128
tokens, 15% masked by our collator's token masking), same threads, same optimizer (fused AdamW):
each step is forward + backward + optimizer step. The models alternate, step by step, so that
both see the same machine load. Prints tokens/s of each and the ratio ours / transformers, and
the model FLOP utilisation (MFU) of each against this machine's own fp32 (or bf16) matmul peak,
measured in the same run (the best of a few square GEMMs with the same threads).

FLOPs counted per step (matmuls only; forward 2mnk, backward twice that, so 6mnk in all):
encoder linears 6 * B*T * L * (4C^2 + 2CI), attention scores and mixing 12 * B * T^2 * C * L,
MLM transform 6 * N * C^2 and decoder 6 * N * C * V, with N the rows projected to the vocabulary:
the masked positions for ours, every position for transformers. Two MFU figures: "executed" counts
the FLOPs each implementation actually runs, "useful" counts the masked-only FLOPs for both (the
work the objective needs; transformers' other 85% of vocabulary rows are discarded by the loss).

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

from transferlm.objectives import builder  # noqa: E402
from transferlm.training.optim import build_optimizer  # noqa: E402


def step_flops(B: int, T: int, L: int, C: int, I: int, V: int, n_vocab_rows: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward) of a BERT MLM model."""
    linears = 2 * B * T * L * (4 * C * C + 2 * C * I)  # Q, K, V, O (4C^2) and the feed-forward (2CI)
    attention = 2 * 2 * B * T * T * C * L  # q k^T and probs v, all heads together
    head = 2 * n_vocab_rows * (C * C + C * V)  # MLM transform dense + decoder
    return 3.0 * (linears + attention + head)


def matmul_peak(dev: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n x n matmuls: this machine's own peak, same threads."""
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    torch.mm(a, b)  # warm-up (thread pool, caches)
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


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
    # the pretraining builder's MLM-only preset (what `transferlm pretrain --preset roberta --model
    # bert-mini` trains), with BERT's uncased special ids
    obj = builder.objective("roberta")
    specials = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    torch.manual_seed(0)
    ours = builder.objective_model(obj, builder.backbone(obj, V, specials, T, model="bert-mini")).to(dev)
    mc = ours.encoder.config
    hf_cfg = BertConfig(vocab_size=V, hidden_size=mc.hidden_size, num_hidden_layers=mc.num_layers,
                        num_attention_heads=mc.num_heads, intermediate_size=mc.intermediate_size,
                        max_position_embeddings=mc.max_position_embeddings, attn_implementation="sdpa")
    hf = BertForMaskedLM(hf_cfg).to(dev)
    n_ours = sum(p.numel() for p in {id(p): p for p in ours.parameters()}.values())
    n_hf = sum(p.numel() for p in hf.parameters())

    rng = np.random.default_rng(0)
    examples = [{"input_ids": np.concatenate([[101], rng.integers(1000, V, T - 2), [102]]),
                 "special_tokens_mask": np.r_[1, np.zeros(T - 2, dtype=np.int64), 1]} for _ in range(B)]
    collate = builder.collator(obj, specials, V)  # token masking, uniform random tokens (no corpus counts)
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

    # The encoders alone (forward + backward of the summed last hidden state, no head, no optimizer):
    # where the models differ only in how the Transformer is computed.
    def enc_ours() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            h = ours.encoder(batch["input_ids"], attention_mask=batch["attention_mask"],
                             token_type_ids=batch["token_type_ids"]).last_hidden_state
        h.float().sum().backward()

    def enc_hf() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            h = hf.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        token_type_ids=batch["token_type_ids"]).last_hidden_state
        h.float().sum().backward()

    ours.train(), hf.train()
    peak_before = matmul_peak(dev, torch.bfloat16 if args.bf16 else torch.float32)
    for _ in range(args.warmup):
        step_ours(), step_hf(), enc_ours(), enc_hf()
        opt_ours.zero_grad(set_to_none=True), opt_hf.zero_grad(set_to_none=True)
    t_ours, t_hf, e_ours, e_hf = [], [], [], []
    for _ in range(args.steps):  # all four interleaved, so that each sees the same machine load
        t_ours.append(timed(step_ours))
        t_hf.append(timed(step_hf))
        e_ours.append(timed(enc_ours))  # (its gradients are cleared by the next step's zero_grad)
        e_hf.append(timed(enc_hf))
        opt_ours.zero_grad(set_to_none=True), opt_hf.zero_grad(set_to_none=True)
    tokens = B * T
    med_ours, med_hf = statistics.median(t_ours), statistics.median(t_hf)
    print(f"device {dev} threads {args.threads} bf16 {args.bf16}; batch {B} x {T} = {tokens} tokens, "
          f"{int((batch['labels'] != -100).sum())} masked; params ours {n_ours:,} hf {n_hf:,}")
    print(f"ours (MLM logits at masked positions only): {tokens / med_ours:10,.0f} tokens/s  (median {med_ours * 1e3:.1f} ms/step)")
    print(f"transformers BertForMaskedLM:               {tokens / med_hf:10,.0f} tokens/s  (median {med_hf * 1e3:.1f} ms/step)")
    print(f"ratio ours / transformers: {med_hf / med_ours:.2f}x")
    em_ours, em_hf = statistics.median(e_ours), statistics.median(e_hf)
    print(f"encoder alone, forward + backward: ours {em_ours * 1e3:.1f} ms, transformers {em_hf * 1e3:.1f} ms "
          f"(ratio {em_hf / em_ours:.2f}x)")
    # the peak is measured before and after the steps; the higher one is the machine's ceiling
    peak = max(peak_before, matmul_peak(dev, torch.bfloat16 if args.bf16 else torch.float32))
    n_masked = int((batch["labels"] != -100).sum())
    shape = (B, T, mc.num_layers, mc.hidden_size, mc.intermediate_size, V)
    f_ours, f_hf = step_flops(*shape, n_masked), step_flops(*shape, B * T)
    print(f"{'bf16' if args.bf16 else 'fp32'} matmul peak here: {peak / 1e9:,.1f} GFLOP/s "
          f"(best 2048^3 GEMM, {args.threads} threads)")
    for name, f, med in (("ours", f_ours, med_ours), ("transformers", f_hf, med_hf)):
        print(f"MFU {name:13s} executed {f / 1e9:6.1f} GFLOP/step -> {f / med / peak:6.1%}; "
              f"useful {f_ours / 1e9:6.1f} GFLOP/step -> {f_ours / med / peak:6.1%}")


if __name__ == "__main__":
    main()
