"""Prompt templates: k demonstrations + the test input, as plain text or through a chat template.

Plain layout (the default), one block per demonstration, the test block last without its answer:

    Classify each article as one of: business, entertainment, politics, sport, tech.   <- instruction

    Article: <demonstration text>
    Topic: <its label>

    Article: <test text>
    Topic:                                                                              <- answer cue

A label is scored as the continuation `label_prefix + verbalizer` (" business") of the answer cue.

Chat layout (`ChatTemplate`): the instruction is a system turn, each demonstration a user turn
(the text) followed by an assistant turn (its label), the test text a last user turn, rendered by
the model's own chat template (GGUF `tokenizer.chat_template`, or `chat_template` in a Hugging Face
folder's tokenizer_config.json) with add_generation_prompt; the label is the assistant's reply.
Templates are Jinja; they are rendered with jinja2's sandbox, as transformers' apply_chat_template
does (tests compare the two on SmolLM2's template).

Every prompt is split in two: the part shared by all test examples (instruction + demonstrations,
when the demonstrations are fixed) and the example's own part, so the shared part is run once
(scoring.py). What this file does not do: choose demonstrations (selection.py) or tokenise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Demo = tuple[str, str]  # (text, label)


@dataclass
class PromptTemplate:
    instruction: str = "Classify each article as one of: {labels}."  # {labels}: the verbalizers, comma-separated
    input_prefix: str = "Article: "
    answer_cue: str = "Topic:"  # Holtzman et al. 2021's domain premise for PMI is this cue alone
    label_prefix: str = " "  # the label follows the cue after a space: " business" is one BPE token
    separator: str = "\n\n"  # between blocks

    def instruction_text(self, verbalizers: Sequence[str]) -> str:
        return self.instruction.format(labels=", ".join(verbalizers)) if self.instruction else ""

    def query(self, text: str) -> str:
        return f"{self.input_prefix}{text}\n{self.answer_cue}"

    def demo(self, text: str, verbalizer: str) -> str:
        return f"{self.query(text)}{self.label_prefix}{verbalizer}{self.separator}"

    def shared_part(self, demos: Sequence[tuple[str, str]], verbalizers: Sequence[str]) -> str:
        """Instruction + demonstrations (text, verbalizer), ready for the test block."""
        head = self.instruction_text(verbalizers)
        return (head + self.separator if head else "") + "".join(self.demo(t, v) for t, v in demos)

    def domain_premise(self) -> str:
        return self.answer_cue


class ChatTemplate:
    """A Jinja chat template (as in GGUF / tokenizer_config.json) rendered with jinja2's sandbox."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        try:
            from jinja2.exceptions import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError as e:  # a declared dependency; say what is missing rather than fail oddly
            raise ImportError("chat templates need jinja2 (pip install 'jinja2>=3.0')") from e

        def raise_exception(message):
            raise TemplateError(message)

        # transformers' apply_chat_template renders in this environment (trim/lstrip blocks, loop controls).
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = raise_exception
        self.source = source
        self._template = env.from_string(source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
        return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token, eos_token=self.eos_token)

    def classification_messages(self, instruction: str, demos: Sequence[tuple[str, str]], text: str | None
                                ) -> list[dict]:
        msgs = [{"role": "system", "content": instruction}] if instruction else []
        for t, v in demos:
            msgs += [{"role": "user", "content": t}, {"role": "assistant", "content": v}]
        if text is not None:
            msgs.append({"role": "user", "content": text})
        return msgs

    def split_prompt(self, instruction: str, demos: Sequence[tuple[str, str]], text: str) -> tuple[str, str]:
        """(shared part, example part) whose concatenation is the rendered prompt.

        The shared part is the rendering of the instruction and demonstrations alone when that is a
        prefix of the full rendering (true of ChatML templates); otherwise it is empty.
        """
        full = self.render(self.classification_messages(instruction, demos, text), add_generation_prompt=True)
        shared = self.render(self.classification_messages(instruction, demos, None)) if (instruction or demos) else ""
        if shared and full.startswith(shared):
            return shared, full[len(shared):]
        return "", full

    @classmethod
    def from_model(cls, path: str | Path) -> ChatTemplate:
        """The chat template of a GGUF file or a Hugging Face folder; a clear error when there is none."""
        path = Path(path)
        if path.is_file() and path.suffix == ".gguf":
            from gguf import GGUFReader

            reader = GGUFReader(str(path))
            f = reader.fields.get("tokenizer.chat_template")
            if f is None:
                raise ValueError(f"{path}: the GGUF file has no tokenizer.chat_template")
            tokens = reader.fields["tokenizer.ggml.tokens"].contents()

            def special(key: str) -> str:
                g = reader.fields.get(f"tokenizer.ggml.{key}")
                return tokens[int(g.contents())] if g is not None else ""

            return cls(f.contents(), special("bos_token_id"), special("eos_token_id"))
        cfg = path / "tokenizer_config.json"
        if not cfg.is_file():
            raise ValueError(f"{path}: no tokenizer_config.json, so no chat template")
        obj = json.loads(cfg.read_text(encoding="utf-8"))
        src = obj.get("chat_template")
        if isinstance(src, list):  # several named templates: take "default"
            src = next((t.get("template") for t in src if t.get("name") == "default"), None)
        if not isinstance(src, str):
            jinja = path / "chat_template.jinja"  # newer transformers save it beside the config
            if not jinja.is_file():
                raise ValueError(f"{cfg}: no chat_template")
            src = jinja.read_text(encoding="utf-8")

        def tok(v) -> str:
            return v.get("content", "") if isinstance(v, dict) else (v or "")

        return cls(src, tok(obj.get("bos_token")), tok(obj.get("eos_token")))
