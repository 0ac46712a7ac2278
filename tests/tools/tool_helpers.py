"""Helpers of the tools tests: import a tool in-process, run one as a subprocess."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
CONFIGS = os.path.join(TOOLS, "configs")
PYTHON = sys.executable


def import_tool(name: str):
    """Imports tools/<name>.py once per process (absl flags can be defined only once)."""
    module_name = f"kmc_tool_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            module_name, os.path.join(TOOLS, f"{name}.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def invoke(tool, args: list[str]) -> int:
    """Parses `args` with the tool's flag parser and runs its main; returns the exit code."""
    tool.FLAGS.unparse_flags()
    try:
        argv = tool.parse_flags([f"{tool.__name__}.py", *args])
        return tool.main(argv)
    except SystemExit as e:
        return e.code


def subprocess_env(**extra: str) -> dict:
    """Environment of a tool subprocess: CPU only, quiet, the repository importable."""
    env = dict(os.environ)
    env.update(
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        KMC_OFFLINE="1",
    )
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def run_tool(
    name: str, args: list[str], timeout: float = 300, **env
) -> subprocess.CompletedProcess:
    """Runs tools/<name>.py to completion and returns the finished process (text output)."""
    return subprocess.run(
        [PYTHON, os.path.join(TOOLS, f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
        cwd=ROOT,
    )


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[str, str]]:
    """Waits for every process, kills those left running, asserts each exited 0.

    Returns:
        Each process's `(stdout, stderr)`; an assertion names the first failure's stderr tail.
    """
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return outputs


def counting_file_reads(loaded, reads: list):
    """`loaded` (a `LoadedData` of files), its per-file load appending each decoded path to `reads`.

    The sharding tests count what each worker process decodes with it.
    """
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from keras_metacleaner import data

    view = loaded.view
    assert view is not None and view.is_files, "the folder source lost its file view"

    def record(path):
        reads.append(path.numpy().decode())
        return np.int32(0)

    def counting_load(path):
        done = tf.py_function(record, [path], tf.int32)
        with tf.control_dependencies([done]):
            return view.load_fn(path)

    return data.LoadedData(
        loaded.info,
        loaded.test,
        loaded.labels,
        view=dataclasses.replace(view, load_fn=counting_load),
    )
