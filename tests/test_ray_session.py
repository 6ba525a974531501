"""Quiet and verbose consoles: what ``configure_console`` sets for the driver and its workers.

Each case runs in a fresh interpreter: the settings are process environment. That a real job's
console is quiet is checked end to end in tests/search/ (``assert_quiet_console``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from dgqa_ray import ray_session

PROBE = """
import json, os, sys
from dgqa_ray import ray_session
ray_session.configure_console(sys.argv[1] == "verbose")
config = ray_session.train_logging_config()
print(json.dumps({
    "env": {k: os.environ.get(k) for k in (*ray_session.QUIET_ENV, "DGQA_VERBOSE")},
    "verbose": ray_session.is_verbose(),
    "train_level": None if config is None else config.log_level,
    "where": ray_session.where_logs_are(),
}))
"""


def _probe(mode: str, **env: str) -> dict:
    import os

    environ = {k: v for k, v in os.environ.items() if k not in ray_session.QUIET_ENV}
    environ.pop(ray_session.VERBOSE_ENV, None)
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environ, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_quiet_by_default_sends_rays_logs_to_its_files():
    got = _probe("quiet")
    assert got["verbose"] is False and got["train_level"] == "WARNING"
    assert got["env"]["RAY_DATA_LOGGING_CONFIG"] == str(ray_session.RAY_DATA_LOGGING)
    assert got["env"]["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"
    assert ray_session.LOG_FOLDER in got["where"] and "--verbose" in got["where"]


def test_verbose_leaves_rays_logging_as_ray_sets_it():
    got = _probe("verbose")
    assert got["verbose"] is True and got["train_level"] is None and got["where"] == ""
    assert all(got["env"][k] is None for k in ray_session.QUIET_ENV)


def test_a_users_own_setting_is_kept():
    got = _probe("quiet", RAY_TRAIN_ENABLE_PRINT_PATCH="1", DGQA_VERBOSE="0")
    assert got["env"]["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "1"
    assert _probe("quiet", DGQA_VERBOSE="1")["verbose"] is True  # the variable alone turns it on


def test_the_ray_data_logging_config_keeps_the_file_and_quiets_the_console():
    config = yaml.safe_load(ray_session.RAY_DATA_LOGGING.read_text())
    handlers = config["handlers"]
    assert handlers["console"]["level"] == "WARNING"
    assert "level" not in handlers["file"]  # everything still reaches ray-data.log
    assert config["loggers"]["ray.data"]["handlers"] == ["file", "console"]
    # The classes it names exist in the installed Ray (a Ray upgrade that moves them fails here).
    import importlib

    for dotted in (handlers["file"]["class"], handlers["console"]["class"]):
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
