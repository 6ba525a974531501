"""Bad input at every entry point: one table of cases, each fed to a job's ``main(argv)``.

For every case the job must exit with the expected status, name the culprit in its message,
never echo a secret it was given, start no Ray (the refusal comes before any compute: ``ray.init``
is made to fail the test) and leave nothing half-written (no manifest, checkpoint or report
under the case's folder). ``test_the_suite_covers_every_entry_point`` prints the count.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.datasets import build_custom, build_kadid

SECRET = "SeCrEt9x7q"
KEY = "AKIAFAKEKEY123"
S3_WITH_SECRET = f"s3://{KEY}:{SECRET}@bucket/prefix"


@dataclass(frozen=True)
class Case:
    job: str  # module under jobs/
    argv: tuple[str, ...]  # {tmp}, {kadid}, {custom} ... are filled in per run
    rc: int
    says: tuple[str, ...]  # substrings of the output (stderr + stdout)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.job}:{' '.join(self.argv)[:60]}"


def _case(job, argv, rc, *says, env=None):
    return Case(job, tuple(argv), rc, tuple(says), env or {})


ING = "ingest"
CUSTOM_ROOT = ("--dataset", "custom", "--root")
CASES: list[Case] = [
    # -- jobs/ingest.py --------------------------------------------------------------------------
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", S3_WITH_SECRET, "--storage", "{tmp}/s"],
        2,
        "--root: the URI carries credentials",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "{kadid}", "--storage", S3_WITH_SECRET],
        2,
        "--storage: the URI carries credentials",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            f"s3://bucket/x?token={SECRET}",
        ],
        2,
        "--storage: the URI carries credentials",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "ftp://host/kadid", "--storage", "{tmp}/s"],
        2,
        "--root: invalid URI scheme",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "{tmp}/nowhere", "--storage", "{tmp}/s"],
        2,
        "nowhere",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "{broken_kadid}", "--storage", "{tmp}/s"],
        2,
        "dmos.csv",
        "dmos",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "{empty_kadid}", "--storage", "{tmp}/s"],
        2,
        "dmos.csv",
    ),
    _case(
        ING,
        ["--dataset", "nope", "--root", "{kadid}", "--storage", "{tmp}/s"],
        2,
        "invalid choice: 'nope'",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            "{tmp}/s",
            "--option",
            "bogus=1",
        ],
        2,
        "bogus",
        "Options it takes",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            "{tmp}/s",
            "--option",
            "novalue",
        ],
        2,
        "--option: expected KEY=VALUE",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            "{tmp}/s",
            "--shard-size-mb",
            "0",
        ],
        2,
        "--shard-size-mb",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            "{tmp}/s",
            "--max-bad-fraction",
            "2",
        ],
        2,
        "--max-bad-fraction",
    ),
    _case(
        ING,
        ["--dataset", "kadid10k", "--root", "{kadid}", "--storage", "{tmp}/s", "--num-cpus", "0"],
        2,
        "--num-cpus",
    ),
    _case(
        ING,
        [
            "--dataset",
            "kadid10k",
            "--root",
            "{kadid}",
            "--storage",
            "{tmp}/s",
            "--max-megapixels",
            "0",
        ],
        2,
        "--max-megapixels",
    ),
    _case(ING, [*CUSTOM_ROOT, "{tmp}/missing.csv", "--storage", "{tmp}/s"], 2, "missing.csv"),
    _case(ING, [*CUSTOM_ROOT, "{tmp}/table.txt", "--storage", "{tmp}/s"], 2, "table.txt"),
    _case(
        ING,
        [*CUSTOM_ROOT, "{custom}", "--storage", "{tmp}/s", "--option", "path_column=file"],
        2,
        "file",
    ),
    _case(
        ING,
        [*CUSTOM_ROOT, "{custom_missing_image}", "--storage", "{tmp}/s"],
        2,
        "missing",
        "gone.png",
    ),
    _case(
        ING,
        [
            *CUSTOM_ROOT,
            "{custom_duplicates}",
            "--storage",
            "{tmp}/s",
            "--option",
            "id_column=image_id",
        ],
        2,
        "duplicate image_id",
        "'a' in rows 1, 3",
        "rows",
    ),
    _case(
        ING,
        [
            *CUSTOM_ROOT,
            "{custom_bad_score}",
            "--storage",
            "{tmp}/s",
            "--option",
            "score_column=score",
        ],
        2,
        "score",
    ),
    _case(ING, [*CUSTOM_ROOT, "{custom_empty}", "--storage", "{tmp}/s"], 2, "empty"),
    # -- jobs/train_regressor.py and jobs/train_classifier.py ----------------------------------
    _case("train_regressor", ["--storage", S3_WITH_SECRET], 2, "--storage: the URI carries"),
    _case(
        "train_regressor",
        ["--storage", "{tmp}/s", "--run-name", "../escape"],
        2,
        "--run-name: invalid value '../escape'",
    ),
    _case(
        "train_regressor",
        ["--storage", "{tmp}/s", "--run-name", ".hidden"],
        2,
        "--run-name: invalid value '.hidden'",
    ),
    _case(
        "train_regressor",
        ["--storage", "{tmp}/s", "--run-name", "a/b"],
        2,
        "--run-name: invalid value 'a/b'",
    ),
    _case(
        "train_regressor",
        ["--storage", "{tmp}/s", "--dataset", "../kadid10k"],
        2,
        "--dataset: invalid value",
    ),
    _case(
        "train_regressor", ["--storage", "{tmp}/s", "--dataset", "kadid10k"], 2, "has no manifest"
    ),
    _case("train_regressor", ["--storage", "{tmp}/s", "--dist-types", "0,26"], 2, "--dist-types"),
    _case("train_regressor", ["--storage", "{tmp}/s", "--dist-types", "blurry"], 2, "blurry"),
    _case("train_regressor", ["--set", "train.lr=fast"], 2, "--set: train.lr: expected a number"),
    _case("train_regressor", ["--config", "{tmp}/absent.yaml"], 2, "absent.yaml"),
    _case("train_regressor", ["--set", "trian.lr=1"], 2, "unknown section 'trian'"),
    _case("train_classifier", ["--storage", S3_WITH_SECRET], 2, "--storage: the URI carries"),
    _case(
        "train_classifier",
        ["--set", "model.backbone=resnet19"],
        2,
        "model.backbone",
        "did you mean resnet18",
    ),
    _case(
        "train_classifier",
        ["--storage", "{tmp}/s", "--run-name", "../../x"],
        2,
        "--run-name: invalid value",
    ),
    _case(
        "train_classifier", ["--storage", "{tmp}/s", "--dataset", "kadis700k"], 2, "has no manifest"
    ),
    # -- jobs/full_pipeline.py -------------------------------------------------------------------
    _case(
        "full_pipeline",
        ["--set", "data.target_dataset=livec", "--set", "data.target_root={tmp}/nowhere"],
        2,
        "data.target_root",
        "livec",
        "nowhere",
    ),
    _case(
        "full_pipeline",
        ["--set", "data.source_dataset=kadid10k", "--set", "data.source_root={broken_kadid}"],
        2,
        "data.source_root",
        "dmos.csv",
    ),
    _case(
        "full_pipeline",
        [
            "--set",
            "data.classifier_dataset=kadis700k",
            "--set",
            "data.classifier_root={tmp}/nowhere",
        ],
        2,
        "data.classifier_root",
    ),
    _case(
        "full_pipeline",
        ["--set", f"storage={S3_WITH_SECRET}"],
        2,
        "storage: the URI carries credentials",
    ),
    _case(
        "full_pipeline",
        ["--set", f"tracking.tracking_uri=postgresql://u:{SECRET}@h/db"],
        2,
        "tracking.tracking_uri: the URI carries credentials",
    ),
    _case(
        "full_pipeline",
        [],
        2,
        "MLFLOW_TRACKING_URI (environment)",
        env={"MLFLOW_TRACKING_URI": f"https://user:{SECRET}@mlflow.example.com"},
    ),
    _case("full_pipeline", ["--set", "run_name=../x"], 2, "run_name: invalid value '../x'"),
    _case(
        "full_pipeline",
        ["--set", "data.target_dataset=custom", "--set", "data.target_root={tmp}/absent.csv"],
        2,
        "data.target_root",
        "absent.csv",
    ),
    _case(
        "full_pipeline",
        [
            "--set",
            "data.target_dataset=custom",
            "--set",
            "data.target_root={custom}",
            "--set",
            "data.target_options.score_column=quality",
        ],
        2,
        "data.target_root",
        "quality",
    ),
    _case(
        "full_pipeline",
        ["--set", "data.target_dataset=custom", "--set", "data.target_options.bogus=1"],
        2,
        "data.target_options",
        "bogus",
        "path_column",
    ),
    _case(
        "full_pipeline",
        ["--set", "data.target_options.score_column=x"],
        2,
        "data.target_options",
        "embedded",
    ),
    _case("full_pipeline", ["--redo", "everything"], 2, "invalid choice: 'everything'"),
    _case("full_pipeline", ["--set", "data.crop_size=200"], 2, "data.crop_size: 200"),
    _case("full_pipeline", ["--set", "eval.n_splits=0"], 2, "eval.n_splits"),
    _case("full_pipeline", ["--set", "selection.tau=2"], 2, "selection.tau"),
    _case(
        "full_pipeline",
        ["--set", "train.batch_size=33", "--set", "train.num_workers=2"],
        2,
        "train.batch_size: 33 is not divisible",
    ),
    _case("full_pipeline", ["--config", "{bad_yaml}"], 2, "couldn't parse YAML", "bad.yaml"),
    _case("full_pipeline", ["--config", "{list_yaml}"], 2, "expected a mapping", "list.yaml"),
    # A run config from before the demo section: each old key is named with its new one.
    _case(
        "full_pipeline",
        ["--config", "{old_yaml}"],
        2,
        "old_run.yaml: data.embedded_tile: moved to demo.tile; "
        "data.embedded_seed: moved to demo.seed",
    ),
    _case(
        "full_pipeline",
        ["--set", "data.embedded_source_refs=3"],
        2,
        "--set data.embedded_source_refs: moved to demo.source_refs",
    ),
    _case(
        "full_pipeline",
        ["--base-dir", f"s3://{KEY}:{SECRET}@b/x"],
        2,
        "--base-dir: expected a local folder",
    ),
    _case("full_pipeline", ["--set", "train.cpus_per_worker=-1"], 2, "train.cpus_per_worker"),
    _case("full_pipeline", ["--set", "data.classifier_view=live"], 2, "data.classifier_view"),
    # -- jobs/select_domains.py ----------------------------------------------------------------
    _case("select_domains", ["--checkpoint", S3_WITH_SECRET], 2, "--checkpoint: the URI carries"),
    _case(
        "select_domains",
        ["--target-storage", S3_WITH_SECRET, "--checkpoint", "{tmp}"],
        2,
        "--target-storage: the URI carries",
    ),
    _case(
        "select_domains",
        ["--target-dataset", "../up", "--checkpoint", "{tmp}"],
        2,
        "--target-dataset: invalid value",
    ),
    _case("select_domains", ["--set", "storage={tmp}/s"], 2, "--checkpoint: not given"),
    _case(
        "select_domains",
        ["--checkpoint", "{tmp}", "--set", "storage={tmp}/s"],
        2,
        "has no manifest",
    ),
    # -- jobs/synthesize.py --------------------------------------------------------------------
    _case("synthesize", ["--refs", "{tmp}/no_refs"], 2, "no_refs"),
    _case("synthesize", ["--out", S3_WITH_SECRET], 2, "--out: the URI carries credentials"),
    _case("synthesize", ["--out", "s3://bucket/kadid"], 2, "--out: expected a local folder"),
    _case("synthesize", ["--style", "tid2013"], 2, "invalid choice: 'tid2013'"),
    _case("synthesize", ["--types", "0,30"], 2, "--types"),
    _case("synthesize", ["--max-refs", "0"], 2, "--max-refs"),
    _case("synthesize", ["--kadis-table", "{tmp}/t.csv"], 2, "--kadis-table: only with --style"),
    # -- jobs/tune_tau.py and jobs/gds_search.py -------------------------------------------------
    _case("tune_tau", ["--name", "../x"], 2, "--name: invalid value '../x'"),
    _case("tune_tau", ["--set", "search.taus=[2]"], 2, "search.taus"),
    _case("tune_tau", ["--set", "search.splits=9"], 2, "search.splits: 9 exceeds"),
    _case(
        "tune_tau",
        ["--set", "data.target_dataset=livec", "--set", "data.target_root={tmp}/nowhere"],
        2,
        "data.target_root",
    ),
    _case("gds_search", ["--set", "search.gds_candidates=[0]"], 2, "search.gds_candidates"),
    _case("gds_search", ["--set", "search.gds_start=full"], 2, "search.gds_start"),
    _case("gds_search", ["--name", ".x"], 2, "--name: invalid value"),
    *(  # a custom table without data.target_options.score_column: nothing to rank by
        _case(
            job,
            ["--set", "data.target_dataset=custom", "--set", "data.target_root={custom}"],
            2,
            "the target has no scores",
            "data.target_options.score_column",
            f"{search} ranks by target SRCC",
        )
        for job, search in (("tune_tau", "a tau sweep"), ("gds_search", "a greedy domain search"))
    ),
    # -- jobs/score.py: the model, the images and the output are checked before Ray starts -----
    *(
        _case("score", [*argv, *rest], 2, *says)
        for argv, rest, says in (
            (
                ["--model", "{tmp}/nowhere"],
                ["--images", "{custom_folder}"],
                ["--model: nothing at"],
            ),
            (["--model", S3_WITH_SECRET], ["--images", "{custom_folder}"], ["--model: the URI"]),
            (
                ["--model", "{classifier_checkpoint}"],
                ["--images", "{custom_folder}"],
                ["is a classifier model", "needs a quality regressor"],
            ),
            (
                ["--model", "{broken_checkpoint}"],
                ["--images", "{custom_folder}"],
                ["couldn't load", "state.pt"],
            ),
            (
                ["--model", "runs:/0123456789abcdef/model"],
                [
                    "--images",
                    "{custom_folder}",
                    "--set",
                    "tracking.tracking_uri=sqlite:///{tmp}/m.db",
                ],
                ["couldn't open the MLflow model 'runs:/0123456789abcdef/model'"],
            ),
            (["--model", "{regressor_checkpoint}"], ["--images", "{tmp}/nowhere"], ["no folder"]),
            (["--model", "{regressor_checkpoint}"], ["--images", "{table_txt}"], ["is a file"]),
            (["--model", "{regressor_checkpoint}"], ["--images", "{empty_folder}"], ["no images"]),
            (
                ["--model", "{regressor_checkpoint}"],
                ["--images", "{custom_missing_image}"],
                ["photos/gone.png"],
            ),
            (
                ["--model", "{regressor_checkpoint}"],
                ["--images", "{custom_folder}", "--max-bad-fraction", "1.5"],
                ["--max-bad-fraction: expected a number in [0, 1)"],
            ),
        )
        for argv, rest in [(argv, [*rest, "--out", "{tmp}/scores.csv"])]
    ),
    _case(
        "score",
        [
            "--model",
            "{regressor_checkpoint}",
            "--images",
            "{custom_folder}",
            "--out",
            "{tmp}/s.txt",
        ],
        2,
        "--out: ",
        "must end in .csv, .parquet or .pq",
    ),
    _case("score", ["--images", "{custom_folder}", "--out", "{tmp}/s.csv"], 2, "--model"),
    # -- jobs/heldout_check.py and jobs/benchmark.py ---------------------------------------------
    _case("heldout_check", ["--set", "demo.tile=4,4"], 2, "demo.tile"),
    _case("heldout_check", ["--set", f"storage={S3_WITH_SECRET}"], 2, "storage: the URI carries"),
    _case("benchmark", ["ablation", "--rows", "demo,nope"], 2, "unknown rows ['nope']"),
    _case("benchmark", ["ablation", "--set", "train.lr=fast"], 2, "train.lr"),
    _case("benchmark", ["distortions", "--types", "99"], 2, "--types"),
    _case("benchmark", ["inference", "--images", "8"], 2, "--images: expected more than 8"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """The files the cases point at, made once: good datasets and broken ones."""
    base = tmp_path_factory.mktemp("bad_input_data")
    kadid = build_kadid(base / "kadid")
    broken = build_kadid(base / "broken_kadid")
    Path(broken.folder, "dmos.csv").write_text("dist_img,ref_img\nI01_01_01.png,I01.png\n")
    empty = build_kadid(base / "empty_kadid")
    Path(empty.folder, "dmos.csv").write_text("")
    custom = build_custom(base / "custom")
    table = pd.read_csv(custom.root)

    def variant(name: str, frame: pd.DataFrame) -> str:
        path = Path(custom.folder) / f"{name}.csv"
        frame.to_csv(path, index=False)
        return str(path)

    missing = table.copy()
    missing.loc[1, "path"] = "photos/gone.png"
    duplicates = table.copy()
    duplicates["image_id"] = ["a", "b", "a", "c", "d", "e"]
    bad_score = table.copy().astype({"score": object})
    bad_score.loc[2, "score"] = "great"
    (base / "bad.yaml").write_text("train: {lr: [unclosed\n")
    (base / "list.yaml").write_text("- train\n- model\n")
    (base / "old_run.yaml").write_text("data:\n  embedded_tile: [96, 128]\n  embedded_seed: 0\n")
    (base / "table.txt").write_text("path\nx.png\n")
    (base / "empty_folder").mkdir()
    checkpoints = _checkpoints(base / "checkpoints")
    return {
        **checkpoints,
        "custom_folder": str(Path(custom.folder) / "photos"),
        "empty_folder": str(base / "empty_folder"),
        "kadid": kadid.root,
        "broken_kadid": broken.root,
        "empty_kadid": empty.root,
        "custom": custom.root,
        "custom_missing_image": variant("missing", missing),
        "custom_duplicates": variant("duplicates", duplicates),
        "custom_bad_score": variant("bad_score", bad_score),
        "custom_empty": variant("empty", table.iloc[:0]),
        "bad_yaml": str(base / "bad.yaml"),
        "list_yaml": str(base / "list.yaml"),
        "old_yaml": str(base / "old_run.yaml"),
        "table_txt": str(base / "table.txt"),
    }


def _checkpoints(base: Path) -> dict[str, str]:
    """Checkpoint folders as ``train/worker.py`` writes them: a regressor's (random weights), a
    classifier's, and one whose weights file is not a torch file."""
    import json

    import torch

    from dgqa_ray.config import load_config
    from dgqa_ray.models import create_regressor
    from dgqa_ray.train import PROGRESS_FILE, STATE_FILE

    model_cfg = load_config("demo").model
    folders = {}
    for name, task in (
        ("regressor", "regressor"),
        ("classifier", "classifier"),
        ("broken", "regressor"),
    ):
        folder = base / name / "epoch_001"
        folder.mkdir(parents=True)
        progress = {"task": task, "backbone": model_cfg.backbone, "crop_size": 32}
        (folder / PROGRESS_FILE).write_text(json.dumps(progress))
        weights = folder / STATE_FILE
        if name == "regressor":
            torch.save(
                {"model": create_regressor(model_cfg, load_weights=False).state_dict()}, weights
            )
        else:
            weights.write_bytes(b"not a torch file")
        folders[f"{name}_checkpoint"] = str(folder)
    return folders


def _run(case: Case, inputs: dict[str, str], tmp: Path, monkeypatch, capsys) -> tuple[int, str]:
    import ray

    def refuse_ray(*args, **kwargs):
        raise AssertionError("Ray was started before the bad input was refused")

    monkeypatch.setattr(ray, "init", refuse_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp)
    values = {**inputs, "tmp": str(tmp)}
    argv = [a.format(**values) for a in case.argv]
    module = importlib.import_module(f"jobs.{case.job}")
    try:
        rc = module.main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_safely(case, inputs, tmp_path, monkeypatch, capsys):
    rc, output = _run(case, inputs, tmp_path, monkeypatch, capsys)
    assert rc == case.rc, output[-3000:]
    for text in case.says:
        assert text in output, f"{text!r} not in:\n{output[-3000:]}"
    assert SECRET not in output and KEY not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    half_written = [
        p
        for p in tmp_path.rglob("*")
        if p.name in ("manifest.json", "state.pt", "summary.json", "scores.csv")
    ]
    assert not half_written, half_written


def test_the_suite_covers_every_entry_point():
    per_job = Counter(c.job for c in CASES)
    jobs = {p.stem for p in Path("jobs").glob("*.py")} - {"config_reference", "distortion_grid"}
    print(f"\nbad-input cases: {len(CASES)} over {len(per_job)} entry points: {dict(per_job)}")
    assert set(per_job) == jobs, sorted(jobs - set(per_job))
    assert len(CASES) >= 60
