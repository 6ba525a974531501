"""The whole pipeline, submitted as a Ray job exactly as the README says.

The README's submit block (``ray start --head``, ``export RAY_AUTH_MODE=token``, ``ray job
submit ... --base-dir "$PWD"``) runs as written, from a copy of the checkout, with its own home
directory (so ``ray start`` writes its token to a fresh ``~/.ray/auth_token``) and a tiny
config with *relative* paths appended; then the report, ``summary.json`` and the MLflow runs
must be where the job said, after the job and Ray's temporary copy of the working directory are
gone, and a second submit of the same command must reuse every stage.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.configs import tiny_pipeline_config
from tests.fixtures.ray_cli import _kill_own_processes
from tests.fixtures.ray_cluster import no_ray_in_this_process

REPO = Path(__file__).resolve().parents[1]


def readme_submit_lines() -> list[str]:
    """The commands of the README's submit block, comments stripped."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- submit:.*?-->\s*```bash\n(.*?)```\s*<!-- end submit -->", text, re.S)
    assert block, "README.md has no submit block (<!-- submit: ... --> ... <!-- end submit -->)"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _checkout_copy(dest: Path) -> Path:
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in tracked:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


NO_AGENT = "No available agent to submit job"
AGENT_PORT = 52365  # Ray's default dashboard agent listen port


def test_the_readme_block_is_what_this_test_runs():
    lines = readme_submit_lines()
    assert lines[0] == "export RAY_AUTH_MODE=token"  # before the cluster starts: auth stays on
    assert lines[1].startswith("ray get-auth-token --generate")
    assert lines[2] == "ray start --head"
    assert lines[-1].startswith("ray job submit --working-dir . -- python jobs/full_pipeline.py")
    assert '--base-dir "$PWD"' in lines[-1]
    assert NO_AGENT in " ".join((REPO / "README.md").read_text().split())  # its cause, told


@pytest.mark.slow
def test_the_readme_submit_runs_and_keeps_its_results(tmp_path):
    repo = _checkout_copy(tmp_path / "checkout")
    home = tmp_path / "home"
    home.mkdir()
    cfg = tiny_pipeline_config(Path("dgqa_output"), ["train.cpus_per_worker=0", "eval.n_splits=1"])
    (repo / "tiny.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    lines = readme_submit_lines()
    submit = lines[-1] + " --config tiny.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    # The session's local Ray (other tests') is stopped meanwhile: its dashboard agent holds
    # the agent port, and `ray start --head` would then never accept a job ("No available
    # agent"), as the README says.
    with no_ray_in_this_process():
        for port in (6379, 8265, AGENT_PORT):
            assert _port_free(port), f"port {port} is taken: `ray start --head` needs its defaults"
        _submit_and_check(repo, lines, submit, env, cfg)


def _submit_and_check(repo: Path, lines: list[str], submit: str, env: dict[str, str], cfg) -> None:
    import mlflow

    home = env["HOME"]
    marker = f"HOME={home}".encode()
    current = Path("/tmp/ray/ray_current_cluster")  # `ray start` records its address here
    before = current.read_text() if current.is_file() else None
    script = " && ".join([*lines[:-1], submit])
    try:
        first = subprocess.run(
            ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=900
        )
        out = first.stdout + first.stderr
        assert first.returncode == 0, out[-5000:]
        assert "succeeded" in out, out[-5000:]
        assert "Token authentication is disabled" not in out  # the cluster kept auth on
        print("first submit, console tail:\n" + out[-2500:])  # shown with pytest -rP
        run_dir = repo / "dgqa_output" / "out" / "runs" / "tiny"
        assert f"results in {run_dir}" in out  # the absolute location, not Ray's temp copy
        db = repo / "dgqa_output" / "mlflow.db"
        assert f"MLflow UI: mlflow ui --backend-store-uri sqlite:///{db}" in out
        assert "train.cpus_per_worker=0: 1 worker(s) x 1 CPU" in out or "x 2 CPU" in out

        summary = json.loads((run_dir / "summary.json").read_text())
        assert 0.0 <= summary["classifier_val_accuracy"] <= summary["classifier_val_top3_accuracy"]
        assert summary["target_types"] == sorted(summary["target_types"])
        assert set(summary["selected"]) <= set(range(1, 26)) and summary["n_splits"] == 1
        for key in ("baseline_srcc", "dgqa_srcc"):
            assert -1.0 <= summary[key] <= 1.0, key
        assert summary["oracle_srcc"] is None  # eval.oracle is off in the tiny config
        assert (run_dir / "report.md").is_file()
        assert "proxies" in (run_dir / "report.md").read_text()

        client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
        experiment = client.get_experiment_by_name(cfg.tracking.experiment_name)
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        parent = parents[0]
        selected = parent.data.params["selected_types"].split(",")
        assert [int(t) for t in selected] == summary["selected"]
        for key in ("target_srcc_baseline", "target_srcc_dgqa", "target_plcc_dgqa", "n_selected"):
            assert key in parent.data.metrics, key
        children = {r.data.tags.get("mlflow.runName"): r for r in runs if r is not parent}
        assert {"classifier", "selection"} <= set(children)
        assert children["selection"].data.params["selected_types"] == ",".join(selected)
        regressors = [n for n in children if n and "regressor" in n]
        assert len(regressors) == 2  # 1 split x (baseline, dgqa)

        # A resubmission reusing every finished stage is checked by the two-node rehearsal
        # (tests/test_cluster.py), which submits the pipeline a second time.
    finally:
        _kill_own_processes([], marker)
        # A stale address file would make every later `ray.init()` "connect" to this dead
        # cluster; `ray stop` would remove it, but it stops every Ray on the machine.
        if current.is_file() and current.read_text() != before:
            current.unlink()


def test_regressor_variants_add_the_oracle_only_when_the_truth_is_known():
    from dgqa_ray.config import load_config
    from dgqa_ray.pipeline import regressor_variants

    cfg = load_config("demo")
    assert regressor_variants(cfg, [3, 1], [1, 3, 10]) == {
        "baseline": None,
        "dgqa": [3, 1],
        "oracle": [1, 3, 10],
    }
    assert "oracle" not in regressor_variants(cfg, [3], None)  # a real target: no truth
    off = load_config("demo", ["eval.oracle=false"])
    assert "oracle" not in regressor_variants(off, [3], [3])


def test_regressor_run_names_change_with_the_types_they_train_on():
    from dgqa_ray.pipeline import regressor_run_name

    assert regressor_run_name("demo", "baseline", None, 0) == "demo-regressor-baseline-split0"
    assert regressor_run_name("demo", "dgqa", [17, 3, 1], 2) == "demo-regressor-dgqa-1-3-17-split2"
    # another selection is another run (a rerun never resumes a regressor on other types) ...
    assert regressor_run_name("demo", "dgqa", [1, 3], 0) != regressor_run_name(
        "demo", "dgqa", [1, 3, 17], 0
    )
    # ... and a long set is hashed, staying a valid run name
    long = regressor_run_name("demo", "dgqa", list(range(1, 25)), 0)
    assert re.fullmatch(r"demo-regressor-dgqa-h[0-9a-f]{10}-split0", long)


def test_summary_json_holds_the_run_figures(tmp_path):
    import json

    import pandas as pd

    from dgqa_ray.config import load_config
    from dgqa_ray.pipeline import write_summary
    from dgqa_ray.train import TrainResult

    history = [
        {"epoch": 0.0, "val_accuracy": 0.30, "val_top3_accuracy": 0.50},
        {"epoch": 1.0, "val_accuracy": 0.40, "val_top3_accuracy": 0.70},
    ]
    classifier = TrainResult(
        "classifier", "c", "d", "best", "last", history, history[-1], history[-1], 2
    )
    per_split = pd.DataFrame(
        {
            "variant": ["baseline", "dgqa", "baseline", "dgqa"],
            "split": [0, 0, 1, 1],
            "srcc": [0.2, 0.4, 0.3, 0.5],
            "plcc": [0.1, 0.2, 0.3, 0.4],
        }
    )
    path = write_summary(
        tmp_path,
        load_config("demo"),
        classifier,
        [1, 3, 7],
        "mean_prob",
        [1, 3, 10],
        per_split,
        12.3,
    )
    summary = json.loads(Path(path).read_text())
    assert summary["classifier_val_accuracy"] == 0.40 and summary["classifier_best_epoch"] == 2
    assert summary["baseline_srcc"] == 0.25 and summary["dgqa_srcc"] == 0.45
    assert summary["oracle_srcc"] is None and summary["n_splits"] == 2
    assert summary["selection_precision"] == round(2 / 3, 4) and summary[
        "selection_recall"
    ] == round(2 / 3, 4)
    assert summary["selected"] == [1, 3, 7] and summary["wall_seconds"] == 12.3
