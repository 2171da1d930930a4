"""Final-layer formulations: numpy arrays in, MilpInstance out."""

from gdsolver.formulate.classification import CLASSIFICATION_MODES, check_labels, classification, correct_mask
from gdsolver.formulate.layer import ACTIVATIONS, forward
from gdsolver.formulate.regression import REGRESSION_MODES, regression

__all__ = ["regression", "classification", "check_labels", "forward", "correct_mask", "ACTIVATIONS",
           "REGRESSION_MODES", "CLASSIFICATION_MODES"]
