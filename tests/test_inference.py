"""Inference (domain classifier and quality regressor): checkpoint loading, and Ray Data
results equal plain torch over the same crops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dgqa_ray.config import ModelConfig
from dgqa_ray.engine import (
    average_by_image,
    per_image_predictions,
    predict,
    predict_scores,
    training_state,
)
from dgqa_ray.inference import (
    domain_arrays,
    load_model_state,
    predict_domains,
    predict_quality,
    similarity_from_predictions,
)
from dgqa_ray.models import create_classifier, create_regressor
from dgqa_ray.selection import select_domains, softmax

TINY = ModelConfig(backbone="resnet18", num_classes=25, channels_last=False, amp="none")


def _classifier(cfg: ModelConfig = TINY, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_classifier(cfg, load_weights=False).eval()


# -- checkpoints (no Ray) ---------------------------------------------------------------------


def test_checkpoint_forms_all_give_the_same_weights(tmp_path):
    model = _classifier()
    weights = model.state_dict()
    optimizer = torch.optim.Adam(model.parameters())
    state = training_state(model, optimizer, epoch=3)

    folder = tmp_path / "epoch_003"
    folder.mkdir()
    torch.save(state, folder / "state.pt")  # what train/worker.py writes
    single = tmp_path / "single"
    single.mkdir()
    torch.save(weights, single / "weights.pth")
    ddp = {f"module.{k}": v for k, v in weights.items()}

    for checkpoint in (
        weights,
        state,
        ddp,
        folder,
        str(folder),
        f"file://{folder}",
        str(folder / "state.pt"),
        single,
    ):
        loaded = load_model_state(checkpoint)
        assert loaded.keys() == weights.keys()
        assert all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_bad_checkpoints_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing at"):
        load_model_state(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"state\.pt or exactly one"):
        load_model_state(empty)
    with pytest.raises(ValueError, match="neither a model state dict"):
        load_model_state({"epoch": 3})
    with pytest.raises(ValueError, match="expected a path or URI"):
        load_model_state(42)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="couldn't load"):
        load_model_state(junk)


def test_a_checkpoint_of_another_model_fails_before_any_ray_work():
    weights = _classifier().state_dict()
    with pytest.raises(ValueError, match=r"model\.backbone / model\.num_classes"):
        predict_domains(weights, ModelConfig(backbone="resnet34", num_classes=25), None, crop=32)
    with pytest.raises(ValueError, match="num_classes"):
        predict_domains(weights, ModelConfig(backbone="resnet18", num_classes=26), None, crop=32)
    with pytest.raises(ValueError, match="concurrency"):
        predict_domains(weights, TINY, None, crop=32, concurrency=(3, 1))
    with pytest.raises(ValueError, match="batch_size"):
        predict_domains(weights, TINY, None, crop=32, batch_size=0)


# -- Ray Data inference -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target_ds(ray_local, tmp_path_factory):
    """Seven unlabelled photos (PNG and JPEG), ingested like a target set."""
    from dgqa_ray.data.ingest import ingest
    from dgqa_ray.data.pipelines import read_dataset
    from tests.fixtures.datasets import build_custom

    root = tmp_path_factory.mktemp("target")
    built = build_custom(root / "raw", n_images=7, with_scores=False, size=(64, 48))
    storage = str(root / "storage")
    ingest(built.open(), storage)
    return read_dataset(storage, "custom")


def _in_process(model, ds, crop, num_crops, seed):
    """The reference: evaluation crops through engine.predict in this process."""
    from dgqa_ray.data.pipelines import evaluation_view

    batches = evaluation_view(ds, crop=crop, num_crops=num_crops, seed=seed).iter_batches(
        batch_size=16, batch_format="numpy"
    )
    ids, logits = predict(model, batches, "cpu")  # (N_crops,), (N_crops, C)
    image_ids, probs = average_by_image(ids, softmax(logits, axis=1))
    _, mean_logits = average_by_image(ids, logits)
    order = np.argsort(image_ids)
    return image_ids[order], probs[order], mean_logits[order]


@pytest.mark.slow
def test_ray_data_inference_equals_plain_torch_over_the_same_crops(target_ds, tmp_path):
    model = _classifier(seed=1)
    torch.save(training_state(model, torch.optim.Adam(model.parameters()), 1), tmp_path / "s.pt")
    predictions = predict_domains(
        tmp_path / "s.pt", TINY, target_ds, crop=32, num_crops=5, seed=0, batch_size=6
    )
    assert len(predictions) == 7 and (predictions["n_crops"] == 5).all()
    assert predictions["image_id"].is_monotonic_increasing
    image_ids, class_ids, probs, logits = domain_arrays(predictions)
    assert class_ids.tolist() == list(range(1, 26))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)

    ref_ids, ref_probs, ref_logits = _in_process(model, target_ds, 32, 5, 0)
    assert image_ids.tolist() == ref_ids.tolist()
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)

    # The selection runs on the result as it is.
    table = similarity_from_predictions(predictions, k=4)
    assert len(table) == 25 and table["votes"].sum() == 7 * 4
    np.testing.assert_allclose(table["mean_prob"], ref_probs.mean(axis=0), rtol=1e-4)
    result = select_domains(table, rule="mean_prob")
    expected = [t for t, p in zip(range(1, 26), ref_probs.mean(axis=0), strict=True) if p > 0.04]
    assert list(result.selected) == expected
    # The top-k vote counts, per type, the images that rank it among their 4 largest mean
    # logits (the authors' sel_dist.py), and keeps the rounded share >= 0.04 of N x 3.
    top4 = np.argsort(-ref_logits, axis=1)[:, :4] + 1
    votes = np.array([(top4 == t).any(axis=1).sum() for t in range(1, 26)])
    np.testing.assert_array_equal(table["votes"].to_numpy(), votes)
    share = np.round(votes / (7 * 3), 2)
    voted = select_domains(table, rule="topk_vote", k=4)
    assert list(voted.selected) == [t for t in range(1, 26) if share[t - 1] >= 0.04]


@pytest.mark.slow
def test_two_actors_and_26_classes(target_ds):
    cfg26 = ModelConfig(backbone="resnet18", num_classes=26, channels_last=False, amp="none")
    model = _classifier(cfg26, seed=2)
    # Two 1-CPU actors would hold both CPUs of the test cluster and starve the reads.
    with pytest.raises(ValueError, match="leaving none for reading"):
        predict_domains(model.state_dict(), cfg26, target_ds, crop=32, concurrency=2)
    predictions = predict_domains(
        model.state_dict(),
        cfg26,
        target_ds,
        crop=32,
        num_crops=3,
        seed=5,
        num_cpus=0.5,
        concurrency=2,
    )
    _, class_ids, probs, _ = domain_arrays(predictions)
    assert class_ids.tolist() == list(range(0, 26)) and "prob_00" in predictions
    ref_ids, ref_probs, _ = _in_process(model, target_ds, 32, 3, 5)
    assert predictions["image_id"].tolist() == ref_ids.tolist()
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-4, atol=1e-6)
    table = similarity_from_predictions(predictions)
    assert not table.loc[table["dist_type"] == 0, "source_domain"].any()  # pristine never a domain


def test_domain_arrays_refuses_a_table_without_probabilities():
    with pytest.raises(ValueError, match="prob_TT"):
        domain_arrays(pd.DataFrame({"image_id": ["a"]}))


@pytest.mark.slow
def test_regressor_scores_through_the_same_actor_pool_equal_plain_torch(target_ds, tmp_path):
    from dgqa_ray.data.pipelines import evaluation_view

    torch.manual_seed(3)
    model = create_regressor(TINY, load_weights=False).eval()
    folder = tmp_path / "epoch_001"
    folder.mkdir()
    torch.save(training_state(model, torch.optim.Adam(model.parameters()), 1), folder / "state.pt")
    scores = predict_quality(folder, TINY, target_ds, crop=32, num_crops=3, seed=4, batch_size=5)
    assert list(scores.columns) == ["image_id", "predicted", "score", "crops"]
    assert len(scores) == 7 and (scores["crops"] == 3).all() and scores["score"].isna().all()
    assert scores["image_id"].is_monotonic_increasing

    crops = evaluation_view(target_ds, crop=32, num_crops=3, seed=4)
    batches = crops.iter_batches(batch_size=16, batch_format="numpy")
    reference = per_image_predictions(predict_scores(model, batches, "cpu"))
    reference = reference.sort_values("image_id").reset_index(drop=True)
    assert scores["image_id"].tolist() == reference["image_id"].tolist()
    np.testing.assert_allclose(scores["predicted"], reference["predicted"], rtol=1e-4, atol=1e-5)

    # A classifier's weights are not a regressor: refused before any actor starts.
    with pytest.raises(ValueError, match="does not fit a resnet18 quality regressor"):
        predict_quality(_classifier().state_dict(), TINY, target_ds, crop=32)


def test_benchmark_break_even_is_where_the_pool_reaches_the_ratio():
    from dgqa_ray.benchmarks.inference import break_even

    n = break_even(startup=6.0, running=12.0, plain=14.0)
    # At n images: start + n / running seconds against n / plain seconds for the plain loop.
    assert (n / 14.0) / (6.0 + n / 12.0) == pytest.approx(0.8)
    assert break_even(startup=6.0, running=10.0, plain=14.0) == float("inf")  # 10 < 0.8 x 14
