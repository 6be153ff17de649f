"""Models: timm backbones + heads (top-down), imported MediaPipe networks, checkpoint loading."""
