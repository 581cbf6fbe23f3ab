"""The registered model families, one file each (registry.py says what a `Family` holds).

Adding a family: write `families/<name>.py` ending with `FAMILY = register(Family(...))` (copy
gpt2.py, the smallest) and add its name to the import line below; docs/ARCHITECTURE.md has the
recipe.
"""

from . import bert, gpt2, llama  # noqa: F401  (importing a family's file registers it)
