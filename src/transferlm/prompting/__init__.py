"""Prompting: a decoder used with demonstrations in its context instead of gradient updates.

- `templates.py`: the plain few-shot layout and the model's own chat template (jinja2 sandbox);
- `selection.py`: demonstrations at random, balanced per class, or MiniLM nearest neighbours;
- `scoring.py`: log P(verbalizer | prompt) of every label from one pass over the shared prompt;
- `calibration.py`: contextual calibration (Zhao et al. 2021) and domain-conditional PMI
  (Holtzman et al. 2021);
- `fewshot.py`: `PromptClassifier` wires them together (`fit` on a pool, `classify` texts).

Free generation is `Decoder.generate` (its `on_token` hook streams); `cli/prompt.py` is the command line.
"""

from .fewshot import PromptClassifier, PromptOptions, PromptTooLong
from .templates import ChatTemplate, PromptTemplate

__all__ = ["ChatTemplate", "PromptClassifier", "PromptOptions", "PromptTemplate", "PromptTooLong"]
