"""Inference: predictors, detectors, video, drawing, smoothing and tracking."""
