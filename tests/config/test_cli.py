"""A job's command line (``dgqa_ray/config/cli.py``): ``--config``, ``--set`` and the
resolved config. (``--base-dir``, ``MLFLOW_TRACKING_URI`` and ``ray job submit``:
tests/test_cluster.py.)"""

from __future__ import annotations

import argparse

from dgqa_ray.config import add_config_arguments, config_from_args


def test_argparse_helpers():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        ["--config", "paper", "--set", "train.epochs=2", "--set", "run_name=x"]
    )
    cfg = config_from_args(args)
    assert cfg.model.backbone == "resnet50" and cfg.train.epochs == 2 and cfg.run_name == "x"
    assert config_from_args(parser.parse_args([])).run_name == "demo"


def test_the_demo_section_comes_from_set_on_the_command_line():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--set", "demo.seed=7", "--set", "demo.tile=64,64"]))
    assert cfg.demo.seed == 7 and cfg.demo.tile == (64, 64)
