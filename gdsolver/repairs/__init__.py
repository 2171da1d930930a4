"""Certified repair of a model's known mistakes with the smallest change of one layer.

`repair(model, fix=(X, y), keep=(X, None|y), ...)` (torch) and `repair_onnx(path, ..., out=...)`
(ONNX, what `gdsolver repair` runs) in api.py; the search in solve.py (the MILP is
gdsolver.formulate.repair); the conflict of an infeasible repair in conflict.py; the
certificate, from running the repaired model, in certificate.py. See docs/repair.md."""

from gdsolver.repairs.api import RepairReport, repair, repair_onnx

__all__ = ["repair", "repair_onnx", "RepairReport"]
