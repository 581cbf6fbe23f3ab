"""Does the demo's pretraining help? One pretraining variant, then fine-tuning of the small BERT from
random init and from the pretrained weights over several few-label samples; scored on 250 train-split
articles that no sample uses (never on the test split). Results: docs/demo_output.md.

    python docs/scripts/demo_experiment.py --name freq8k --score frequency --minf 2 --steps 3000

--mix: the classifier reads the mean of every hidden state (embedding output and each layer,
ELMo-style) instead of the last layer (a patch of TextClassifier._step, for this experiment only).
Runs go to /tmp/demo_exp/NAME (the demo's stage functions, with a fixed step count)."""
import argparse, dataclasses, json, random, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
import torch
ap = argparse.ArgumentParser()
ap.add_argument("--name", required=True); ap.add_argument("--score", default="likelihood")
ap.add_argument("--minf", type=int, default=200); ap.add_argument("--vocab", type=int, default=8000)
ap.add_argument("--steps", type=int, default=3000); ap.add_argument("--data", default="both")
ap.add_argument("--model", default="bert-tiny"); ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--seeds", type=int, default=3); ap.add_argument("--ft_lr", type=float, default=1e-3)
ap.add_argument("--pooling", default="mean"); ap.add_argument("--ftlen", type=int, default=128)
ap.add_argument("--skip_random", action="store_true"); ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--mix", action="store_true"); ap.add_argument("--head_lr", type=float, default=None)
a = ap.parse_args()
torch.set_num_threads(a.threads)
from transferlm.demo import stages
from transferlm.demo.data import DemoData, few_labels
if a.mix:
    from transferlm.pipelines import TextClassifier
    def _step(self, encoder, head, batch):
        out = encoder(batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch.get("token_type_ids"), output_hidden_states=True)
        h = torch.stack(out.hidden_states).mean(0)
        logits = head(h, batch["attention_mask"])
        res = {"logits": logits}
        if "labels" in batch:
            res["loss"] = head.loss(logits, batch["labels"])
        return res
    TextClassifier._step = _step
out = Path("/tmp/demo_exp") / a.name
cfg = stages.DemoConfig(out=str(out), vocab_size=a.vocab, vocab_min_frequency=a.minf, vocab_score=a.score,
                        model=a.model, lr=a.lr, progress=False,
                        ptb_fraction=1.0 if a.data == "both" else 1e-9)
stages.check_or_write_options(cfg)
(out / "models").mkdir(parents=True, exist_ok=True)
(out / "pretrain").mkdir(parents=True, exist_ok=True)
pf = out / "pretrain" / "plan.json"
if not pf.exists():
    pf.write_text(json.dumps({"steps": a.steps, "seconds_per_step": 0.0, "examples": 0}))
markers = stages.Markers(out)
data = DemoData.load(10, 0, ptb_fraction=cfg.ptb_fraction)
t = time.time()
v = stages.stage_vocabulary(cfg, data, markers)
p = stages.stage_pretrain(cfg, data, markers)
print("vocab", v, "\npretrain", p, f"{time.time()-t:.0f}s", flush=True)
used = set()
draws = []
for s in range(a.seeds):
    few, dev = few_labels(data.train, 10, seed=s)
    draws.append(few); used |= {t for t, _ in few + dev}
rest = [x for x in data.train if x[0] not in used]
evalset = random.Random(1).sample(rest, 250)
res = {"random": [], "pretrained": []}
for s, few in enumerate(draws):
    for m in ["random", "pretrained"]:
        if m == "random" and a.skip_random: continue
        c = dataclasses.replace(cfg, seed=s, pooling=a.pooling, finetune_max_length=a.ftlen)
        clf = stages._classifier(c, m, data.labels)
        clf.fit([x for x, _ in few], [y for _, y in few], epochs=1.0, lr=a.ft_lr, batch_size=16, min_steps=120,
                progress=False, seed=s, **({"head_lr": a.head_lr} if a.head_lr and m == "pretrained" else {}))
        acc = clf.evaluate([x for x, _ in evalset], [y for _, y in evalset])["accuracy"]
        res[m].append(acc)
        print(f"seed {s} {m}: {acc:.3f}", flush=True)
import statistics as st
for m, r in res.items():
    if r: print(f"RESULT {a.name} mix={a.mix} ft_lr={a.ft_lr} head_lr={a.head_lr} {m}: mean {st.mean(r):.3f} sd {st.pstdev(r):.3f} {r}")
