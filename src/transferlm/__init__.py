"""transferlm: transfer learning with pretrained language models, written to be read.

Notation used across the package: B batch, T time (sequence length), C channels (hidden size),
H attention heads, hs head size (C // H), V vocabulary size.
"""

__version__ = "0.1.0"
