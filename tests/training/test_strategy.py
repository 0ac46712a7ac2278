import json

import pytest

from keras_metacleaner.training import strategy

CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize(
    "config, chief, task",
    [
        ({}, True, "chief"),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}, True, "worker_0"),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}, False, "worker_1"),
        (
            {
                "cluster": {**CLUSTER, "chief": ["127.0.0.1:3"]},
                "task": {"type": "worker", "index": 0},
            },
            False,
            "worker_0",
        ),
        ({"cluster": {"chief": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True, "chief_0"),
    ],
)
def test_chief_detection(config, chief, task):
    assert strategy.is_chief(config) is chief
    assert strategy.task_id(config) == task


def test_tf_config_from_environment(monkeypatch):
    config = {"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert strategy.tf_config() == config
    assert not strategy.is_chief()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategy.tf_config()


@pytest.mark.parametrize(
    "config, match",
    [
        ({}, "needs TF_CONFIG with a 'cluster'"),
        ({"cluster": CLUSTER}, "needs a 'task'"),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}, "is not in its cluster"),
        ({"cluster": CLUSTER, "task": {"type": "chief", "index": 0}}, "is not in its cluster"),
    ],
)
def test_validate_tf_config(config, match):
    with pytest.raises(ValueError, match=match):
        strategy.validate_tf_config(config)


def test_get_strategy_by_name():
    assert strategy.get_strategy("default").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
        strategy.get_strategy("tpu")


def test_multi_worker_without_tf_config_fails_clearly(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="--strategy=multi_worker needs TF_CONFIG"):
        strategy.get_strategy("multi_worker")


def test_split_cpu_after_initialisation_is_a_no_op_when_already_split():
    # tests/conftest.py split the CPU in two before TF started.
    strategy.split_cpu(2)
    with pytest.raises(RuntimeError, match="already initialised"):
        strategy.split_cpu(3)
