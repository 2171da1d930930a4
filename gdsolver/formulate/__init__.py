"""Final-layer formulations: numpy arrays in, MilpInstance out."""

from gdsolver.formulate.classification import CLASSIFICATION_MODES, classification, correct_mask
from gdsolver.formulate.layer import ACTIVATIONS, forward
from gdsolver.formulate.regression import REGRESSION_MODES, regression

__all__ = ["regression", "classification", "forward", "correct_mask", "ACTIVATIONS",
           "REGRESSION_MODES", "CLASSIFICATION_MODES"]
