"""Data sets: the paper's regression equations, sklearn's digits and diabetes, MNIST /
Fashion-MNIST idx files and CIFAR-10 binary batches (never pickles, never downloads), and the
paper preset of box radii. See ``datasets`` for names and splits, ``locate`` for where files
are looked for."""

from gdsolver.data.datasets import DATASETS, REGRESSION_EQUATIONS, Split, equation_targets, load_dataset, load_split
from gdsolver.data.presets import PAPER_MARGIN, PAPER_RADIUS, paper_radius

__all__ = ["DATASETS", "PAPER_MARGIN", "PAPER_RADIUS", "REGRESSION_EQUATIONS", "Split", "equation_targets",
           "load_dataset", "load_split", "paper_radius"]
