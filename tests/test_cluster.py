"""cluster/: launcher YAMLs and KubeRay manifests checked offline, and a multi-node rehearsal.

Offline (no cloud call, no cluster): every Ray cluster launcher YAML goes through Ray's own
config preparation and schema validation (what ``ray up`` runs before it touches a provider);
every KubeRay manifest is checked for the fields KubeRay requires and refuses, its entrypoint
is parsed by the job's own argument parser and its config loaded; the runtime_envs are Ray's
and match pyproject.toml; token auth is on everywhere and no secret is written down.

The rehearsal (slow): a Ray head plus a second node (its own raylet, ``ray start --address``)
on this machine, token auth on; ``ray job submit`` of the pipeline with two Ray Train workers
spread over the two nodes; each node must have trained images, and submissions without the
right token must be refused.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import ray
import yaml

from dgqa_ray.config import ConfigError, TrainConfig, config_from_args, save_config
from dgqa_ray.tracking import looks_secret
from tests.fixtures.configs import tiny_pipeline_config
from tests.fixtures.datasets import build_custom
from tests.test_scoring import check_scoring
from tests.test_unlabelled_target import check_scored_run, check_unlabelled_run

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER_YAMLS = sorted(p for p in CLUSTER.glob("*.yaml") if p.name != "runtime_env.yaml")
KUBERAY_FILES = sorted((CLUSTER / "kuberay").glob("*.yaml"))
ALL_FILES = [*LAUNCHER_YAMLS, CLUSTER / "runtime_env.yaml", *KUBERAY_FILES]
RAY_TAG = f"{ray.__version__}-py{sys.version_info.major}{sys.version_info.minor}"
"""Image tags must start with this: the nodes' Ray and Python must match the submitter's."""


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _kuberay_docs(kind: str) -> list[tuple[Path, dict]]:
    return [(p, d) for p in KUBERAY_FILES for d in _load_all(p) if d.get("kind") == kind]


def _pyproject_packages_without_ray() -> list[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not re.match(r"ray\b", d)]


def _strings(value):
    """Every string inside a YAML document (keys and values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# --------------------------------------------------------------------------------------------
# Ray cluster launcher YAMLs
# --------------------------------------------------------------------------------------------


def _prepare_and_validate(config: dict) -> dict:
    """What ``ray up`` does with a YAML before any provider call: merge the provider's
    defaults (``prepare_config``), then Ray's JSON schema and consistency checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_there_is_a_launcher_yaml_per_provider():
    providers = {_load(p)["provider"]["type"] for p in LAUNCHER_YAMLS}
    assert providers == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_passes_rays_own_validation(path):
    config = _load(path)
    prepared = _prepare_and_validate(config)
    head = prepared["head_node_type"]
    assert head in prepared["available_node_types"]
    if config["provider"]["type"] != "local":
        workers = {k: v for k, v in prepared["available_node_types"].items() if k != head}
        # An autoscaling GPU group from 0, with the resources stated (no cloud lookup needed).
        assert any(
            v["resources"].get("GPU", 0) >= 1 and v["min_workers"] == 0 for v in workers.values()
        )
        spot = [k for k in workers if "spot" in k]
        assert spot, "a spot option"


def test_validation_is_not_a_formality():
    aws = _load(CLUSTER / "aws-gpu.yaml")
    misspelled = dict(aws, max_worker=3)  # not a field of Ray's schema
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        _prepare_and_validate(misspelled)
    no_resources = copy.deepcopy(aws)
    del no_resources["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(jsonschema.ValidationError, match="resources"):
        _prepare_and_validate(no_resources)
    wrong_head = dict(aws, head_node_type="nope")
    with pytest.raises(ValueError, match="head_node_type"):
        _prepare_and_validate(wrong_head)


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_turns_token_auth_on_on_every_node(path):
    config = _load(path)
    # The token generated on the submitting machine goes to every node, where Ray looks.
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if re.search(r"\bray start\b", c)]
        assert starts, key
        for command in starts:
            assert re.search(r"RAY_AUTH_MODE=token \S*ray start", command), command
        assert not any("--dashboard-host=0.0.0.0" in c for c in config[key])
    docker = config.get("docker")
    if docker:
        # Shells opened in the containers (ray attach, ray exec) are token clients too.
        assert "-e RAY_AUTH_MODE=token" in docker["run_options"]


# --------------------------------------------------------------------------------------------
# Versions, runtime_env and secrets (every file under cluster/)
# --------------------------------------------------------------------------------------------


def test_images_and_ray_versions_match_the_submitting_machine():
    tags = []
    for path in ALL_FILES:
        text = path.read_text()
        tags += re.findall(r"rayproject/ray:([\w.-]+)", text)
        for version in re.findall(r'rayVersion:\s*"?([\w.]+)', text):
            assert version == ray.__version__, path
        for pin in re.findall(r"ray\[[\w,]+\]==([\w.]+)", text):
            assert pin == ray.__version__, path
    assert tags
    assert all(tag.startswith(RAY_TAG) for tag in tags), (RAY_TAG, tags)


def _runtime_envs() -> list[tuple[str, dict]]:
    envs = [("cluster/runtime_env.yaml", _load(CLUSTER / "runtime_env.yaml"))]
    for path, job in _kuberay_docs("RayJob"):
        envs.append((f"{path.name} runtimeEnvYAML", yaml.safe_load(job["spec"]["runtimeEnvYAML"])))
    return envs


@pytest.mark.parametrize(
    "name, env", _runtime_envs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_runtime_env_is_rays_and_installs_the_project_dependencies(name, env):
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**env)  # Ray's own validation of the fields (pip, working_dir, ...)
    assert env["working_dir"]
    # pyproject's dependencies without Ray: the nodes run Ray already, and pip must not
    # replace it (a second Ray in the job's virtualenv breaks the worker).
    assert env["pip"]["packages"] == _pyproject_packages_without_ray(), name
    # Ray shows a job's runtime_env on its dashboard: nothing secret, so no env_vars at all.
    assert "env_vars" not in env, name


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_no_secret_is_written_down(path):
    for doc in _load_all(path):
        for text in _strings(doc):
            assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), path
            for uri in re.findall(r"[a-z][a-z0-9+.-]*://\S+", text):
                assert urlsplit(uri).password is None, f"{path}: a URI with a password"
        # Kubernetes env vars that name a secret take it from a Secret, never a literal.
        for container in _containers(doc):
            for var in container.get("env", []):
                if looks_secret(var["name"]):
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], var


def _containers(doc: dict) -> list[dict]:
    found = []

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("containers"), list):
                found.extend(value["containers"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    return found


# --------------------------------------------------------------------------------------------
# KubeRay manifests
# --------------------------------------------------------------------------------------------


def _dns_label(name: str, max_length: int) -> bool:
    return len(name) <= max_length and bool(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name))


def _check_pod_template(template: dict, where: str) -> dict:
    containers = template["spec"]["containers"]
    assert containers, f"{where}: at least one container"
    ray_container = containers[0]  # KubeRay runs Ray in the first container
    assert ray_container["name"] and ray_container["image"], where
    return ray_container


def check_ray_cluster_spec(spec: dict, where: str) -> None:
    """The checks KubeRay's operator (v1.5-1.7, ``ValidateRayClusterSpec``) and its CRD make,
    plus this project's: token auth on, Ray version stated."""
    assert spec.get("authOptions", {}).get("mode") == "token", f"{where}: token auth"
    assert spec.get("rayVersion"), f"{where}: token auth needs spec.rayVersion (>= 2.52.0)"
    version = tuple(int(x) for x in spec["rayVersion"].split(".")[:3])
    assert version >= (2, 52, 0), where
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict), f"{where}: headGroupSpec.rayStartParams"
    _check_pod_template(head["template"], f"{where} head")
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    groups = spec.get("workerGroupSpecs", [])
    assert groups, f"{where}: a worker group"
    names = [g["groupName"] for g in groups]
    assert all(names) and len(set(names)) == len(names), f"{where}: groupName"
    for group in groups:
        name = f"{where} group {group['groupName']}"
        assert isinstance(group["rayStartParams"], dict), name
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling:
            assert low is not None and high is not None, f"{name}: minReplicas and maxReplicas"
        assert 0 <= low <= group.get("replicas", low) <= high, f"{name}: replicas"
        _check_pod_template(group["template"], name)
        sized_twice = {"num-cpus", "num-gpus", "memory", "resources"} & set(group["rayStartParams"])
        assert not (sized_twice and group.get("resources")), name


@pytest.mark.parametrize("path", KUBERAY_FILES, ids=lambda p: p.name)
def test_kuberay_manifest_required_fields(path):
    docs = _load_all(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"], path
        name = doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "dgqa", path
        if doc["kind"] == "RayCluster":
            assert doc["apiVersion"] == "ray.io/v1"
            assert _dns_label(name, 53), name
            check_ray_cluster_spec(doc["spec"], f"{path.name} {name}")
        elif doc["kind"] == "RayJob":
            spec = doc["spec"]
            assert doc["apiVersion"] == "ray.io/v1"
            assert _dns_label(name, 47), name
            assert spec["entrypoint"].strip()
            assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)
            assert spec["shutdownAfterJobFinishes"] is True  # no idle GPUs left behind
            # Finished jobs' clusters must go away, and not at once (the logs stay readable).
            assert 60 <= spec["ttlSecondsAfterFinished"] <= 86400, spec.get(
                "ttlSecondsAfterFinished"
            )
            check_ray_cluster_spec(spec["rayClusterSpec"], f"{path.name} {name}")
        elif doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
            _check_pod_template(doc["spec"]["template"], name)
        elif doc["kind"] == "Service":
            assert doc["spec"]["selector"] and doc["spec"]["ports"]


@pytest.mark.parametrize("path, job", _kuberay_docs("RayJob"), ids=lambda x: getattr(x, "name", ""))
def test_rayjob_entrypoint_script_exists_and_its_arguments_parse(path, job, monkeypatch):
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "python"
    script = REPO / argv[1]
    assert script.is_file(), f"{path.name}: entrypoint script {argv[1]} is not in the repo"
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.get_args_parser().parse_args(argv[2:])  # exits on an unknown flag
    # The head's MLFLOW_TRACKING_URI is what the job's config resolves to.
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value") for v in head.get("env", [])}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    monkeypatch.chdir(REPO)  # the job runs in its working_dir, the repository
    cfg = config_from_args(args)
    assert cfg.tracking.tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert cfg.storage.startswith("s3://"), "a cluster's storage outlives its nodes"
    # The cluster can hold the Train workers the config asks for.
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    limits = [(g, g["template"]["spec"]["containers"][0]["resources"]["limits"]) for g in groups]
    if cfg.train.use_gpu:
        gpu_slots = sum(g["maxReplicas"] * int(lim.get("nvidia.com/gpu", 0)) for g, lim in limits)
        assert cfg.train.num_workers <= gpu_slots
    assert cfg.train.cpus_per_worker <= max(float(lim["cpu"]) for _, lim in limits)


def test_mlflow_server_command_parses_with_the_installed_mlflow():
    from mlflow.cli import server

    (deployment,) = [d for _, d in _kuberay_docs("Deployment") if d["metadata"]["name"] == "mlflow"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(container["args"])
    argv = shlex.split(command.split("&& exec ", 1)[1])
    assert argv[:2] == ["mlflow", "server"]
    params = server.make_context("server", argv[2:]).params  # click: unknown flags raise
    assert params["app_name"] == "basic-auth"
    assert params["serve_artifacts"] and params["artifacts_destination"].startswith("s3://")
    assert params["backend_store_uri"] is None  # it comes from MLFLOW_BACKEND_STORE_URI
    env = {v["name"]: v for v in container["env"]}
    assert "secretKeyRef" in env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]


def test_docs_cover_every_cluster_file():
    text = (REPO / "docs" / "cluster.md").read_text()
    for path in ALL_FILES:
        assert str(path.relative_to(REPO)) in text, path.name
    assert "docs/cluster.md" in (REPO / "README.md").read_text()


# --------------------------------------------------------------------------------------------
# Config: tracking URI from the environment, placement strategy
# --------------------------------------------------------------------------------------------


def _job_args(*argv: str):
    spec = importlib.util.spec_from_file_location("full_pipeline", REPO / "jobs/full_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_args_parser().parse_args(list(argv))


def test_tracking_uri_precedence_command_line_then_environment_then_file(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert config_from_args(_job_args()).tracking.tracking_uri.startswith("sqlite:///")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.dgqa:5000")
    assert config_from_args(_job_args()).tracking.tracking_uri == "http://mlflow.dgqa:5000"
    flag = _job_args("--set", "tracking.tracking_uri=sqlite:///x.db")
    assert config_from_args(flag).tracking.tracking_uri == "sqlite:///x.db"
    # A password in the URI is refused, naming the variable and never echoing the secret.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:hunter22@mlflow:5000")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI") as error:
        config_from_args(_job_args())
    assert "hunter22" not in str(error.value)


def test_placement_strategy_is_checked():
    assert TrainConfig().placement_strategy == "PACK"
    assert TrainConfig(placement_strategy="SPREAD").placement_strategy == "SPREAD"
    with pytest.raises(ConfigError, match="train.placement_strategy.*PACK, SPREAD"):
        TrainConfig(placement_strategy="EVERYWHERE")


# --------------------------------------------------------------------------------------------
# The multi-node rehearsal
# --------------------------------------------------------------------------------------------


def _submit(cluster, *entrypoint: str, env=None, working_dir: Path | None = None):
    command = ["job", "submit", f"--address={cluster.dashboard_url}"]
    if working_dir is not None:
        command.append(f"--working-dir={working_dir}")
    command += ["--", *entrypoint]
    # Right after `ray start` the dashboard can answer before its job agent registered; Ray
    # says "No available agent" and submits nothing: try again.
    deadline = time.monotonic() + 120
    while True:
        done = cluster.ray(*command, env=env, timeout=900)
        if "No available agent" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


@pytest.mark.slow
def test_rehearsal_two_nodes_train_for_unlabelled_photos_and_no_token_is_refused(
    s3_server, ray_cli_cluster, ray_local, tmp_path, capsys
):
    from dgqa_ray.train import CHECKPOINTS_DIR, latest_progress

    # Head: 2 CPUs (one Train worker + Ray Data's decoding); second node: 1 CPU (one Train
    # worker). SPREAD places the two workers' bundles on different nodes.
    cluster = ray_cli_cluster(head_cpus=2)
    cluster.add_worker(num_cpus=1)
    nodes = cluster.wait_for_nodes(2)
    node_ids = {n["node_id"] for n in nodes}
    assert len(node_ids) == 2

    # Refused: a wrong token, and no token at all.
    wrong = dict(cluster.env, RAY_AUTH_TOKEN="0" * 64)
    none = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    none["RAY_AUTH_MODE"] = "disabled"
    for label, env in (("wrong token", wrong), ("no token", none)):
        refused = _submit(cluster, "python", "-c", "print('should not run')", env=env)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output[-2000:]
        said = re.findall(r".*(?:unauthenticated|authenticat|401).*", output, re.IGNORECASE)
        assert said, output[-2000:]
        assert "should not run" not in refused.stdout
        print(f"refused ({label}, exit {refused.returncode}): {said[-1].strip()[:300]}")

    # The submitted pipeline's target: a user's unlabelled photos (a table with a path
    # column), see tests/test_unlabelled_target.py.
    photos = build_custom(tmp_path / "photos", n_images=8, size=(64, 48))
    cfg = tiny_pipeline_config(
        tmp_path,
        [
            "train.num_workers=2",
            "train.placement_strategy=SPREAD",
            "eval.n_splits=1",
            "eval.baseline=false",
            "data.target_dataset=custom",
            f"data.target_root={photos.root}",
        ],
    )
    config_path = save_config(cfg, str(tmp_path / "tiny.yaml"))
    started = time.monotonic()
    done = _submit(
        cluster, "python", "jobs/full_pipeline.py", "--config", config_path, working_dir=REPO
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "succeeded" in output, output[-4000:]
    print(f"pipeline job on two nodes: {time.monotonic() - started:.0f} s")
    unlabelled = check_unlabelled_run(output, Path(cfg.output_dir) / "runs" / cfg.run_name, photos)

    # Every training of the pipeline ran a worker on each node, and each trained images.
    runs = sorted(p.name for p in (Path(cfg.storage) / CHECKPOINTS_DIR).iterdir() if p.is_dir())
    assert any("classifier" in r for r in runs) and any("regressor" in r for r in runs), runs
    for run in runs:
        latest = latest_progress(cfg.storage, run)
        assert latest is not None, run
        workers = latest[1]["workers"]
        print(run, json.dumps(workers))
        assert {w["node_id"] for w in workers} == node_ids, (run, workers, node_ids)
        assert all(w["images"] > 0 for w in workers), (run, workers)

    # The same photos with their scores named: the finished stages are reused, and the same
    # regressor now gets measured.
    again = _submit(
        cluster,
        "python",
        "jobs/full_pipeline.py",
        "--config",
        config_path,
        "--set",
        "data.target_options.score_column=score",
        working_dir=REPO,
    )
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-4000:]
    run_dir = Path(cfg.output_dir) / "runs" / cfg.run_name
    check_scored_run(output, run_dir, unlabelled)

    # The run's DGQA regressor scores photos with jobs/score.py: by checkpoint over a folder,
    # by its MLflow model over an S3 prefix (tests/test_scoring.py).
    check_scoring(run_dir, Path(photos.folder), config_path, s3_server, capsys)
