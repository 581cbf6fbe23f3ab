"""models/registry.py: a family is described once (families/<name>.py) and the generic checkpoint
path serves every registered family, a toy one registered here included; models/ has no import circle."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file
from torch import nn

from transferlm.models import Decoder, Encoder, ModelConfig, checkpoint, registry
from transferlm.models.checkpoint import CheckpointError, Layout, Rule, RuleList
from transferlm.models.config import PRESETS

MODELS_DIR = Path(checkpoint.__file__).parent

# The smallest shape of each family's presets (layers 1, width 32); families whose models take no
# ModelConfig preset are tested in their own test files.
_SHRINK = dict(vocab_size=40, num_layers=1, hidden_size=32, num_heads=4, intermediate_size=48,
               max_position_embeddings=16)


def _tiny(model_type: str) -> ModelConfig:
    base = next(c for c in PRESETS.values() if c.model_type == model_type)
    kv = dict(num_kv_heads=2) if base.num_kv_heads else {}
    return base.replace(**_SHRINK, **kv)


_CASES = [(f.model_type, a.name) for f in registry.families() if any(c.model_type == f.model_type for c in
                                                                      PRESETS.values())
          for a in f.architectures]


def test_the_shipped_families_are_registered_with_their_architectures():
    assert {"bert", "gpt2", "llama"} <= set(registry.names())
    assert {m for m, _ in _CASES} >= {"bert", "gpt2", "llama"}
    default = {f.model_type: f.architectures[0].name for f in registry.families()}
    assert (default["bert"], default["gpt2"], default["llama"]) == ("BertModel", "GPT2LMHeadModel",
                                                                    "LlamaForCausalLM")
    # every architecture name is a real transformers class
    for f in registry.families():
        for a in f.architectures:
            if f.model_type in ("bert", "gpt2", "llama"):
                assert hasattr(transformers, a.name), a.name


@pytest.mark.parametrize("model_type,arch_name", _CASES)
def test_every_registered_architecture_round_trips_config_and_weights(model_type, arch_name, tmp_path):
    """Save through the family's Architecture, load back with no class named (config.json's
    architecture picks it): the same class, config and every weight; transformers loads the
    architectures that hold no task head with no missing or unexpected key and the same outputs."""
    fam = registry.family(model_type)
    arch = fam.architecture(arch_name)
    config = _tiny(model_type).replace(**arch.config)
    if any(a.pooler for a in fam.architectures_for(arch.model)):
        config = config.replace(add_pooler=arch.pooler)
    torch.manual_seed(0)
    model = arch.model(config).eval()
    checkpoint.save_model(model, tmp_path, architectures=[arch_name])
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["architectures"] == [arch_name] and written["model_type"] == model_type
    back = checkpoint.load_model(tmp_path)
    assert type(back) is arch.model
    def shape(c):  # head_dim None means hidden_size // num_heads; Llama's config.json spells it out
        return dataclasses.asdict(c.replace(head_dim=c.head_size))

    assert shape(back.config) == shape(config)  # config.json + what the weights say
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert arch.prefix + fam.probe in names  # the body under its prefix
    if arch.heads:
        return  # the head's tensors are the caller's (extra_tensors); transformers would miss them
    ref, info = getattr(transformers, arch_name).from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids = torch.randint(0, 40, (2, 7))
    with torch.no_grad():
        ours, theirs = model(ids), ref.eval()(ids)
    if arch.lm_head:
        torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(ours.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)


# ---- a toy family, registered here: one class, one key map, one config mapping, no change elsewhere --------
class Toy(nn.Module):
    """Embeddings and an output projection: logits = E[ids] W^T."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.emb(ids))  # (B, T, V)


def _toy_from_hf(d, source):
    return ModelConfig(model_type="toy", vocab_size=d["n_vocab"], hidden_size=d["width"], num_heads=1,
                       intermediate_size=1, type_vocab_size=0)


def _toy_to_hf(c):
    return {"n_vocab": c.vocab_size, "width": c.hidden_size}


def _toy_key_map(config, layout: Layout) -> list[Rule]:
    r = RuleList(layout)
    r.add("emb.weight", f"{layout.prefix}wte.weight")
    r.add("proj.weight", f"{layout.prefix}out.weight", transpose=True)  # stored (in, out), as a Conv1D
    return r


@pytest.fixture()
def toy_family():
    fam = registry.register(registry.Family(
        model_type="toy", title="Toy", architectures=(registry.Architecture("ToyLMHeadModel", Toy, "toy."),),
        from_hf=_toy_from_hf, to_hf=_toy_to_hf, key_map=_toy_key_map, probe="wte.weight"))
    try:
        yield fam
    finally:
        registry.unregister("toy")


def test_a_toy_family_loads_and_saves_through_the_generic_path(toy_family, tmp_path):
    torch.manual_seed(1)
    model = Toy(ModelConfig(model_type="toy", vocab_size=13, hidden_size=6, num_heads=1, intermediate_size=1,
                            type_vocab_size=0)).eval()
    checkpoint.save_model(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "architectures": ["ToyLMHeadModel"], "model_type": "toy", "n_vocab": 13, "width": 6}
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert set(stored) == {"toy.wte.weight", "toy.out.weight"}
    assert torch.equal(stored["toy.out.weight"], model.proj.weight.detach().t())  # the key map's transpose
    back = checkpoint.load_model(tmp_path)
    assert type(back) is Toy and back.config.vocab_size == 13 and back.config.hidden_size == 6
    ids = torch.tensor([[1, 5, 12]])
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=0, rtol=0)
    # a body saved without the prefix is found by the probe too
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "config.json").write_text((tmp_path / "config.json").read_text())
    from safetensors.torch import save_file
    save_file({k[len("toy."):]: v for k, v in stored.items()}, str(folder / "model.safetensors"))
    assert torch.equal(checkpoint.load_model(folder).emb.weight, model.emb.weight)
    # the family's own errors come from the generic path, naming file and tensor
    save_file({"toy.wte.weight": stored["toy.wte.weight"]}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing tensor 'toy\.out\.weight'"):
        checkpoint.load_model(folder)
    with pytest.raises(CheckpointError, match="Encoder loads BERT checkpoints, this is model_type 'toy'"):
        Encoder.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="unknown architecture 'BertModel' for a toy Toy"):
        checkpoint.save_model(model, tmp_path / "x", architectures=["BertModel"])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(dataclasses.replace(toy_family, title="Toy 2"))


def test_an_unregistered_family_is_refused_by_name(tmp_path, toy_family):
    model = Toy(ModelConfig(model_type="toy", vocab_size=5, hidden_size=2, num_heads=1, intermediate_size=1))
    checkpoint.save_model(model, tmp_path)
    registry.unregister("toy")
    with pytest.raises(ValueError, match=r"config\.json: unsupported model_type 'toy'; expected one of \('bert'"):
        checkpoint.load_model(tmp_path)
    with pytest.raises(ValueError, match="unsupported model_type 'toy'"):
        Decoder(ModelConfig(model_type="toy"))


# ---- no import circle inside models/ ---------------------------------------------------------------------
def _module(path: Path) -> str:
    rel = path.relative_to(MODELS_DIR).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported models/ module, at module level?) for each relative import of `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module(path).split(".") if _module(path) else []
    pkg = here if path.name == "__init__.py" else here[:-1]
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            if node.level - 1 > len(pkg):
                continue  # outside models/
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [mod] if node.module else [".".join(base + [a.name]) for a in node.names]
            for t in targets:
                if (MODELS_DIR / (t.replace(".", "/") + ".py")).exists() or (MODELS_DIR / t.replace(".", "/")).is_dir():
                    out.append((t, id(node) in top))
    return out


def test_models_have_no_import_circle_and_no_deferred_imports_of_each_other():
    files = [p for p in MODELS_DIR.rglob("*.py")]
    graph = {}
    for f in files:
        imps = _imports(f)
        deferred = [m for m, top in imps if not top]
        assert not deferred, f"{f.name} imports {deferred} inside a function"
        graph[_module(f)] = {m for m, _ in imps if m}
    # the generic machinery names no model file and no family
    for generic in ("checkpoint", "config", "registry", "layers"):
        assert not graph[generic] & {"encoder", "decoder", "seq2seq", "families", "families.bert"}, graph[generic]
    # acyclic (the package's own __init__ aside, which imports everything)
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError(f"import circle: {' -> '.join(stack + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in graph.get(m, ()):
            if n:
                visit(n, stack + [m])
        state[m] = 2

    for m in graph:
        if m:
            visit(m, [])
