"""posetune: fine-tune pose (keypoint) and video action models on small custom datasets."""

__version__ = "0.1.0"
