"""Special-token templates: which special tokens wrap one sequence or a pair, with their type ids.

`Template` is Hugging Face's TemplateProcessing (``[CLS] $A [SEP] $B:1 [SEP]:1``): parsed from that
syntax, read from and written to a tokenizer.json "post_processor" (TemplateProcessing,
BertProcessing, RobertaProcessing, ByteLevel, a Sequence of those). `Piece` is one item of it.

What it does not do: apply a template (the `Tokenizer` base class in encoding.py does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Piece:
    """One item of a template: a sequence (`"A"` / `"B"`) or a special token, with its type id."""

    kind: Literal["sequence", "special"]
    value: str  # "A" / "B" for a sequence; the token string for a special token
    type_id: int = 0

    @classmethod
    def parse(cls, text: str) -> "Piece":
        # Hugging Face's syntax: "$A", "$B:1", "$" (= $A), "$1" (= $A with type id 1), "[SEP]:1".
        name, tid = text.rsplit(":", 1) if ":" in text[1:] else (text, "0")
        try:
            type_id = int(tid)
        except ValueError:
            raise ValueError(f"template piece {text!r}: the part after ':' must be an integer type id")
        if name.startswith("$"):
            rest = name[1:]
            if rest in ("", "A", "a"):
                return cls("sequence", "A", type_id)
            if rest in ("B", "b"):
                return cls("sequence", "B", type_id)
            if rest.isdigit():
                return cls("sequence", "A", int(rest))
            raise ValueError(f"template piece {text!r}: expected $A, $B, $ or $<type id>")
        if not name:
            raise ValueError(f"template piece {text!r}: empty special token")
        return cls("special", name, type_id)

    def __str__(self) -> str:
        return f"{'$' + self.value if self.kind == 'sequence' else self.value}:{self.type_id}"


@dataclass(frozen=True)
class Template:
    """How special tokens wrap one sequence and a pair, like ``tokenizers``' TemplateProcessing.

    BERT: ``Template.parse("[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")``;
    GPT-2 (no special tokens): ``Template.parse("$A", "$A $B:1")``.
    """

    single: tuple[Piece, ...]
    pair: tuple[Piece, ...]

    def __post_init__(self) -> None:
        for name, pieces, want in (("single", self.single, ["A"]), ("pair", self.pair, ["A", "B"])):
            seqs = [p.value for p in pieces if p.kind == "sequence"]
            if seqs != want:
                raise ValueError(f"template {name!r} must contain the sequence(s) {want} once each, in "
                                 f"that order; got {' '.join(map(str, pieces))!r}")

    @classmethod
    def parse(cls, single: str, pair: str) -> "Template":
        return cls(tuple(Piece.parse(t) for t in single.split()), tuple(Piece.parse(t) for t in pair.split()))

    @classmethod
    def none(cls) -> "Template":
        """No special tokens: ``$A`` / ``$A $B:1``."""
        return cls.parse("$A", "$A $B:1")

    @classmethod
    def default(cls) -> "Template":
        """The template of models without special tokens around their input (GPT-2): `none()`."""
        return cls.none()

    @classmethod
    def bert(cls, cls_token: str = "[CLS]", sep_token: str = "[SEP]") -> "Template":
        """BERT (Devlin et al. 2019, sec. 3): ``[CLS] A [SEP] B [SEP]``, segment B gets type id 1."""
        return cls.parse(f"{cls_token} $A {sep_token}", f"{cls_token} $A {sep_token} $B:1 {sep_token}:1")

    def pieces(self, is_pair: bool) -> tuple[Piece, ...]:
        return self.pair if is_pair else self.single

    def special_tokens(self) -> list[str]:
        """The special tokens the template uses, each once, in order of first use."""
        seen: dict[str, None] = {}
        for p in self.single + self.pair:
            if p.kind == "special":
                seen.setdefault(p.value, None)
        return list(seen)

    def num_special_tokens(self, is_pair: bool) -> int:
        return sum(p.kind == "special" for p in self.pieces(is_pair))

    # -- Hugging Face tokenizer.json "post_processor" ----------------------------------------
    def to_hf_json(self, token_to_id) -> dict:
        """The TemplateProcessing object of a tokenizer.json; `token_to_id` looks up ids."""

        def piece(p: Piece) -> dict:
            if p.kind == "sequence":
                return {"Sequence": {"id": p.value, "type_id": p.type_id}}
            return {"SpecialToken": {"id": p.value, "type_id": p.type_id}}

        specials = {}
        for tok in self.special_tokens():
            i = token_to_id(tok)
            if i is None:
                raise ValueError(f"template special token {tok!r} is not in the vocabulary")
            specials[tok] = {"id": tok, "ids": [i], "tokens": [tok]}
        return {"type": "TemplateProcessing", "single": [piece(p) for p in self.single],
                "pair": [piece(p) for p in self.pair], "special_tokens": specials}

    @classmethod
    def from_hf_json(cls, obj: dict | None, where: str = "tokenizer.json") -> "Template":
        """Read a tokenizer.json "post_processor" (TemplateProcessing, BertProcessing,
        RobertaProcessing, ByteLevel, a Sequence of those, or null)."""
        if obj is None:
            return cls.none()
        kind = obj.get("type")
        if kind == "TemplateProcessing":
            def pieces(items: list, key: str) -> tuple[Piece, ...]:
                out = []
                for it in items:
                    if "Sequence" in it:
                        out.append(Piece("sequence", it["Sequence"]["id"], int(it["Sequence"]["type_id"])))
                    elif "SpecialToken" in it:
                        st = it["SpecialToken"]
                        entry = obj.get("special_tokens", {}).get(st["id"])
                        toks = entry["tokens"] if entry else [st["id"]]
                        out += [Piece("special", t, int(st["type_id"])) for t in toks]
                    else:
                        raise ValueError(f"{where}: post_processor.{key}: unknown template item {it!r}")
                return tuple(out)

            return cls(pieces(obj["single"], "single"), pieces(obj["pair"], "pair"))
        if kind == "BertProcessing":
            return cls.bert(obj["cls"][0], obj["sep"][0])
        if kind == "RobertaProcessing":
            # tokenizers' RobertaProcessing: <s> A </s> </s> B </s>, every type id 0.
            c, s = obj["cls"][0], obj["sep"][0]
            return cls.parse(f"{c} $A {s}", f"{c} $A {s} {s} $B {s}")
        if kind == "ByteLevel":
            return cls.none()
        if kind == "Sequence":
            found = [cls.from_hf_json(p, where) for p in obj.get("processors", [])]
            real = [t for t in found if t != cls.none()]
            if len(real) > 1:
                raise ValueError(f"{where}: post_processor Sequence with more than one template is not supported")
            return real[0] if real else cls.none()
        raise ValueError(f"{where}: post_processor type {kind!r} is not supported "
                         "(expected TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel)")


__all__ = ["Piece", "Template"]
