"""Grading metrics from mergeable sufficient statistics: accuracy, calibration, Brier, log
loss, the confusion matrix, binned ROC and PR curves, and regression errors.

Every metric is computed in two steps: a batch becomes a state (named arrays, each with a
declared merge) and a state becomes values by one formula. So a grade split across requests,
workers and replicas merges to what one whole computation gives: counts exactly, the rest to
rounding. The modules: params (what a request sets), inputs (checks, and the one form of a
batch), states (torch), values (merges and formulas, numpy), metrics (each declared once),
specs (the metrics as served functions).
"""

from service.grades.specs import GRADES, Grade, Graded, finalize, read_state

__all__ = ["GRADES", "Grade", "Graded", "finalize", "read_state"]
