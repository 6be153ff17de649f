"""Codecs: keypoints <-> targets (MSRA/UDP heatmaps with DARK decoding, SimCC, regression)."""
