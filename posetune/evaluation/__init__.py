"""Evaluation: COCO OKS AP/AR (pycocotools), PCK/PCKh/AUC/EPE, DeepLabCut RMSE, NME, swap rate.

``evaluate(gt, pred)`` returns every metric in one dict with stable keys; ``evaluate_files``
does the same from label / prediction files (what ``posetune metrics`` runs). Formulas and
conventions: docs/metrics.md.
"""

from posetune.evaluation.coco import (AP_KEYS, coco_ground_truth, coco_keypoint_eval, coco_results,
                                      coco_wholebody_eval, instance_score, oks_nms, run_cocoeval)
from posetune.evaluation.matching import Matches, match_instances, oks_matrix
from posetune.evaluation.predictions import align_predictions, read_ground_truth, read_predictions, results_to_dataset
from posetune.evaluation.summary import METRICS, STABLE_KEYS, evaluate, evaluate_files, pck_key

__all__ = [
    "AP_KEYS", "METRICS", "STABLE_KEYS", "Matches", "align_predictions", "coco_ground_truth", "coco_keypoint_eval",
    "coco_results", "coco_wholebody_eval",
    "evaluate", "evaluate_files", "instance_score", "match_instances", "oks_matrix", "oks_nms", "pck_key",
    "read_ground_truth", "read_predictions", "results_to_dataset", "run_cocoeval",
]
