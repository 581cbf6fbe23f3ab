"""Prompting: verbalizer scores from one shared-prefix pass == transformers' one full pass per label
(tiny random Llama / GPT-2 folders and the real SmolLM2 GGUF), calibration on hand-checkable numbers,
demonstration selection, chat templates == transformers' apply_chat_template, bad input, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from transferlm.cli import main
from transferlm.data import assets
from transferlm.models.decoder import Decoder
from transferlm.prompting import calibration
from transferlm.prompting.fewshot import PromptClassifier, PromptOptions, PromptTooLong
from transferlm.prompting.scoring import prefill, score_labels, score_labels_full
from transferlm.prompting.selection import NearestSelector, select_balanced, select_random
from transferlm.prompting.templates import ChatTemplate, PromptTemplate
from transferlm.tokenization.bpe import ByteLevelBPETokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = [
    "The striker scored twice as the team won the cup final.",
    "Shares fell after the bank reported lower profits and sales.",
    "The minister said the election would be held in May.",
    "The new phone has a faster chip and a better camera.",
    "The film won three awards at the festival last night.",
] * 4

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _randomise(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A Llama HF folder (random weights) with a byte-level BPE tokenizer trained here and a ChatML template."""
    d = tmp_path_factory.mktemp("tiny")
    text = d / "corpus.txt"
    text.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    tok = ByteLevelBPETokenizer.train([text], vocab_size=330, progress=False,
                                      special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    torch.manual_seed(0)
    ref = _randomise(LlamaForCausalLM(LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False, eos_token_id=0, bos_token_id=0)))
    ref.save_pretrained(d)
    tok.save_pretrained(d)
    cfg = d / "tokenizer_config.json"
    obj = json.loads(cfg.read_text()) if cfg.exists() else {}
    obj["chat_template"] = CHATML
    cfg.write_text(json.dumps(obj))
    return d, ref, tok


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    d, ref, tok = tiny_folder
    return Decoder.from_pretrained(d).eval(), ref, tok


# ---- scoring ------------------------------------------------------------------------------------
LABELS_MIXED = [[7], [11, 12], [40, 41, 42, 43], [5, 6, 7]]  # 1, 2, 4 and 3 tokens


@pytest.mark.parametrize("normalize", [False, True])
def test_shared_prefix_scores_equal_transformers_one_pass_per_label(tiny, normalize):
    ours, ref, _ = tiny
    prompt = torch.randint(0, 300, (17,), generator=torch.Generator().manual_seed(1)).tolist()
    got = score_labels(ours, prompt, LABELS_MIXED, length_normalize=normalize)
    want = score_labels_full(ref, prompt, LABELS_MIXED, length_normalize=normalize)  # transformers, one pass each
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # and by hand for one label: log P(40|p) + log P(41|p,40) + ... from transformers' logits
    with torch.no_grad():
        lp = ref(torch.tensor([prompt + [40, 41, 42, 43]])).logits[0].log_softmax(-1)
    hand = sum(float(lp[len(prompt) - 1 + j, t]) for j, t in enumerate([40, 41, 42, 43]))
    assert math.isclose(float(got[2]), hand / (4 if normalize else 1), abs_tol=1e-4)


def test_scores_continue_a_cached_prefix_and_leave_it_untouched(tiny):
    ours, ref, _ = tiny
    shared = torch.randint(0, 300, (20,), generator=torch.Generator().manual_seed(2)).tolist()
    own = [3, 99, 140]
    cache = prefill(ours, shared)
    for _ in range(2):  # the shared cache serves several examples
        got = score_labels(ours, own, LABELS_MIXED, past=cache)
        assert cache.seq_length() == 20
        torch.testing.assert_close(got, score_labels_full(ref, shared + own, LABELS_MIXED), atol=1e-4, rtol=0)


def test_gpt2_folder_scores_equal_transformers(tmp_path):
    torch.manual_seed(3)
    ref = _randomise(GPT2LMHeadModel(GPT2Config(vocab_size=101, n_positions=64, n_embd=32, n_layer=2, n_head=4)))
    ref.save_pretrained(tmp_path)
    ours = Decoder.from_pretrained(tmp_path).eval()
    labels = [[1, 2], [3], [4, 5, 6]]
    torch.testing.assert_close(score_labels(ours, [9, 8, 7, 6, 5], labels), score_labels_full(ref, [9, 8, 7, 6, 5], labels),
                               atol=1e-4, rtol=0)


def test_one_pass_over_the_prompt_and_one_batched_pass_for_long_labels(tiny):
    ours = tiny[0]
    seen = []
    h = ours.register_forward_pre_hook(lambda m, a, kw: seen.append(tuple((a[0] if a else kw["input_ids"]).shape)),
                                       with_kwargs=True)
    try:
        score_labels(ours, list(range(30)), LABELS_MIXED)
        assert seen == [(1, 30), (3, 3)]  # the prompt once; the 3 multi-token labels together, padded to 3
        seen.clear()
        score_labels(ours, list(range(30)), [[1], [2], [3]])
        assert seen == [(1, 30)]  # one-token labels: the prompt pass is all
    finally:
        h.remove()


@pytest.fixture(scope="module")
def smollm2():
    g = assets.path("smollm2")
    ours = Decoder.from_pretrained(g).eval()
    ref = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    return ours, ref, ByteLevelBPETokenizer.from_gguf(g)


def test_smollm2_verbalizer_scores_equal_transformers(smollm2):
    ours, ref, tok = smollm2
    clf = PromptClassifier(ours, tok, ["business", "sport", "tech"], verbalizers={"tech": "technology news"},
                           options=PromptOptions(shots=1))
    clf.fit([(CORPUS[0], "sport"), (CORPUS[1], "business"), (CORPUS[3], "tech")])
    text = "Shares in the carmaker rose after strong sales in China."
    rec = clf.classify([text])[0]
    prompt = clf.render(clf.demonstrations(), text)
    assert tok.decode(prompt).endswith("Article: " + text + "\nTopic:")
    with torch.no_grad():
        want = score_labels_full(ref, prompt, clf.label_ids)
    assert [len(c) for c in clf.label_ids] == [1, 1, 2]  # " business", " sport", " technology news"
    torch.testing.assert_close(torch.tensor(list(rec["scores"].values())), want, atol=2e-3, rtol=0)
    assert rec["label"] == "business"


# ---- chat templates -------------------------------------------------------------------------------
def test_gguf_chat_template_renders_like_transformers():
    g = assets.path("smollm2")
    hf_tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    chat = ChatTemplate.from_model(assets.path("smollm2"))
    convs = [
        [{"role": "user", "content": "What is BPE?"}],
        [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sport or tech?"},
         {"role": "assistant", "content": "sport"}, {"role": "user", "content": "And this one?"}],
    ]
    for msgs in convs:
        for gen in (False, True):
            assert chat.render(msgs, add_generation_prompt=gen) == hf_tok.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=gen)


def test_folder_chat_template_and_chat_prompt_split(tiny_folder):
    d, _, _ = tiny_folder
    chat = ChatTemplate.from_model(d)
    shared, part = chat.split_prompt("Pick a topic.", [("Goal!", "sport")], "Shares fell.")
    assert shared == "<|im_start|>system\nPick a topic.<|im_end|>\n<|im_start|>user\nGoal!<|im_end|>\n" \
                     "<|im_start|>assistant\nsport<|im_end|>\n"
    assert part == "<|im_start|>user\nShares fell.<|im_end|>\n<|im_start|>assistant\n"


def test_chat_classifier_scores_label_and_end_of_turn(tiny):
    ours, ref, tok = tiny
    chat = ChatTemplate(CHATML)
    clf = PromptClassifier(ours, tok, ["sport", "business"], chat_template=chat, options=PromptOptions(shots=1, chat=True))
    clf.fit([(CORPUS[0], "sport"), (CORPUS[1], "business")])
    end = tok.token_to_id("<|im_end|>")
    assert all(c[-1] == end for c in clf.label_ids)
    rec = clf.classify([CORPUS[2]])[0]
    prompt = clf.render(clf.demonstrations(), CORPUS[2])
    torch.testing.assert_close(torch.tensor(list(rec["scores"].values())), score_labels_full(ref, prompt, clf.label_ids),
                               atol=1e-4, rtol=0)


# ---- calibration: hand-checkable numbers ---------------------------------------------------------
def test_contextual_calibration_by_hand():
    # content-free inputs give normalised probabilities [.5,.25,.25] and [.7,.2,.1]: p_cf = [.6,.225,.175]
    cf = [torch.tensor([0.5, 0.25, 0.25]).log() + 3.0, torch.tensor([0.7, 0.2, 0.1]).log() - 1.0]
    p_cf = calibration.content_free_probs(cf)
    torch.testing.assert_close(p_cf, torch.tensor([0.6, 0.225, 0.175]))
    # a test input with p = [.6, .3, .1]: W p = [1, 4/3, 4/7], so the second label wins after calibration
    q = calibration.contextual_calibrate(torch.tensor([0.6, 0.3, 0.1]).log(), p_cf)
    e = torch.tensor([1.0, 4 / 3, 4 / 7]).exp()
    torch.testing.assert_close(q, e / e.sum())
    assert int(q.argmax()) == 1


def test_pmi_by_hand():
    # log P(y|x) = log[.5, .3, .2], log P(y|domain) = log[.6, .1, .3]: PMI = log[5/6, 3, 2/3]
    got = calibration.pmi(torch.tensor([0.5, 0.3, 0.2]).log(), torch.tensor([0.6, 0.1, 0.3]).log())
    torch.testing.assert_close(got, torch.tensor([5 / 6, 3.0, 2 / 3]).log())
    assert int(got.argmax()) == 1


def test_classifier_calibration_uses_content_free_prompts(tiny):
    ours, ref, tok = tiny
    pool = [(CORPUS[i], lab) for i, lab in enumerate(["sport", "business", "politics", "tech", "film"])]
    labels = ["business", "film", "politics", "sport", "tech"]
    test = [CORPUS[4], CORPUS[1]]
    cc = PromptClassifier(ours, tok, labels, options=PromptOptions(shots=1, calibrate="contextual")).fit(pool)
    demos = cc.demonstrations()
    # the content-free prompts, each scored by transformers one pass per label
    cf = [score_labels_full(ref, cc.render(demos, t), cc.label_ids) for t in ("N/A", "[MASK]", "")]
    p_cf = torch.stack([s.softmax(-1) for s in cf]).mean(0)
    for rec, text in zip(cc.classify(test), test):
        p = score_labels_full(ref, cc.render(demos, text), cc.label_ids).softmax(-1)
        want = (p / p_cf).softmax(-1)
        torch.testing.assert_close(torch.tensor(list(rec["probs"].values())), want, atol=1e-4, rtol=0)
        assert rec["label"] == labels[int(want.argmax())]
    pmi = PromptClassifier(ours, tok, labels, options=PromptOptions(shots=1, calibrate="pmi")).fit(pool)
    shared, _ = pmi.prompt_parts(demos, "")
    domain = score_labels_full(ref, tok.encode(shared).ids + tok.encode("Topic:").ids, pmi.label_ids)
    rec = pmi.classify([test[0]])[0]
    raw = torch.tensor(list(rec["scores"].values()))
    assert rec["label"] == labels[int((raw - domain).argmax())]


# ---- selection ------------------------------------------------------------------------------------
POOL = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("b2", "b"), ("c2", "c"), ("a3", "a")]


def test_balanced_and_random_selection():
    got = select_balanced(POOL, 2, ["a", "b", "c"], seed=0)
    assert sorted(got) == [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c"), ("c2", "c")]
    assert got == select_balanced(POOL, 2, ["a", "b", "c"], seed=0)  # seeded
    assert select_balanced(POOL, 2, ["a", "b", "c"], seed=1) != got  # a different seed, another order
    r = select_random(POOL, 3, seed=5)
    assert len(set(r)) == 3 and set(r) <= set(POOL) and r == select_random(POOL, 3, seed=5)
    with pytest.raises(ValueError, match="label 'b' has 2 training examples, fewer than the 3"):
        select_balanced(POOL, 3, ["a", "b", "c"])


def test_nearest_neighbours_in_minilm_space():
    pool = [("The striker scored a late goal in the derby.", "sport"),
            ("The central bank raised interest rates again.", "business"),
            ("The goalkeeper saved a penalty in the final minute.", "sport"),
            ("The new laptop ships with a faster processor.", "tech")]
    sel = NearestSelector(pool, "minilm")
    q = sel.embed(["Stocks and bond yields rose after the rate decision."])[0]
    got = sel.select(q, 2)
    assert got[-1] == pool[1]  # the nearest sits last, next to the test input
    sims = sel.vectors @ q
    assert sims[pool.index(got[0])] <= sims[1]
    assert abs(float((sel.vectors ** 2).sum(1).mean()) - 1.0) < 1e-5  # unit vectors: dot = cosine


def test_nearest_classifier_uses_each_examples_neighbours(tiny):
    ours, ref, tok = tiny
    pool = [(CORPUS[i], lab) for i, lab in enumerate(["sport", "business", "politics", "tech", "film"])]
    clf = PromptClassifier(ours, tok, ["business", "film", "politics", "sport", "tech"],
                           options=PromptOptions(shots=1, select="nearest", calibrate="contextual")).fit(pool)
    text = "The team scored a late goal to win the match."
    rec = clf.classify([text])[0]
    demos = clf.selector.select(clf.selector.embed([text])[0], 5)
    assert demos[-1][1] == "sport" and rec["demonstrations"] == 5
    p = score_labels_full(ref, clf.render(demos, text), clf.label_ids).softmax(-1)
    cf = torch.stack([score_labels_full(ref, clf.render(demos, t), clf.label_ids).softmax(-1)
                      for t in ("N/A", "[MASK]", "")]).mean(0)
    torch.testing.assert_close(torch.tensor(list(rec["probs"].values())), (p / cf).softmax(-1), atol=1e-4, rtol=0)
    # every reading of the same pass: the raw scores, p_cf and the PMI domain scores of the text's own prompt
    (raw, p_cf, domain), = clf.scores_and_constants([text])
    torch.testing.assert_close(raw, torch.tensor(list(rec["scores"].values())), atol=1e-6, rtol=0)
    torch.testing.assert_close(p_cf, cf, atol=1e-4, rtol=0)
    shared, _ = clf.prompt_parts(demos, "")
    want = score_labels_full(ref, tok.encode(shared).ids + tok.encode("Topic:").ids, clf.label_ids)
    torch.testing.assert_close(domain, want, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="call fit"):
        PromptClassifier(ours, tok, ["business", "sport"]).classify([text])


# ---- templates and bad input ----------------------------------------------------------------------
def test_plain_template_text():
    t = PromptTemplate()
    assert t.shared_part([("Goal!", "sport")], ["sport", "tech"]) == \
        "Classify each article as one of: sport, tech.\n\nArticle: Goal!\nTopic: sport\n\n"
    assert t.query("New chip.") == "Article: New chip.\nTopic:"


def test_empty_verbalizer_is_an_error(tiny):
    ours, _, tok = tiny
    with pytest.raises(ValueError, match="label 'tech' \\(verbalizer ''\\): the verbalizer is empty after tokenization"):
        PromptClassifier(ours, tok, ["sport", "tech"], verbalizers={"tech": ""})
    with pytest.raises(ValueError, match="not in the label set"):
        PromptClassifier(ours, tok, ["sport"], verbalizers={"tehc": "tech"})


def test_prompt_longer_than_context_says_what_is_clipped(tiny):
    ours, _, tok = tiny  # context: 512 positions
    long = " ".join(CORPUS * 2)
    clf = PromptClassifier(ours, tok, ["sport", "business"], options=PromptOptions(shots=0)).fit([(CORPUS[0], "sport")])
    with pytest.raises(PromptTooLong, match=r"test.csv:7: the prompt is \d+ tokens .* more than the model's context of 512"):
        clf.classify([long], where=["test.csv:7"])
    clip = PromptClassifier(ours, tok, ["sport", "business"], options=PromptOptions(overflow="clip")).fit([])
    rec = clip.classify([long])[0]
    assert rec["clipped_tokens"] > 0
    kept = tok.decode(tok.encode(long).ids[:len(tok.encode(long).ids) - rec["clipped_tokens"]])
    assert len(clip.render([], kept)) + 1 <= 512 < len(clip.render([], long)) + 1
    short = PromptClassifier(ours, tok, ["sport", "business"], options=PromptOptions(max_text_tokens=10)).fit([])
    assert short.classify([long])[0]["clipped_tokens"] == 0 and short.clipped_texts == 1


# ---- the command line ---------------------------------------------------------------------------
def _csv(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.mark.parametrize("flags", [["--calibrate", "contextual"],
                                   ["--select", "random", "--calibrate", "pmi", "--length-normalize"],
                                   ["--select", "nearest", "--chat", "--max-text-tokens", "8"]])
def test_cli_classify(tiny_folder, tmp_path, capsys, flags):
    d, ref, tok = tiny_folder
    labels = ["sport", "business", "politics", "tech", "film"]
    train = _csv(tmp_path / "train.csv", [(CORPUS[i], labels[i % 5]) for i in range(10)])
    test = _csv(tmp_path / "test.csv", [(CORPUS[i], labels[i % 5]) for i in range(10, 16)])
    out = tmp_path / "pred.jsonl"
    rc = main(["prompt", "classify", "--model", str(d), "--train", str(train), "--test", str(test), "--shots", "1",
               "--out", str(out), "--no-progress"] + flags)
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 6 and recs[0]["line"] == 2 and recs[0]["gold"] == "sport"
    from sklearn.metrics import accuracy_score, f1_score

    gold, pred = [r["gold"] for r in recs], [r["label"] for r in recs]
    assert last["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert last["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro", labels=sorted(labels)))
    assert sum(last["predicted_counts"].values()) == 6
    assert all(r["demonstrations"] == 5 for r in recs)
    assert last["clipped_texts"] == (16 if "--max-text-tokens" in flags else 0)  # 10 training + 6 test texts


def test_cli_unknown_test_label_names_file_and_line(tiny_folder, tmp_path, capsys):
    d = tiny_folder[0]
    train = _csv(tmp_path / "train.csv", [(CORPUS[0], "sport"), (CORPUS[1], "business")])
    test = _csv(tmp_path / "test.csv", [(CORPUS[2], "sport"), (CORPUS[3], "weather")])
    rc = main(["prompt", "classify", "--model", str(d), "--train", str(train), "--test", str(test), "--no-progress"])
    assert rc == 2
    assert f"{test}:3: unknown label 'weather'" in capsys.readouterr().err


def test_cli_generate_streams_what_generate_prints(tiny_folder, capsys):
    d = str(tiny_folder[0])
    for extra in ([], ["--temperature", "0.8", "--top-k", "20", "--seed", "3"]):
        assert main(["generate", "--model", d, "--prompt", "The team", "--max-new-tokens", "12"] + extra) == 0
        want = capsys.readouterr().out
        assert main(["prompt", "generate", "--model", d, "--prompt", "The team", "--max-new-tokens", "12"] + extra) == 0
        assert capsys.readouterr().out == want


def test_streamed_tokens_arrive_one_by_one(tiny):
    ours, _, tok = tiny
    from transferlm.cli.prompt import TokenPrinter

    class Sink(list):
        def write(self, s):
            self.append(s)

        def flush(self):
            pass

    sink = Sink()
    printer = TokenPrinter(tok, stops=set(), out=sink)
    ids = torch.tensor([tok.encode("The team").ids])
    out = ours.generate(ids, max_new_tokens=8, on_token=printer)
    assert "".join(sink) == tok.decode(out[0, ids.shape[1]:].tolist())
    assert len([s for s in sink if s]) >= 2  # text came out as it was generated, not once at the end
