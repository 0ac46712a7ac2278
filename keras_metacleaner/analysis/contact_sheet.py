"""`contact_sheet`: a PNG grid of images with their given and predicted class under each."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Caption colours: given label in red where the classifier disagrees with it.
_DISAGREE, _AGREE, _TEXT = (200, 30, 30), (40, 40, 40), (20, 20, 20)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] not in (3, 4):
        raise ValueError(
            f"contact_sheet: an image has {image.shape[-1]} channels; expected 1 or 3."
        )
    if image.ndim == 3:
        image = image[..., :3]
    # Raw pixels in [0, 255] (the library's convention); [0, 1] images are scaled up.
    if np.nanmax(image, initial=0.0) <= 1.0:
        image = image * 255.0
    return np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font.
        return ImageFont.load_default()


def contact_sheet(
    images,
    given,
    predicted,
    class_names,
    path: str,
    *,
    captions=None,
    columns: int = 8,
    cell_size: int = 112,
) -> str:
    """Writes a PNG grid of `images`, each with its given and predicted class under it.

    The given class is drawn in red where the classifier predicts another
    one, so a reviewer sees at a glance which label to check.

    Args:
        images: `[K, H, W, C]` (C = 1 or 3) raw pixels in [0, 255] (or [0, 1]).
        given: `[K]` given labels.
        predicted: `[K]` predicted labels.
        class_names: one name per class id.
        path: the PNG to write (its directory is created; the file appears
            complete or not at all).
        captions: optional `[K]` strings for a first caption line (e.g. the
            example's index and suspicion).
        columns: images per row.
        cell_size: pixel width and height each image is scaled to.

    Returns:
        `path`.

    Example:

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "sheet.png")
    >>> contact_sheet(np.zeros((3, 8, 8, 1)), [0, 1, 1], [0, 0, 1], ["a", "b"], out) == out
    True
    """
    images = np.asarray(images)
    given = np.asarray(given).reshape(-1)
    predicted = np.asarray(predicted).reshape(-1)
    if images.ndim != 4:
        raise ValueError(f"contact_sheet: `images` must be [K, H, W, C], got {images.shape}.")
    if not len(images) == len(given) == len(predicted):
        raise ValueError(
            f"contact_sheet: {len(images)} images, {len(given)} given and {len(predicted)} "
            "predicted labels; expected one of each per image."
        )
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"contact_sheet: {len(captions)} captions for {len(images)} images.")
    for name, values in (("given", given), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= len(class_names)):
            raise ValueError(
                f"contact_sheet: `{name}` labels must be in [0, {len(class_names)}) "
                "(one class name each)."
            )
    if columns < 1 or cell_size < 8:
        raise ValueError(f"contact_sheet: columns={columns} must be >= 1, cell_size >= 8.")
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = -(-count // columns)
    font_size = max(9, cell_size // 9)
    font = _font(font_size)
    lines = 3 if captions is not None else 2
    caption_height = lines * (font_size + 3) + 4
    pad = 4
    width = columns * (cell_size + pad) + pad
    height = rows * (cell_size + caption_height + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        x = pad + (i % columns) * (cell_size + pad)
        y = pad + (i // columns) * (cell_size + caption_height + pad)
        # Nearest neighbour keeps small images (28x28) sharp.
        tile = Image.fromarray(_to_uint8(image)).convert("RGB")
        scale = cell_size / max(tile.size)
        size = (max(1, round(tile.size[0] * scale)), max(1, round(tile.size[1] * scale)))
        sheet.paste(tile.resize(size, Image.NEAREST), (x, y))
        text_y = y + cell_size + 2
        if captions is not None:
            draw.text((x, text_y), str(captions[i]), fill=_TEXT, font=font)
            text_y += font_size + 3
        disagree = int(given[i]) != int(predicted[i])
        draw.text(
            (x, text_y),
            f"given: {class_names[int(given[i])]}",
            fill=_DISAGREE if disagree else _AGREE,
            font=font,
        )
        draw.text(
            (x, text_y + font_size + 3),
            f"pred: {class_names[int(predicted[i])]}",
            fill=_AGREE,
            font=font,
        )
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".png", delete=False) as f:
        sheet.save(f, format="PNG")
    os.replace(f.name, path)
    return path
