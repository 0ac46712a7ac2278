"""deploy/multi_worker.yaml: valid Kubernetes objects, and each worker's TF_CONFIG from its index.

No cluster is needed: every object is validated offline against the Kubernetes
JSON schema (`kubernetes-validate` ships it, strict: unknown fields fail), and
the container's start-up script runs under `sh` with a stand-in `python` that
records the TF_CONFIG and arguments it was started with.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from keras_metacleaner.training import strategy as kmc_strategy

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(ROOT, "deploy", "multi_worker.yaml")
# Indexed Jobs are GA since 1.24 and `publishNotReadyAddresses` long before; check an old
# supported release and the newest schema the package ships.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _objects(path: str = MANIFEST) -> dict[str, dict]:
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    return {d["kind"]: d for d in documents}


def _trainer(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _start_worker(tmp_path, container: dict, index: int) -> tuple[dict, list[str]]:
    """Runs the container's script for JOB_COMPLETION_INDEX=index; (TF_CONFIG, python argv)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / f"worker{index}.json"
    recorder = tmp_path / "record.py"
    recorder.write_text(
        "import json, os, sys\n"
        "with open(sys.argv[1], 'w') as f:\n"
        "    json.dump({'tf_config': os.environ['TF_CONFIG'], 'argv': sys.argv[2:]}, f)\n"
    )
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{recorder}" "{record}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert container["command"] == ["/bin/sh", "-c"]
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        # Set by the Job controller in every pod of an Indexed Job.
        "JOB_COMPLETION_INDEX": str(index),
        **_env(container),
    }
    done = subprocess.run(
        ["/bin/sh", "-c", container["args"][0]], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    recorded = json.loads(record.read_text())
    return json.loads(recorded["tf_config"]), recorded["argv"]


def _flags(lines: list[str], seen=()) -> dict[str, str]:
    """absl flag-file semantics: nested --flagfile= (relative to the image's /app), later wins."""
    flags = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("--"):
            continue
        name, _, value = line[2:].partition("=")
        if name == "flagfile":
            assert value not in seen, f"flag file {value} includes itself"
            with open(os.path.join(ROOT, value)) as f:
                flags.update(_flags(f.read().splitlines(), (*seen, value)))
        else:
            flags[name] = value
    return flags


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schema(version):
    objects = _objects()
    assert sorted(objects) == ["ConfigMap", "Job", "Service"]
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_can_fail():
    job = _objects()["Job"]
    job["spec"]["completionsMode"] = "Indexed"  # a typo of completionMode
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    job = _objects()["Job"]
    job["spec"]["completions"] = "2"  # a string where the schema wants an integer
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_job_service_and_workers_agree():
    objects = _objects()
    job, service, config_map = objects["Job"], objects["Service"], objects["ConfigMap"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = _trainer(job)
    env = _env(container)
    workers = int(env["WORKERS"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == workers >= 2
    # Pod i's host name is <job name>-<i>; with the Service as subdomain it resolves.
    assert env["JOB_NAME"] == job["metadata"]["name"]
    assert env["SERVICE"] == pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == port["targetPort"] == int(env["PORT"])
    assert container["ports"][0]["containerPort"] == int(env["PORT"])
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= 1
    # The flag file is the mounted ConfigMap.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    flag_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[flag_volume]["configMap"]["name"] == config_map["metadata"]["name"]
    (flag_file,) = config_map["data"]
    assert f"--flagfile={mounts[flag_volume]}/{flag_file}" in container["args"][0]
    flags = _flags(config_map["data"][flag_file].splitlines())
    assert flags["strategy"] == "multi_worker"
    assert "mixed_precision" in flags
    assert flags["model_dir"].startswith(mounts["runs"] + "/")
    assert flags["dataset"].split(":", 1)[1].startswith(mounts["data"] + "/")
    # The paper's batch: K = batch / N subsets split evenly between all replicas.
    groups = int(flags["batch_size"]) // int(flags["subset_size"])
    assert (int(flags["batch_size"]), groups) == (480, 120)
    assert groups % (workers * gpus) == 0, (groups, workers, gpus)


def test_each_worker_gets_a_valid_tf_config_from_its_index(tmp_path):
    job = _objects()["Job"]
    container = _trainer(job)
    env = _env(container)
    workers = int(env["WORKERS"])
    configs = []
    for index in range(workers):
        config, argv = _start_worker(tmp_path, container, index)
        kmc_strategy.validate_tf_config(config)
        assert config["task"] == {"type": "worker", "index": index}
        assert argv == ["tools/train.py", "--flagfile=/etc/kmc/train.flags"]
        configs.append(config)
    hosts = [f"{env['JOB_NAME']}-{i}.{env['SERVICE']}:{env['PORT']}" for i in range(workers)]
    for config in configs:
        assert config["cluster"] == {"worker": hosts}
    # Exactly one chief: worker 0.
    assert [kmc_strategy.is_chief(c) for c in configs] == [True] + [False] * (workers - 1)


def test_an_index_outside_the_cluster_is_refused(tmp_path):
    container = _trainer(_objects()["Job"])
    workers = int(_env(container)["WORKERS"])
    config, _ = _start_worker(tmp_path, container, workers)
    with pytest.raises(ValueError, match="not in its cluster"):
        kmc_strategy.validate_tf_config(config)


def test_the_flag_file_names_only_flags_train_py_defines():
    from tools.tool_helpers import import_tool

    config_map = _objects()["ConfigMap"]
    (text,) = config_map["data"].values()
    defined = import_tool("train").FLAGS
    unknown = [
        name
        for name in _flags(text.splitlines())
        if name not in defined and not (name.startswith("no") and name[2:] in defined)
    ]
    assert not unknown, f"tools/train.py defines no flag {unknown}"
