"""Which training labels are wrong: per-example scores, rankings, metrics, pictures.

`score_labels(model, data, labels)` scores every example in one streaming
pass (`LabelScores`: α, the probability of the given label, the predicted
class, and one `suspicion`); `label_issue_metrics` measures a ranking against
known true labels; `contact_sheet` draws the most suspicious images.
"""

from keras_metacleaner.analysis.contact_sheet import contact_sheet
from keras_metacleaner.analysis.label_issues import alpha_scores, rank_label_issues
from keras_metacleaner.analysis.metrics import (
    KNOWN_WRONG,
    UNKNOWN,
    auroc,
    average_precision,
    label_issue_metrics,
    precision_at_k,
    wrong_labels,
)
from keras_metacleaner.analysis.report import (
    CSV_COLUMNS,
    gather_images,
    write_label_issues_csv,
)
from keras_metacleaner.analysis.scoring import (
    DEFAULT_SUSPICION,
    SUSPICIONS,
    LabelScores,
    compute_suspicion,
    score_labels,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SUSPICION",
    "KNOWN_WRONG",
    "SUSPICIONS",
    "UNKNOWN",
    "LabelScores",
    "alpha_scores",
    "auroc",
    "average_precision",
    "compute_suspicion",
    "contact_sheet",
    "gather_images",
    "label_issue_metrics",
    "precision_at_k",
    "rank_label_issues",
    "score_labels",
    "write_label_issues_csv",
    "wrong_labels",
]
