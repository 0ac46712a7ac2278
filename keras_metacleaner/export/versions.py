"""Versioned, atomic export directories in the layout TF Serving polls.

TF Serving watches `<export_base>/` and loads every child directory whose
name is an integer (the version); it skips other names. A version must
therefore appear all at once: it is written under a hidden staging directory
in the same `export_base` (same file system, so `os.rename` is atomic) and
renamed into place only when complete. A crash or kill leaves at most a
`.tmp-export-*` directory, which TF Serving ignores.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

STAGING_PREFIX = ".tmp-export-"


def check_export_base(export_base: str | os.PathLike) -> str:
    """Validates `export_base` and creates it when missing.

    Args:
        export_base: directory that holds one sub-directory per version.

    Returns:
        `export_base` as an absolute path.

    Raises:
        NotADirectoryError: `export_base` (or a parent of it) is a file.

    Example:

    >>> import tempfile
    >>> base = check_export_base(tempfile.mkdtemp() + "/exports/fashion_mnist")
    """
    path = os.path.abspath(os.fspath(export_base))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(
            f"export_base {path!r} is a file; expected a directory that holds one "
            "sub-directory per model version (e.g. exports/fashion_mnist)."
        )
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise NotADirectoryError(
            f"Cannot create export_base {path!r}: a parent of it is a file ({error})."
        ) from error
    return path


def list_versions(export_base: str | os.PathLike) -> list[int]:
    """Integer versions present in `export_base`, ascending.

    Only directories whose name is a non-negative integer count, as in TF
    Serving; staging directories and other files are ignored.

    Args:
        export_base: directory of versions; may not exist.

    Returns:
        Sorted list of versions.

    Example:

    >>> list_versions("/nonexistent/exports")
    []
    """
    path = os.fspath(export_base)
    if not os.path.isdir(path):
        return []
    versions = []
    for name in os.listdir(path):
        if name.isdigit() and os.path.isdir(os.path.join(path, name)):
            versions.append(int(name))
    return sorted(versions)


def next_version(export_base: str | os.PathLike) -> int:
    """The next free version: one more than the highest present, 1 when empty.

    Args:
        export_base: directory of versions.

    Returns:
        An integer >= 1.

    Example:

    >>> next_version("/nonexistent/exports")
    1
    """
    versions = list_versions(export_base)
    return versions[-1] + 1 if versions else 1


def _check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(
            f"version must be a non-negative integer (TF Serving's version directories are "
            f"integers), got {version!r}."
        )
    return version


def _fsync_tree(root: str) -> None:
    """Flushes every file under `root` so a power loss after the rename
    cannot expose a version directory with empty files."""
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def staging_directory(export_base: str) -> Iterator[str]:
    """A hidden scratch directory inside `export_base`, removed on exit.

    Args:
        export_base: an existing directory (see `check_export_base`).

    Yields:
        Path of the scratch directory.

    Example:

    >>> import os, tempfile
    >>> with staging_directory(tempfile.mkdtemp()) as tmp:
    ...     os.path.basename(tmp).startswith(STAGING_PREFIX)
    True
    """
    path = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=export_base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_version_atomically(
    export_base: str | os.PathLike,
    write: Callable[[str, str], None],
    version: int | None = None,
) -> str:
    """Writes one version with `write` and renames it into place in one step.

    Args:
        export_base: directory of versions; created when missing.
        write: `write(target_dir, scratch_dir)` writes the complete version
            into `target_dir` (which does not exist yet); `scratch_dir` is for
            its own temporary files and is deleted afterwards.
        version: integer version, or `None` for `next_version(export_base)`.

    Returns:
        The path `<export_base>/<version>`.

    Raises:
        FileExistsError: `version` is given and already exists.
        NotADirectoryError: `export_base` is a file.

    Example:

    >>> import os, tempfile
    >>> base = tempfile.mkdtemp()
    >>> def write(target, scratch):
    ...     os.makedirs(target)
    ...     open(os.path.join(target, "saved_model.pb"), "wb").close()
    >>> os.path.basename(write_version_atomically(base, write))
    '1'
    """
    base = check_export_base(export_base)
    if version is not None:
        _check_version(version)
        if os.path.exists(os.path.join(base, str(version))):
            raise FileExistsError(
                f"Version {version} already exists in {base!r}; pass another version or "
                "version=None for the next free one."
            )
    with staging_directory(base) as scratch:
        staged = os.path.join(scratch, "version")
        own_scratch = os.path.join(scratch, "scratch")
        os.makedirs(own_scratch)
        write(staged, own_scratch)
        if not os.path.isdir(staged):
            raise RuntimeError(f"The export writer left no directory at {staged!r}.")
        _fsync_tree(staged)
        # Another exporter may take the same free version between our choice
        # and the rename; rename refuses a non-empty target, so try the next.
        for _ in range(100):
            chosen = next_version(base) if version is None else version
            target = os.path.join(base, str(chosen))
            try:
                if os.path.exists(target):
                    raise FileExistsError(errno.EEXIST, "exists", target)
                os.rename(staged, target)
            except OSError as error:
                if version is not None or error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue
            return target
    raise RuntimeError(f"Could not find a free version in {base!r} after 100 attempts.")
