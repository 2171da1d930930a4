"""Sweep formulations: numpy arrays in, MilpInstance out.

`sweep_instance(layers, k, H, y, task=...)` sweeps dense layer k of a chain with the later
layers encoded exactly (encoders.py) and a head on the outputs (heads.py);
`classification` / `regression` are the final-layer sweeps from (W, b, H, y);
`check_claims` re-checks an answer by a forward pass (claims.py); the heads, with their sense
and default points, are one table (head_table.py).
"""

from gdsolver.formulate.claims import ClaimReport, check_claims
from gdsolver.formulate.classification import classification
from gdsolver.modeldef import ACTIVATIONS, Dense, activate, forward_chain
from gdsolver.formulate.heads import correct_mask
from gdsolver.formulate.regression import regression
from gdsolver.formulate.head_table import CLASSIFICATION_MODES, HEADS, REGRESSION_MODES, Head, head_for
from gdsolver.formulate.sweep import check_labels, check_targets, sweep_instance


def forward(W, b, H, activation: str):
    """Reference forward pass o = act(H W^T + b) (numpy)."""
    return Dense(W, b, activation).forward(H)


__all__ = ["sweep_instance", "classification", "regression", "check_claims", "ClaimReport", "Dense",
           "forward_chain", "forward", "activate", "check_labels", "check_targets", "correct_mask",
           "ACTIVATIONS", "REGRESSION_MODES", "CLASSIFICATION_MODES", "HEADS", "Head", "head_for"]
