"""The plain-torch training step, prediction, crop averaging and evaluation (no Ray)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dgqa_ray.config import ModelConfig, TrainConfig
from dgqa_ray.engine import (
    average_by_image,
    batch_targets,
    create_loss,
    create_optimizer,
    evaluate_classifier,
    evaluate_regressor,
    per_image_predictions,
    predict,
    predict_scores,
    regression_metrics,
    restore_training_state,
    train_one_epoch,
    training_state,
)
from dgqa_ray.models import create_classifier, create_regressor

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    # 32x32 inputs are too small to split over threads: one thread is faster, and steadier
    # when other test processes share the cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TINY = ModelConfig(backbone="resnet18", channels_last=False)


def make_batches(n_batches=3, batch=2, size=32, crops=1, seed=0, as_torch=False):
    """Batches as Ray Data yields them; with ``crops`` > 1, consecutive rows share an image."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        ids = np.array([f"img{(b * batch + i) // crops:03d}" for i in range(batch)])
        scores = np.array([hash(i) % 97 / 10.0 for i in ids])  # the same per image
        batch_dict = {
            "image": rng.integers(0, 256, size=(batch, 3, size, size), dtype=np.uint8),
            "score": scores,
            "dist_type": rng.integers(1, 26, size=batch),
            "image_id": ids,
        }
        if as_torch:
            batch_dict = {
                k: (torch.from_numpy(v) if k != "image_id" else v) for k, v in batch_dict.items()
            }
        out.append(batch_dict)
    return out


@pytest.fixture
def regressor():
    torch.manual_seed(0)
    return create_regressor(TINY)


def test_regressor_training_reduces_loss(regressor):
    batches = make_batches(n_batches=2, batch=4)
    optimizer = create_optimizer(TrainConfig(lr=1e-3, use_gpu=False), regressor)
    loss_fn = create_loss("regressor")
    first = train_one_epoch(regressor, batches, optimizer, loss_fn, CPU, task="regressor")
    for _ in range(12):
        last = train_one_epoch(regressor, batches, optimizer, loss_fn, CPU, task="regressor")
    assert last["loss"] < 0.5 * first["loss"]
    assert first["images"] == 8 and first["batches"] == 2
    assert first["seconds"] > 0 and first["images_per_second"] > 0
    assert 0 <= first["data_seconds"] <= first["seconds"]
    assert "accuracy" not in first


@pytest.mark.parametrize("num_classes", [25, 26])
def test_classifier_epoch_reports_accuracy(num_classes):
    torch.manual_seed(0)
    model = create_classifier(ModelConfig(backbone="resnet18", num_classes=num_classes))
    batches = make_batches(as_torch=True)  # iter_torch_batches format
    if num_classes == 26:
        batches[0]["dist_type"][0] = 0  # a pristine image
    optimizer = create_optimizer(TrainConfig(use_gpu=False), model)
    stats_ = train_one_epoch(
        model,
        batches,
        optimizer,
        create_loss("classifier"),
        CPU,
        task="classifier",
        num_classes=num_classes,
    )
    assert 0.0 <= stats_["accuracy"] <= 1.0 and np.isfinite(stats_["loss"])
    ev = evaluate_classifier(model, batches, CPU, num_classes=num_classes)
    assert ev["n"] == 6 and 0.0 <= ev["accuracy"] <= 1.0 and ev["loss"] > 0


def test_training_options(regressor):
    batches = make_batches(n_batches=4)
    optimizer = create_optimizer(TrainConfig(use_gpu=False), regressor)
    loss_fn = create_loss("regressor")
    stats_ = train_one_epoch(
        regressor, iter(batches), optimizer, loss_fn, CPU, task="regressor", max_batches=2
    )
    assert stats_["batches"] == 2 and stats_["images"] == 4
    # bf16 autocast and channels_last also run on CPU (the GPU settings, exercised here).
    cl = regressor.to(memory_format=torch.channels_last)
    stats_ = train_one_epoch(
        cl,
        batches,
        optimizer,
        loss_fn,
        CPU,
        task="regressor",
        amp_dtype=torch.bfloat16,
        channels_last=True,
    )
    assert np.isfinite(stats_["loss"])
    empty = train_one_epoch(regressor, [], optimizer, loss_fn, CPU, task="regressor")
    assert empty["images"] == 0 and np.isnan(empty["loss"])


def test_a_one_image_batch_is_skipped_not_fed_to_batch_norm(regressor):
    # A shard's last batch can hold one image; BatchNorm raises on it in training mode.
    batches = make_batches(n_batches=2, batch=3) + make_batches(n_batches=1, batch=1, seed=1)
    optimizer = create_optimizer(TrainConfig(use_gpu=False), regressor)
    stats_ = train_one_epoch(
        regressor, batches, optimizer, create_loss("regressor"), CPU, task="regressor"
    )
    assert stats_["batches"] == 2 and stats_["images"] == 6 and np.isfinite(stats_["loss"])


def test_task_and_batch_errors(regressor):
    optimizer = create_optimizer(TrainConfig(use_gpu=False), regressor)
    with pytest.raises(ValueError, match="task: invalid value 'ranking'"):
        train_one_epoch(regressor, [], optimizer, torch.nn.L1Loss(), CPU, task="ranking")
    bad = [{"image": np.zeros((2, 3, 32, 32), np.uint8), "image_id": np.array(["a", "b"])}]
    with pytest.raises(KeyError, match="missing column 'score'"):
        train_one_epoch(regressor, bad, optimizer, torch.nn.L1Loss(), CPU, task="regressor")
    with pytest.raises(ValueError, match="pristine images need num_classes=26"):
        batch_targets({"dist_type": np.array([0, 1])}, "classifier", CPU, 25)


def test_batch_targets():
    batch = {"dist_type": np.array([1, 25]), "score": np.array([1.5, 7.0])}
    assert batch_targets(batch, "classifier", CPU).tolist() == [0, 24]
    assert batch_targets(batch, "classifier", CPU, 26).tolist() == [1, 25]
    scores = batch_targets(batch, "regressor", CPU)
    assert scores.dtype == torch.float32 and scores.tolist() == [1.5, 7.0]


def test_create_optimizer():
    model = torch.nn.Linear(3, 1)
    adam = create_optimizer(TrainConfig(use_gpu=False), model)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.defaults["lr"] == 2e-5 and adam.defaults["weight_decay"] == 5e-4
    assert isinstance(create_optimizer(TrainConfig(optimizer="adamw"), model), torch.optim.AdamW)
    sgd = create_optimizer(TrainConfig(optimizer="sgd", lr=0.1), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        create_optimizer(TrainConfig(), frozen)


def test_losses():
    assert isinstance(create_loss("classifier"), torch.nn.CrossEntropyLoss)
    assert isinstance(create_loss("regressor"), torch.nn.L1Loss)


def test_average_by_image():
    ids = np.array(["b", "a", "b", "a", "c"])
    ids_out, means = average_by_image(ids, np.array([1.0, 2.0, 3.0, 6.0, 5.0]))
    assert ids_out.tolist() == ["b", "a", "c"]  # order of first appearance
    np.testing.assert_allclose(means, [2.0, 4.0, 5.0])
    ids_out, means = average_by_image([b"x", b"x"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert ids_out.tolist() == ["x"]
    np.testing.assert_allclose(means, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="lengths differ"):
        average_by_image(["a"], np.zeros(2))


def test_predict_shapes_and_crop_averaging(regressor):
    batches = make_batches(n_batches=3, batch=4, crops=2)  # 12 crops of 6 images
    ids, outputs = predict(regressor, batches, CPU)
    assert ids.shape == (12,) and outputs.shape == (12,) and outputs.dtype == np.float32
    image_ids, means = average_by_image(ids, outputs)
    assert len(image_ids) == 6
    np.testing.assert_allclose(means[0], outputs[:2].mean(), rtol=1e-6)

    torch.manual_seed(0)
    classifier = create_classifier(TINY)
    ids, logits = predict(classifier, batches, CPU)
    assert logits.shape == (12, 25)
    _, probs = predict(classifier, batches, CPU, softmax=True)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Predictions are deterministic (eval mode: no dropout, BN running stats).
    np.testing.assert_array_equal(predict(classifier, batches, CPU)[1], logits)


def test_evaluate_regressor_matches_scipy_on_averaged_crops(regressor):
    batches = make_batches(n_batches=4, batch=4, crops=2, seed=1)
    metrics = evaluate_regressor(regressor, batches, CPU)
    crops = predict_scores(regressor, batches, CPU)
    images = per_image_predictions(crops)
    assert metrics["n"] == 8 and (images["crops"] == 2).all()
    assert metrics["srcc"] == pytest.approx(
        stats.spearmanr(images["predicted"], images["score"]).statistic
    )
    assert metrics["plcc"] == pytest.approx(
        stats.pearsonr(images["predicted"], images["score"]).statistic
    )
    assert metrics["krcc"] == pytest.approx(
        stats.kendalltau(images["predicted"], images["score"]).statistic
    )


def test_metrics_over_workers_are_computed_once(regressor):
    # Two "workers" each predict their shard; the gathered rows give the whole-set numbers,
    # even with the crops of one image on both workers (3 crops per image, batches of 4).
    batches = make_batches(n_batches=6, batch=4, crops=3, seed=2)
    whole = evaluate_regressor(regressor, batches, CPU)
    first, second = (
        predict_scores(regressor, batches[:1], CPU),
        predict_scores(regressor, batches[1:], CPU),
    )
    assert set(first["image_id"]) & set(second["image_id"]) == {"img001"}
    gathered = pd.concat([second, first])
    assert regression_metrics(gathered) == pytest.approx(whole)
    assert whole["n"] == 8


def test_regression_metrics_need_scores(regressor):
    batches = [{k: v for k, v in b.items() if k != "score"} for b in make_batches()]
    crops = predict_scores(regressor, batches, CPU)
    assert crops["score"].isna().all()
    with pytest.raises(ValueError, match="score: missing for 6 images"):
        regression_metrics(crops)


def test_training_state_round_trip(regressor, tmp_path):
    batches = make_batches()
    optimizer = create_optimizer(TrainConfig(lr=1e-3, use_gpu=False), regressor)
    train_one_epoch(regressor, batches, optimizer, create_loss("regressor"), CPU, task="regressor")
    path = tmp_path / "state.pt"
    torch.save(training_state(regressor, optimizer, epoch=3, metrics={"srcc": 0.5}), path)

    torch.manual_seed(99)
    fresh = create_regressor(TINY)
    fresh_opt = create_optimizer(TrainConfig(lr=1e-3, use_gpu=False), fresh)
    epoch = restore_training_state(torch.load(path, weights_only=True), fresh, fresh_opt)
    assert epoch == 3
    np.testing.assert_array_equal(
        predict(fresh, batches, CPU)[1], predict(regressor, batches, CPU)[1]
    )
    assert fresh_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    with pytest.raises(ValueError, match=r"missing keys \['epoch'\]"):
        restore_training_state({"model": {}}, fresh)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_epoch_bf16_channels_last():
    from dgqa_ray.models import prepare_for_device

    device = torch.device("cuda")
    model = prepare_for_device(create_regressor(TINY), device, channels_last=True)
    optimizer = create_optimizer(TrainConfig(lr=1e-3), model)
    stats_ = train_one_epoch(
        model,
        make_batches(n_batches=4, batch=8, size=64),
        optimizer,
        create_loss("regressor"),
        device,
        task="regressor",
        amp_dtype=torch.bfloat16,
        channels_last=True,
    )
    assert stats_["images"] == 32 and np.isfinite(stats_["loss"])
    metrics = evaluate_regressor(
        model,
        make_batches(n_batches=2, batch=8, size=64, crops=2),
        device,
        amp_dtype=torch.bfloat16,
        channels_last=True,
    )
    assert metrics["n"] == 8


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from dgqa_ray.engine import create_scheduler

    model = torch.nn.Linear(2, 1)
    cfg = TrainConfig(lr=1e-2, lr_schedule="cosine", warmup_fraction=0.1, use_gpu=False)
    optimizer = create_optimizer(cfg, model)
    scheduler = create_scheduler(cfg, optimizer, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3)  # 1/10 of the rate: first of 10 warmup steps
    assert max(rates) == pytest.approx(1e-2) and rates.index(max(rates)) in (9, 10)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))  # decays
    assert rates[-1] < 1e-4
    constant = TrainConfig(lr_schedule="constant", use_gpu=False)
    assert create_scheduler(constant, create_optimizer(constant, model), 100) is None


def test_a_resumed_schedule_continues_where_it_stopped():
    from dgqa_ray.engine import create_scheduler

    cfg = TrainConfig(lr=1e-2, lr_schedule="cosine", use_gpu=False)
    model = create_regressor(ModelConfig(backbone="resnet18"))
    optimizer = create_optimizer(cfg, model)
    scheduler = create_scheduler(cfg, optimizer, total_steps=10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    state = training_state(model, optimizer, 2, scheduler=scheduler)
    fresh_opt = create_optimizer(cfg, model)
    fresh = create_scheduler(cfg, fresh_opt, total_steps=10)
    restore_training_state(state, model, fresh_opt, fresh)
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert fresh.last_epoch == 4


def test_head_only_training_leaves_the_backbone_and_its_statistics_alone():
    from dgqa_ray.engine import freeze_all_but_head

    model = create_regressor(ModelConfig(backbone="resnet18"))
    trainable = freeze_all_but_head(model)
    assert trainable == 512 + 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = create_optimizer(TrainConfig(lr=1e-2, use_gpu=False), model)
    rng = np.random.default_rng(0)
    batches = [
        {
            "image": rng.integers(0, 255, (4, 3, 32, 32), dtype=np.uint8),
            "score": rng.random(4) * 10,
        }
        for _ in range(3)
    ]
    train_one_epoch(model, batches, optimizer, create_loss("regressor"), CPU, task="regressor")
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Only the head moved: weights and BatchNorm running statistics of the backbone did not.
    assert changed == {"fc.weight", "fc.bias"}


def test_classification_metrics_average_crops_per_image_and_count_levels():
    from dgqa_ray.engine import classification_metrics

    # Two images of type 3 (class 2), two crops each; image "a" right on average, "b" wrong.
    logits = np.zeros((4, 25), np.float32)
    logits[0, 2], logits[1, 2] = 4.0, -1.0  # a: crop 1 sure of class 2, crop 2 unsure
    logits[2, 7], logits[3, 7] = 3.0, 3.0  # b: class 7 both times
    logits[2, 2], logits[3, 2] = 2.0, 2.5  # ... with class 2 second: in the top 3
    crops = pd.DataFrame(
        {
            "image_id": ["a", "a", "b", "b"],
            "dist_type": [3, 3, 3, 3],
            "dist_level": [1, 1, 5, 5],
            "logits": list(logits),
        }
    )
    out = classification_metrics(crops, 25)
    assert out["accuracy"] == 0.5 and out["top3_accuracy"] == 1.0
    assert out["images"] == 2 and out["crops"] == 4
    assert out["accuracy_level1"] == 1.0 and out["accuracy_level5"] == 0.0
    assert "accuracy_level3" not in out


def test_predict_classes_on_an_empty_shard_gives_no_rows():
    # A worker whose validation shard is empty (more workers than blocks) still takes part in
    # the gather with an empty frame; the two-node rehearsal hit this.
    from dgqa_ray.engine import predict_classes

    model = create_classifier(ModelConfig(backbone="resnet18", num_classes=25))
    crops = predict_classes(model, [], "cpu")
    assert crops.empty and list(crops.columns) == ["image_id", "dist_type", "dist_level", "logits"]
