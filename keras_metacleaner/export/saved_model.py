"""`export_for_serving`: the plain classifier as a TF Serving SavedModel.

At test time MetaCleaner is removed (section 3.3 of the paper): only
backbone -> classifier -> softmax is exported. The SavedModel runs with
TensorFlow alone (no keras_metacleaner, no Keras custom objects), has the
signatures described in `keras_metacleaner.export.signatures` and the class
names in `assets/class_names.txt`.
"""

from __future__ import annotations

import logging
import os

import keras

from keras_metacleaner.export import signatures as sig
from keras_metacleaner.export.versions import write_version_atomically

CLASS_NAMES_ASSET = "class_names.txt"

logger = logging.getLogger(__name__)


def serving_model(model: keras.Model) -> keras.Model:
    """The model to export: the cleaner-free classifier.

    Args:
        model: a `MetaCleanerModel` (its `inference_model()` is used) or a
            plain `keras.Model` from images `[B, H, W, C]` to probabilities
            `[B, num_classes]`.

    Returns:
        A `keras.Model` images -> probabilities.

    Example:

    >>> import keras_metacleaner as kmc
    >>> m = kmc.MetaCleanerModel(kmc.models.small_cnn(), num_classes=10, subset_size=2)
    >>> serving_model(m).output_shape
    (None, 10)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"export_for_serving needs a keras.Model (a MetaCleanerModel or an image -> "
            f"probabilities classifier), got {type(model).__name__}."
        )
    if hasattr(model, "inference_model"):
        model = model.inference_model()
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if not inputs:
        raise ValueError(
            f"Cannot read the input shape of {type(model).__name__} {model.name!r}: export a "
            "functional or Sequential keras.Model (e.g. wrap a subclassed one: "
            "keras.Model(x := keras.Input((H, W, C)), model(x)))."
        )
    if len(inputs) != 1:
        raise ValueError(
            f"The model to export must take one input (images); it takes {len(inputs)}."
        )
    input_shape = tuple(model.input_shape)
    if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
        raise ValueError(
            "The model to export must take images of a fixed size [batch, H, W, C] (serving_bytes "
            f"resizes files to it); its input shape is {input_shape}."
        )
    output_shape = tuple(model.output_shape)
    if len(output_shape) != 2 or output_shape[-1] is None:
        raise ValueError(
            "The model to export must output class probabilities [batch, num_classes]; its "
            f"output shape is {output_shape}."
        )
    return model


def _check_class_names(class_names, num_classes: int) -> list[str]:
    if class_names is None:
        logger.warning(
            "export_for_serving: no class_names given; class_name will be the class id as text."
        )
        return [str(i) for i in range(num_classes)]
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of strings, got the string {class_names!r}.")
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} entries but the model has {num_classes} classes."
        )
    for i, name in enumerate(class_names):
        if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
            raise ValueError(
                f"class_names[{i}] = {name!r}: every class name must be a non-empty string "
                "without line breaks (they are stored one per line in assets/class_names.txt)."
            )
    return class_names


def export_for_serving(
    model: keras.Model,
    export_base: str | os.PathLike,
    version: int | None = None,
    class_names: list[str] | None = None,
) -> str:
    """Exports the classifier, cleaner removed, as `<export_base>/<version>/`.

    The version directory is what TF Serving loads (`saved_model.pb`,
    `variables/`, `assets/class_names.txt`); it is written under a hidden
    staging directory and renamed into place, so TF Serving never sees a
    partial version. Signatures: `serving_default` (float32 pixels),
    `serving_uint8` (uint8 pixels) and `serving_bytes` (encoded JPEG / PNG
    strings), each returning `probabilities`, `class_id` and `class_name`.

    Args:
        model: a `MetaCleanerModel` or a plain `keras.Model` from raw-pixel
            images `[B, H, W, C]` to probabilities `[B, num_classes]`.
        export_base: the model's base directory (TF Serving's
            `model_base_path`); created when missing.
        version: integer version; `None` picks one more than the highest
            existing version (1 when there is none).
        class_names: names of the classes in class-id order; `None` uses
            `"0"`, `"1"`, ...

    Returns:
        Path of the written version directory.

    Raises:
        NotADirectoryError: `export_base` is a file.
        FileExistsError: `version` already exists.
        ValueError: the model or `class_names` do not fit.

    Example:

    >>> import tempfile, keras_metacleaner as kmc
    >>> m = kmc.MetaCleanerModel(kmc.models.small_cnn(), num_classes=2, subset_size=2)
    >>> path = export_for_serving(m, tempfile.mkdtemp(), class_names=["cat", "dog"])
    >>> os.path.basename(path)
    '1'
    """
    model = serving_model(model)
    image_shape = tuple(int(d) for d in model.input_shape[1:])
    class_names = _check_class_names(class_names, int(model.output_shape[-1]))

    def write(target: str, scratch: str) -> None:
        # The table reads this file now and, from assets/, on every load.
        names_file = os.path.join(scratch, CLASS_NAMES_ASSET)
        with open(names_file, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in class_names))
        table = sig.class_name_table(names_file)

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.track(table)
        for name, (function, input_signature) in sig.serving_functions(
            model, image_shape, table
        ).items():
            archive.add_endpoint(name, function, input_signature)
        archive.write_out(target, verbose=False)

    path = write_version_atomically(export_base, write, version)
    logger.info("Exported %s for serving to %s", model.name, path)
    return path
