"""Reading images and their sizes, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posetune.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


#: EXIF orientations (5-8) that turn the stored image by 90 degrees for display.
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as displayed, from the file header, without decoding the pixels.

    A phone photo stored sideways with an EXIF orientation tag (5-8) reports its displayed size,
    the size :func:`load_image` returns and labelling tools (LabelMe, CVAT, browsers) label in.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = int(im.width), int(im.height)
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
            except Exception:  # a broken EXIF block: the pixels are still usable as stored
                orientation = 1
            return (h, w) if orientation in _TRANSPOSING_ORIENTATIONS else (w, h)
    except FileNotFoundError:
        raise DataError("image not found", where=path, hint="check the image path / image_root") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        what = "image file is empty (0 bytes)" if size == 0 else f"cannot read image ({e})"
        raise DataError(what, where=path, hint="replace or remove this image") from None


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image as an RGB uint8 array of shape (H, W, 3), turned by its EXIF orientation."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise DataError("image not found", where=path, hint="check the image path / image_root")
    data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    if data.size == 0:
        raise DataError("image file is empty (0 bytes)", where=path, hint="replace or remove this image")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError("cannot decode image (corrupt or unsupported format)", where=path,
                        hint="replace or remove this image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Encode an RGB uint8 image (format from the extension) and write it atomically."""
    import cv2

    from posetune.io_utils import write_bytes_atomic

    path = Path(path)
    ext = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode image as {ext}", where=path, hint="use .png or .jpg")
    return write_bytes_atomic(path, buf.tobytes())
