"""docs/serving.md: the TF Serving docker command matches the export layout."""

from __future__ import annotations

import os
import re

from export_helpers import repo_root


def _docker_commands() -> list[str]:
    with open(os.path.join(repo_root(), "docs", "serving.md")) as handle:
        text = handle.read()
    commands = re.findall(r"^docker run .*?(?<!\\)$", text, flags=re.M | re.S)
    return [re.sub(r"\\\n\s*", " ", command) for command in commands]


def test_docker_command_mounts_the_export_base_at_models_name():
    commands = _docker_commands()
    assert commands, "docs/serving.md lost its docker command"
    single = [c for c in commands if "MODEL_NAME=" in c]
    assert single
    for command in single:
        name = re.search(r"-e MODEL_NAME=(\w+)", command).group(1)
        mount = re.search(r"--mount type=bind,source=(\S+),target=(\S+)", command)
        assert mount, command
        source, target = mount.groups()
        assert target == f"/models/{name}", command
        # The export base (the directory of integer versions), absolute, not a version.
        assert source.startswith('"$PWD/') and not re.search(r"/\d+\"?$", source), command
        assert "-p 8501:8501" in command and command.rstrip().endswith("tensorflow/serving")
    for command in commands:
        assert " -v " not in command, "use --mount: -v creates a missing source silently"
