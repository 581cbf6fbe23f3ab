"""The all-data BBC run of docs/benchmarks.md (session 4): our CLI defaults on the whole 1,780-article pool (no dev set, as
benchmarks/finetune.py's "all" row), accuracy on the 445 held-out articles."""
import sys, time, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
torch.set_num_threads(1)
import finetune as fb
t = time.perf_counter()
pool, test = fb.bbc_split()
acc, info = fb.finetune_cli(pool, [], test, 256, False)
print(f"BBC all ({len(pool)} articles): ours {acc:.4f}, {info['steps']} updates, {time.perf_counter()-t:.0f} s", flush=True)
