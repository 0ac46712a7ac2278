"""The one registry of dataset sources, and the spec strings that name them.

A source is one module under `keras_metacleaner/data/sources/` with a
`load(target, options, *, image_size, seed) -> LoadedData` function, plus one
`Source(...)` line in `SOURCES` below. Tools read what they need from here
(the spec syntax, whether the target is a file or a directory) without
importing TensorFlow: this module imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import urllib.parse
from collections.abc import Callable

TARGET_KINDS = (None, "file", "directory", "name")


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset source of `keras_metacleaner.data.load`.

    Args:
        name: the spec prefix, e.g. `"npz"` in `npz:PATH`.
        module: dotted module whose `load(target, options, *, image_size,
            seed)` builds the data (imported only when the source is used).
        target: what follows the colon: `"file"`, `"directory"`, `"name"`
            (not a path, e.g. a TFDS builder name) or `None` (no target).
        usage: a short spec example shown in error messages and flag help.
        options: the `?key=value` options the source accepts.

    Example:

    >>> SOURCES["npz"].target, SOURCES["npz"].usage
    ('file', 'npz:PATH')
    """

    name: str
    module: str
    target: str | None
    usage: str
    options: tuple[str, ...] = ()

    def load_fn(self) -> Callable:
        """The source module's `load` function (imports the module)."""
        return importlib.import_module(self.module).load

    def check_target(self, target: str) -> str | None:
        """A problem with `target` on disk (e.g. a missing file), or `None` if it looks fine.

        Only checks what needs no TensorFlow: existence and file / directory kind.

        Example:

        >>> SOURCES["folder"].check_target("/nonexistent/x")
        "the directory '/nonexistent/x' does not exist"
        """
        if self.target not in ("file", "directory"):
            return None
        path = os.path.expanduser(target)
        if not os.path.exists(path):
            return f"the {self.target} {target!r} does not exist"
        if self.target == "file" and not os.path.isfile(path):
            return f"{target!r} is not a file"
        if self.target == "directory" and not os.path.isdir(path):
            return f"{target!r} is not a directory"
        return None


_S = "keras_metacleaner.data.sources."
#: Every source, one line each: name, module, target kind, usage, options.
SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("fashion_mnist", _S + "fashion_mnist", None, "fashion_mnist", ("dir",)),
        Source("npz", _S + "npz", "file", "npz:PATH"),
        Source("folder", _S + "folder", "directory", "folder:PATH", ("test_fraction", "verify")),
        Source("tfds", _S + "tfds_source", "name", "tfds:NAME?label=KEY"),
        Source("food101n", _S + "food101n", "directory", "food101n:ROOT", ("test", "verify")),
        Source("clothing1m", _S + "clothing1m", "directory", "clothing1m:ROOT", ("verify",)),
    )
}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Splits `"kind:target?key=value&..."` into `(kind, target, options)`.

    Args:
        spec: e.g. `"fashion_mnist"`, `"npz:/data/x.npz"`,
            `"tfds:cifar10_n?label=worse_label"`.

    Returns:
        `(kind, target, options)`; `target` is `""` when absent.

    Raises:
        ValueError: an unknown source, a missing or unexpected target, or
            options that do not parse.

    Example:

    >>> parse_spec("tfds:cifar10_n?label=worse_label")
    ('tfds', 'cifar10_n', {'label': 'worse_label'})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"Dataset spec must be a non-empty string, got {spec!r}.")
    spec = spec.strip()
    body, _, query = spec.partition("?")
    kind, _, target = body.partition(":")
    source = SOURCES.get(kind)
    if source is None:
        raise ValueError(
            f"Unknown dataset spec {spec!r}: source {kind!r} is not one of {list(SOURCES)} "
            f"(e.g. {', '.join(s.usage for s in SOURCES.values())})."
        )
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as error:
        raise ValueError(f"Dataset spec {spec!r}: cannot parse options {query!r}.") from error
    options = dict(pairs)
    if len(options) != len(pairs):
        raise ValueError(f"Dataset spec {spec!r}: an option is given twice.")
    if source.target is not None and not target:
        raise ValueError(f"Dataset spec {spec!r}: {kind} needs a target, e.g. {source.usage}.")
    if source.target is None and target:
        raise ValueError(
            f"Dataset spec {spec!r}: {kind} takes no target"
            + (f" (use ?{source.options[0]}=...)." if source.options else ".")
        )
    return kind, target, options


def check_spec(spec: str) -> str | None:
    """A one-line problem with `spec` (syntax, or its file / directory missing), or `None`.

    For tools that validate flags before importing TensorFlow.

    Example:

    >>> check_spec("fashion_mnist") is None
    True
    >>> check_spec("npz:/nonexistent.npz")
    "the file '/nonexistent.npz' does not exist"
    """
    try:
        kind, target, _ = parse_spec(spec)
    except ValueError as error:
        return str(error)
    return SOURCES[kind].check_target(target)
