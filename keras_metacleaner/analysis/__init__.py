"""Label-issue analysis: per-example confidence from α, AUROC, ranking."""

from keras_metacleaner.analysis.label_issues import alpha_scores, auroc, rank_label_issues

__all__ = ["alpha_scores", "auroc", "rank_label_issues"]
