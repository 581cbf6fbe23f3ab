"""Transformers written here: BERT encoders, GPT-2 / Llama decoders, BERT2BERT encoder-decoders.

    from transferlm.models import Encoder, Decoder, Seq2Seq, ModelConfig, preset
    enc = Encoder.from_pretrained(assets.path("minilm"))      # a Hugging Face BERT folder
    dec = Decoder.from_pretrained(assets.path("smollm2"))     # a GGUF file or an HF folder

Files: config.py (ModelConfig + presets), layers.py (the parts), encoder.py, decoder.py,
seq2seq.py, registry.py (`Family`: what ties a model_type to its HF files), families/ (one file
per family: bert.py, gpt2.py, llama.py; importing this package registers them), checkpoint.py
(HF folders and GGUF in and out, for any registered family). Models return `ModelOutput` and
know nothing of tasks or losses.
"""

from .checkpoint import CheckpointError
from .config import PRESETS, ModelConfig, preset
from .decoder import Decoder
from .encoder import Encoder
from .layers import KVCache, ModelOutput
from .seq2seq import Seq2Seq
from . import families  # noqa: E402,I001  (registers bert, gpt2, llama: after the model classes they name)

__all__ = ["PRESETS", "ModelConfig", "preset", "KVCache", "ModelOutput", "Encoder", "Decoder", "Seq2Seq",
           "CheckpointError"]
