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
