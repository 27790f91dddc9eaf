"""Evaluation: the metrics (``facepoints.metrics``, pure numpy) and their reports (``facepoints.reports``).

Kept so that ``from facepoints.evaluate import ...`` goes on working; new code imports the two modules.
"""

from facepoints.metrics import (  # noqa: F401
    AUC_MAX_ERROR,
    FAILURE_THRESHOLD,
    EvalResult,
    attribute_subsets,
    auc,
    ced,
    compute_metrics,
    describe_normaliser,
    face_box_sizes,
    failure_rate,
    metrics_for,
    nme,
    region_nme,
)
from facepoints.reports import (  # noqa: F401
    GT_COLOR,
    PRED_COLOR,
    evaluate_predictions,
    markdown_table,
    plot_ced,
    plot_extremes,
    write_report,
)
