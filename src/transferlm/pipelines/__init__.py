"""Fine-tuning pipelines: a pretrained encoder + a task head, trained, saved and used in one object.

    from transferlm.pipelines import TextClassifier, Tagger, SpanTagger, QuestionAnswerer, load
    clf = TextClassifier.new("minilm", labels=[...]); clf.fit(texts, labels); clf.predict(texts)
    pipe = load("out/model")    # any saved pipeline, by the task written in its folder

base.py (training with the shared Trainer, saving and loading), classification.py (single texts
and pairs), decoder_classification.py (the same on a causal decoder: GPT-1 fine-tuning with the
auxiliary LM loss; `TextClassifier.new` picks it for GPT-2 / Llama / GGUF models), tagging.py (softmax / CRF taggers), spans.py (nested spans), qa.py (extractive QA).
"""

from .base import FitConfig, Pipeline, load, resolve_model
from .classification import ClassifierOptions, TextClassifier
from .decoder_classification import DecoderClassifier, DecoderClassifierOptions
from .qa import QAOptions, QuestionAnswerer
from .spans import SpanOptions, SpanTagger
from .tagging import Tagger, TaggerOptions

PIPELINES = {c.__name__: c for c in (TextClassifier, DecoderClassifier, Tagger, SpanTagger, QuestionAnswerer)}
TASKS = {"classify": TextClassifier, "pair": TextClassifier, "tag": Tagger, "spans": SpanTagger,
         "qa": QuestionAnswerer}

__all__ = ["FitConfig", "Pipeline", "load", "resolve_model", "TextClassifier", "ClassifierOptions",
           "DecoderClassifier", "DecoderClassifierOptions",
           "Tagger", "TaggerOptions", "SpanTagger", "SpanOptions", "QuestionAnswerer", "QAOptions",
           "PIPELINES", "TASKS"]
