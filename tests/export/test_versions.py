"""Versioned export directories: next free version, atomic rename, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from keras_metacleaner.export import versions


def _write_files(target: str, scratch: str) -> None:
    os.makedirs(os.path.join(target, "variables"))
    with open(os.path.join(target, "saved_model.pb"), "wb") as handle:
        handle.write(b"graph")


def test_next_version_ignores_non_integer_entries(tmp_path):
    assert versions.next_version(tmp_path / "missing") == 1
    assert versions.next_version(tmp_path) == 1
    for name in ("1", "3", ".tmp-export-abc", "latest", "12a"):
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    assert versions.list_versions(tmp_path) == [1, 3]
    assert versions.next_version(tmp_path) == 4


def test_write_picks_next_version_and_leaves_no_staging(tmp_path):
    first = versions.write_version_atomically(tmp_path, _write_files)
    second = versions.write_version_atomically(tmp_path, _write_files)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]
    assert os.path.isfile(os.path.join(second, "saved_model.pb"))


def test_explicit_version_and_refusal_to_overwrite(tmp_path):
    path = versions.write_version_atomically(tmp_path, _write_files, version=7)
    assert path == os.path.join(str(tmp_path), "7")
    with pytest.raises(FileExistsError, match="Version 7 already exists"):
        versions.write_version_atomically(tmp_path, _write_files, version=7)
    assert versions.next_version(tmp_path) == 8


@pytest.mark.parametrize("bad", [-1, True, "2", 1.0])
def test_bad_version_is_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        versions.write_version_atomically(tmp_path, _write_files, version=bad)


def test_export_base_that_is_a_file(tmp_path):
    not_a_dir = tmp_path / "exports"
    not_a_dir.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        versions.write_version_atomically(not_a_dir, _write_files)
    with pytest.raises(NotADirectoryError, match="a parent of it is a file"):
        versions.write_version_atomically(not_a_dir / "model", _write_files)


def test_failed_write_leaves_nothing_behind(tmp_path):
    def crash(target, scratch):
        _write_files(target, scratch)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        versions.write_version_atomically(tmp_path, crash)
    assert os.listdir(tmp_path) == []


def test_version_taken_during_write_moves_to_the_next(tmp_path):
    def racing(target, scratch):
        # Another exporter finishes version 1 while we are still writing.
        _write_files(os.path.join(str(tmp_path), "1"), scratch)
        _write_files(target, scratch)

    path = versions.write_version_atomically(tmp_path, racing)
    assert os.path.basename(path) == "2"


def test_killed_export_leaves_no_integer_version(tmp_path):
    """SIGKILL in the middle of writing: TF Serving must find no version to load."""
    marker = tmp_path / "writing"
    script = textwrap.dedent(
        f"""
        import os, time
        from keras_metacleaner.export import versions

        def slow(target, scratch):
            os.makedirs(os.path.join(target, "variables"))
            open(os.path.join(target, "saved_model.pb"), "wb").write(b"partial")
            open({str(marker)!r}, "w").close()
            time.sleep(600)

        versions.write_version_atomically({str(tmp_path / "base")!r}, slow)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, "the exporting process ended early"
            assert time.monotonic() < deadline, "the exporting process never started writing"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    base = tmp_path / "base"
    leftovers = os.listdir(base)
    assert versions.list_versions(base) == []
    assert leftovers and all(name.startswith(versions.STAGING_PREFIX) for name in leftovers)
    # A later export still gets version 1 beside the stale staging directory.
    assert os.path.basename(versions.write_version_atomically(base, _write_files)) == "1"
