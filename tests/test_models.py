"""Backbones and heads, pretrained weight loading, device placement, uint8 normalisation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dgqa_ray.config import ModelConfig
from dgqa_ray.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    autocast_dtype,
    class_dist_types,
    create_backbone,
    create_classifier,
    create_regressor,
    dist_type_to_class,
    load_pretrained,
    normalize_uint8,
    prepare_for_device,
)

TINY = ModelConfig(backbone="resnet18")


@pytest.fixture(autouse=True)
def _one_thread():
    # 32x32 inputs are too small to split over threads: one thread is faster, and steadier
    # when other test processes share the cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("num_classes", [25, 26])
def test_classifier_and_regressor_heads(num_classes):
    cfg = ModelConfig(backbone="resnet18", num_classes=num_classes)
    x = torch.randn(2, 3, 32, 32)
    clf = create_classifier(cfg).eval()
    reg = create_regressor(cfg).eval()
    with torch.no_grad():
        assert clf(x).shape == (2, num_classes)
        assert reg(x).shape == (2, 1)
    assert clf.fc.out_features == num_classes and reg.fc.out_features == 1


@pytest.mark.parametrize(("name", "features"), [("resnet34", 512), ("resnet50", 2048)])
def test_other_backbones(name, features):
    model = create_backbone(name, 3)
    assert model.fc.in_features == features and model.fc.out_features == 3


def test_bad_backbone():
    with pytest.raises(ValueError, match="backbone: invalid value 'vgg'; expected a torchvision"):
        create_backbone("vgg", 2)


def test_any_torchvision_classifier_by_name_with_its_last_linear_layer_as_head():
    from dgqa_ray.models import head_name, is_head_key, set_head_bias

    model = create_backbone("mobilenet_v3_small", 25)
    assert head_name(model) == "classifier.3" and model.classifier[3].out_features == 25
    assert is_head_key(model, "classifier.3.weight") and not is_head_key(
        model, "features.0.0.weight"
    )
    out = model.eval()(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 25)
    assert head_name(create_backbone("resnet18", 1)) == "fc"
    regressor = create_backbone("resnet18", 1)
    set_head_bias(regressor, 7.5)
    assert regressor.fc.bias.item() == 7.5


def test_load_pretrained_skips_the_head_of_any_backbone():
    source = create_backbone("mobilenet_v3_small", 25)
    target = create_backbone("mobilenet_v3_small", 1)
    report = load_pretrained(target, source.state_dict())
    assert report.skipped == ("classifier.3.bias", "classifier.3.weight")
    assert torch.equal(target.features[0][0].weight, source.features[0][0].weight)


def test_numeric_format_picks_bf16_on_cpu_only_when_asked_or_supported():
    from dgqa_ray.models import cpu_bf16_units, numeric_format

    assert numeric_format(ModelConfig(cpu_bf16="off"), "cpu") == (None, False)
    assert numeric_format(ModelConfig(cpu_bf16="on"), "cpu") == (torch.bfloat16, True)
    auto = numeric_format(ModelConfig(cpu_bf16="auto"), "cpu")
    assert auto == ((torch.bfloat16, True) if cpu_bf16_units() else (None, False))
    assert numeric_format(ModelConfig(amp="bf16", channels_last=True), "cuda") == (
        torch.bfloat16,
        True,
    )
    assert numeric_format(ModelConfig(amp="none", channels_last=False), "cuda") == (None, False)


def test_class_mapping():
    np.testing.assert_array_equal(class_dist_types(25), np.arange(1, 26))
    np.testing.assert_array_equal(class_dist_types(26), np.arange(0, 26))
    assert dist_type_to_class(np.array([1, 25]), 25).tolist() == [0, 24]
    assert dist_type_to_class(torch.tensor([0, 1, 25]), 26).tolist() == [0, 1, 25]
    with pytest.raises(ValueError, match="pristine images need num_classes=26"):
        dist_type_to_class(np.array([0, 3]), 25)
    with pytest.raises(ValueError, match=r"expected KADID ids in 0\.\.25"):
        dist_type_to_class(np.array([26]), 26)
    with pytest.raises(ValueError, match="num_classes: invalid value 10"):
        class_dist_types(10)


def _imagenet_style_state(name: str = "resnet18") -> dict[str, torch.Tensor]:
    # What torchvision's weight files hold: a 1000-way fc and every backbone tensor.
    torch.manual_seed(3)
    return create_backbone(name, 1000).state_dict()


def test_load_pretrained_from_path_skips_head(tmp_path):
    state = _imagenet_style_state()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = create_regressor(TINY, load_weights=False)
    fc_before = model.fc.weight.detach().clone()
    report = load_pretrained(model, str(path))
    assert report.skipped == ("fc.bias", "fc.weight")
    assert report.missing == () and report.unexpected == ()
    assert report.loaded == len(state) - 2
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert torch.equal(model.fc.weight, fc_before)  # head untouched


def test_create_with_pretrained_uri_and_wrappers(tmp_path):
    state = _imagenet_style_state()
    # DDP-saved checkpoint wrapped in {"state_dict": ...}, addressed by a file:// URI.
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    model = create_classifier(
        ModelConfig(backbone="resnet18", pretrained=f"file://{path}", num_classes=26)
    )
    assert torch.equal(model.bn1.weight, state["bn1.weight"])
    assert model.fc.out_features == 26


def test_load_pretrained_errors(tmp_path):
    model = create_regressor(TINY, load_weights=False)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_pretrained(model, str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="couldn't load"):
        load_pretrained(model, str(garbage))
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_pretrained(model, {"epoch": 3})
    # ResNet-50 weights into a ResNet-18: shapes differ, named in the error.
    with pytest.raises(ValueError, match=r"tensor shapes .* differ .*conv1\.weight"):
        load_pretrained(model, _imagenet_style_state("resnet50"))
    # Missing keys: strict raises listing them, non-strict loads what matches.
    partial = {k: v for k, v in _imagenet_style_state().items() if not k.startswith("layer4")}
    partial["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['layer4.*unexpected keys \['extra"):
        load_pretrained(model, partial)
    report = load_pretrained(model, partial, strict=False)
    assert report.unexpected == ("extra.weight",)
    assert all(k.startswith("layer4") for k in report.missing) and report.missing
    assert torch.equal(model.conv1.weight, partial["conv1.weight"])


@pytest.mark.slow
def test_load_pretrained_from_s3(s3_server):
    from dgqa_ray import storage

    state = _imagenet_style_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    uri = s3_server.unique_uri("weights") + "/resnet18.pth"
    storage.write_bytes_atomic(uri, buffer.getvalue())
    model = create_regressor(ModelConfig(backbone="resnet18", pretrained=uri))
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_normalize_uint8_matches_reference():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(2, 3, 8, 9), dtype=np.uint8)
    out = normalize_uint8(batch)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = (torch.from_numpy(batch).float() / 255.0 - mean) / std
    assert out.dtype == torch.float32 and out.shape == (2, 3, 8, 9)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # Read-only arrays (as Ray Data hands out) work without touching the input.
    batch.setflags(write=False)
    torch.testing.assert_close(normalize_uint8(batch, "cpu", channels_last=True), expected)
    assert normalize_uint8(batch, channels_last=True).is_contiguous(
        memory_format=torch.channels_last
    )


def test_normalize_uint8_rejects_bad_input():
    with pytest.raises(ValueError, match="expected a uint8"):
        normalize_uint8(np.zeros((1, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(B, 3, H, W\), got \(1, 4, 4, 3\)"):
        normalize_uint8(np.zeros((1, 4, 4, 3), dtype=np.uint8))


def test_prepare_for_device_and_autocast():
    model = prepare_for_device(create_regressor(TINY), "cpu", channels_last=True)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert autocast_dtype(ModelConfig(amp="bf16"), "cpu") is None  # fp32 on CPU
    assert autocast_dtype(ModelConfig(amp="bf16"), "cuda") is torch.bfloat16
    assert autocast_dtype(ModelConfig(amp="none"), "cuda") is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_channels_last_forward():
    cfg = ModelConfig(backbone="resnet18")
    model = prepare_for_device(create_classifier(cfg), "cuda", channels_last=True).eval()
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    x = normalize_uint8(images, "cuda", channels_last=True)
    with torch.no_grad(), torch.autocast("cuda", dtype=autocast_dtype(cfg, "cuda")):
        out = model(x)
    assert out.shape == (4, 25) and out.dtype == torch.bfloat16
