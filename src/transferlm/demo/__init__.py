"""The stages of `transferlm demo` (issue #8): the transfer-learning story on the built-in data.

- `data.py`: the seeded BBC News split, the few-label training sample and the unlabeled text;
- `stages.py`: the four stages (vocabulary, pretraining, fine-tuning three ways + TF-IDF, report),
  each finished stage recorded by a marker file so that a re-run resumes;
- `report.py`: the results table and the PNG figures.

The command line lives in cli/demo.py; this package does the work and prints what it does.
"""

from .data import DemoData, bbc_split, few_labels
from .stages import DemoConfig, run_demo

__all__ = ["DemoConfig", "DemoData", "bbc_split", "few_labels", "run_demo"]
