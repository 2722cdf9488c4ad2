"""LivePortrait networks: public state-dict compatibility, the on-disk round trip, forward shapes
of the miniature, and the keypoint geometry against hand-computed cases."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import vortex
from vortex.errors import ConfigError, VortexInitializationError, WeightsNotFoundError
from vortex.models.liveportrait import (
    FULL,
    MINIATURE,
    WEIGHT_FILES,
    LivePortraitModelConfig,
    build_networks,
    get_rotation_matrix,
    headpose_pred_to_degree,
    load_networks,
    retarget_eye,
    retarget_lip,
    save_miniature_liveportrait,
    stitch,
    transform_keypoint,
)
from vortex.models.liveportrait.networks import RETARGETING_FILE
from vortex.models.liveportrait.util import make_coordinate_grid

MANIFEST = Path(vortex.__file__).parent / "data" / "liveportrait_state_dicts.json"


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())["files"]


@pytest.fixture(scope="session")
def full_on_meta():
    return build_networks("full", device="meta")


@pytest.fixture(scope="session")
def miniature_dir(tmp_path_factory) -> Path:
    return save_miniature_liveportrait(tmp_path_factory.mktemp("liveportrait"), seed=0)


@pytest.fixture(scope="session")
def miniature(miniature_dir):
    return load_networks(miniature_dir)


@pytest.fixture(scope="session")
def source():
    """A source image, its feature volume, motion and transformed keypoints (batch of 2)."""
    return torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))


def _shapes(state: dict) -> dict:
    return {k: list(v.shape) for k, v in state.items()}


# --- public weight files -------------------------------------------------------------------


@pytest.mark.parametrize("relative", WEIGHT_FILES)
def test_full_size_state_dicts_match_the_public_files(full_on_meta, manifest, relative):
    ours = full_on_meta.state_dicts()[relative]
    public = manifest[relative]
    if relative == RETARGETING_FILE:
        assert sorted(ours) == sorted(public) == ["retarget_eye", "retarget_mouth", "retarget_shoulder"]
        for name in public:
            assert _shapes(ours[name]) == public[name], name
    else:
        assert _shapes(ours) == public


def test_full_size_parameter_counts(full_on_meta):
    counts = full_on_meta.parameter_counts()
    expected_millions = {"F": 0.84, "M": 28.1, "W": 45.5, "G": 55.4}
    for name, millions in expected_millions.items():
        assert counts[name] / 1e6 == pytest.approx(millions, rel=0.02), name
    retargeting = counts["stitching"] + counts["retarget_eye"] + counts["retarget_lip"]
    assert retargeting / 1e6 == pytest.approx(0.23, rel=0.02)


def test_full_config_is_the_public_models_yaml():
    assert FULL.appearance_feature_extractor.reshape_channel * FULL.appearance_feature_extractor.reshape_depth == 512
    assert FULL.motion_extractor.dims == (96, 192, 384, 768) and FULL.motion_extractor.depths == (3, 3, 9, 3)
    dm = FULL.warping_module.dense_motion
    assert (dm.block_expansion, dm.max_features, dm.num_blocks, dm.compress, dm.mask_kernel_size) == (32, 1024, 5, 4, 7)
    assert FULL.spade_generator.upscale == 2 and FULL.spade_generator.spade_hidden == 128
    assert FULL.stitching_retargeting_module.eye.hidden_sizes == (256, 256, 128, 128, 64)


# --- the on-disk round trip and its errors -------------------------------------------------


def test_miniature_round_trips_strictly_in_the_public_layout(miniature_dir, miniature):
    for relative in WEIGHT_FILES:
        assert (miniature_dir / relative).is_file()
    retargeting = torch.load(miniature_dir / RETARGETING_FILE, weights_only=True)
    assert all(k.startswith("module.mlp.") for k in retargeting["retarget_shoulder"])

    rebuilt = build_networks("miniature", seed=0)
    assert miniature.config == MINIATURE
    for (name, loaded), (_, fresh) in zip(miniature.named_networks(), rebuilt.named_networks()):
        assert not loaded.training, name
        loaded_state, fresh_state = loaded.state_dict(), fresh.state_dict()
        assert loaded_state.keys() == fresh_state.keys()
        for key in fresh_state:
            assert torch.equal(loaded_state[key], fresh_state[key]), f"{name}.{key}"
    # BatchNorm statistics were seeded too, so the round trip compared real values.
    assert miniature.W.third.norm.running_var.std() > 0


def test_a_different_seed_gives_different_weights():
    a = build_networks("miniature", seed=0).F.first.conv.weight
    b = build_networks("miniature", seed=1).F.first.conv.weight
    assert not torch.equal(a, b)


def test_loads_from_the_hugging_face_repo_root_and_in_another_dtype(tmp_path):
    save_miniature_liveportrait(tmp_path / "liveportrait", seed=3)
    networks = load_networks(tmp_path, dtype=torch.bfloat16)
    assert networks.G.fc.weight.dtype == torch.bfloat16
    assert networks.W.dense_motion_network.norm.num_batches_tracked.dtype == torch.int64
    assert not any(p.requires_grad for _, net in networks.named_networks() for p in net.parameters())


@pytest.fixture()
def broken_copy(miniature_dir, tmp_path) -> Path:
    return Path(shutil.copytree(miniature_dir, tmp_path / "copy"))


def test_a_missing_key_names_the_file_and_the_key(broken_copy):
    path = broken_copy / "base_models/warping_module.pth"
    state = torch.load(path, weights_only=True)
    del state["fourth.weight"]
    torch.save(state, path)
    with pytest.raises(VortexInitializationError) as error:
        load_networks(broken_copy)
    assert "base_models/warping_module.pth" in str(error.value)
    assert "missing keys (1): fourth.weight" in str(error.value)


def test_an_unexpected_key_and_a_wrong_shape_are_named(broken_copy):
    path = broken_copy / RETARGETING_FILE
    state = torch.load(path, weights_only=True)
    state["retarget_eye"]["module.mlp.0.weight"] = torch.zeros(3, 3)
    state["retarget_eye"]["module.extra"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(VortexInitializationError) as error:
        load_networks(broken_copy)
    message = str(error.value)
    assert "retarget_eye" in message and "unexpected keys (1): extra" in message
    assert "mlp.0.weight (3, 3)" in message


def test_a_missing_retargeting_entry_or_file_is_named(broken_copy):
    path = broken_copy / RETARGETING_FILE
    state = torch.load(path, weights_only=True)
    del state["retarget_mouth"]
    torch.save(state, path)
    with pytest.raises(VortexInitializationError, match="lacks the state dict 'retarget_mouth'"):
        load_networks(broken_copy)
    path.unlink()
    with pytest.raises(WeightsNotFoundError, match="stitching_retargeting_module.pth' is missing"):
        load_networks(broken_copy)
    with pytest.raises(WeightsNotFoundError, match="no base_models/"):
        load_networks(broken_copy / "nowhere")


def test_full_size_weights_do_not_load_into_the_miniature(miniature_dir, tmp_path):
    shutil.copytree(miniature_dir, tmp_path / "m")
    (tmp_path / "m" / "vortex_liveportrait_config.json").unlink()  # now read as the public full size
    with pytest.raises(VortexInitializationError, match="appearance_feature_extractor.pth.*wrong shapes"):
        load_networks(tmp_path / "m")


def test_config_json_round_trip_and_validation():
    assert LivePortraitModelConfig.from_json(MINIATURE.to_json()) == MINIATURE
    assert LivePortraitModelConfig.from_json(FULL.to_json()) == FULL
    with pytest.raises(ConfigError, match="reshape_channel"):
        LivePortraitModelConfig(
            appearance_feature_extractor=MINIATURE.appearance_feature_extractor,
        ).validate()


# --- forward passes (miniature) ------------------------------------------------------------


@pytest.fixture(scope="session")
def forward(miniature, source):
    with torch.no_grad():
        feature = miniature.F(source)
        motion = miniature.M(source)
        x_s = transform_keypoint(motion)
        x_d = x_s + 0.02 * torch.randn(x_s.shape, generator=torch.Generator().manual_seed(1))
        warped = miniature.W(feature, kp_source=x_s, kp_driving=x_d)
        image = miniature.G(warped["out"])
    return dict(feature=feature, motion=motion, x_s=x_s, x_d=x_d, warped=warped, image=image)


def test_forward_shapes(forward):
    c = MINIATURE.appearance_feature_extractor
    assert forward["feature"].shape == (2, c.reshape_channel, c.reshape_depth, 64, 64)
    m = forward["motion"]
    assert {k: tuple(v.shape) for k, v in m.items()} == {
        "pitch": (2, 66), "yaw": (2, 66), "roll": (2, 66), "t": (2, 3), "exp": (2, 63), "scale": (2, 1), "kp": (2, 63)
    }
    assert forward["x_s"].shape == (2, 21, 3)
    w = forward["warped"]
    assert w["out"].shape == (2, MINIATURE.spade_generator.input_channels, 64, 64)
    assert w["occlusion_map"].shape == (2, 1, 64, 64)
    assert 0 <= w["occlusion_map"].min() and w["occlusion_map"].max() <= 1
    assert w["deformation"].shape == (2, c.reshape_depth, 64, 64, 3)
    image = forward["image"]
    assert image.shape == (2, 3, 512, 512) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0
    assert torch.isfinite(forward["feature"]).all() and torch.isfinite(w["out"]).all()


def test_unmoved_keypoints_give_the_identity_deformation(miniature, forward):
    with torch.no_grad():
        warped = miniature.W(forward["feature"], kp_source=forward["x_s"], kp_driving=forward["x_s"])
    identity = make_coordinate_grid(MINIATURE.appearance_feature_extractor.reshape_depth, 64, 64, like=forward["x_s"])
    assert torch.allclose(warped["deformation"], identity.expand_as(warped["deformation"]), atol=1e-5)
    # ...while moved keypoints move the flow.
    assert not torch.allclose(forward["warped"]["deformation"], identity.expand_as(warped["deformation"]), atol=1e-3)


def test_retargeting_mlps(miniature, forward):
    x_s, x_d = forward["x_s"], forward["x_d"]
    with torch.no_grad():
        assert miniature.stitching(torch.cat([x_s.flatten(1), x_d.flatten(1)], 1)).shape == (2, 65)
        stitched = stitch(miniature.stitching, x_s, x_d)
        eye = retarget_eye(miniature.retarget_eye, x_s, torch.tensor([[0.4, 0.4, 0.0]] * 2))
        lip = retarget_lip(miniature.retarget_lip, x_s, torch.tensor([[0.0, 0.5]] * 2))
        delta = miniature.stitching(torch.cat([x_s.flatten(1), x_d.flatten(1)], 1))
    assert stitched.shape == eye.shape == lip.shape == (2, 21, 3)
    # The last two outputs shift every keypoint's x and y; z only gets its own delta.
    expected = x_d + delta[:, :63].reshape(2, 21, 3)
    expected[..., :2] += delta[:, None, 63:]
    assert torch.allclose(stitched, expected)


def test_bfloat16_forward_runs_and_stays_close(miniature_dir, forward):
    networks = load_networks(miniature_dir, dtype=torch.bfloat16)
    with torch.no_grad():
        feature = networks.F(torch.rand(1, 3, 256, 256, dtype=torch.bfloat16))
        warped = networks.W(forward["feature"][:1].bfloat16(), kp_source=forward["x_s"][:1].bfloat16(),
                            kp_driving=forward["x_d"][:1].bfloat16())
        image = networks.G(warped["out"])
    assert feature.dtype == image.dtype == torch.bfloat16
    assert (image.float() - forward["image"][:1]).abs().mean() < 0.02


# --- keypoint geometry (hand-computed) -----------------------------------------------------


def _peaked(*bins: int) -> torch.Tensor:
    logits = torch.full((1, 66), -1e4)
    logits[0, list(bins)] = 0.0
    return logits


def test_pose_bins_decode_to_degrees():
    assert headpose_pred_to_degree(torch.zeros(1, 66)).item() == pytest.approx(0.0, abs=1e-4)  # mean bin 32.5
    assert headpose_pred_to_degree(_peaked(32, 33)).item() == pytest.approx(0.0, abs=1e-4)
    assert headpose_pred_to_degree(_peaked(0)).item() == pytest.approx(-97.5)
    assert headpose_pred_to_degree(_peaked(63)).item() == pytest.approx(91.5)
    with pytest.raises(ValueError):
        headpose_pred_to_degree(torch.zeros(1, 65))


def _rotate(v, pitch=0.0, yaw=0.0, roll=0.0) -> torch.Tensor:
    r = get_rotation_matrix(torch.tensor([pitch]), torch.tensor([yaw]), torch.tensor([roll]))
    return (torch.tensor([v]) @ r)[0]


def test_rotations_by_hand():
    assert torch.allclose(get_rotation_matrix(*torch.zeros(3, 2)), torch.eye(3).expand(2, 3, 3))
    # Each angle alone, applied to row vectors.
    assert torch.allclose(_rotate([1.0, 0, 0], yaw=90), torch.tensor([0, 0, -1.0]), atol=1e-6)
    assert torch.allclose(_rotate([0, 1.0, 0], pitch=90), torch.tensor([0, 0, 1.0]), atol=1e-6)
    assert torch.allclose(_rotate([1.0, 0, 0], roll=90), torch.tensor([0, 1.0, 0]), atol=1e-6)
    # Order: pitch first, then yaw (Rz·Ry·Rx): y → z under pitch, then z → x under yaw.
    assert torch.allclose(_rotate([0, 1.0, 0], pitch=90, yaw=90), torch.tensor([1.0, 0, 0]), atol=1e-6)
    r = get_rotation_matrix(torch.tensor([[10.0]]), torch.tensor([[-25.0]]), torch.tensor([[40.0]]))  # (B, 1) works
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3)[None], atol=1e-6)
    assert torch.linalg.det(r).item() == pytest.approx(1.0, abs=1e-6)


def _kp_info(**overrides) -> dict:
    kp = torch.linspace(-0.4, 0.4, 63).reshape(1, 63)
    info = dict(kp=kp, exp=torch.zeros(1, 63), pitch=_peaked(32, 33), yaw=_peaked(32, 33), roll=_peaked(32, 33),
                t=torch.zeros(1, 3), scale=torch.ones(1, 1))
    info.update(overrides)
    return info


def test_transform_keypoint_by_hand():
    info = _kp_info()
    kp = info["kp"].reshape(1, 21, 3)
    assert torch.allclose(transform_keypoint(info), kp, atol=1e-6)  # identity pose

    moved = transform_keypoint(_kp_info(t=torch.tensor([[0.1, -0.2, 0.5]])))
    assert torch.allclose(moved, kp + torch.tensor([0.1, -0.2, 0.0]), atol=1e-6)  # t_z is ignored

    exp = torch.full((1, 63), 0.01)
    scaled = transform_keypoint(_kp_info(exp=exp, scale=torch.tensor([[1.5]]), t=torch.tensor([[0.1, 0.0, 0.0]])))
    assert torch.allclose(scaled, 1.5 * (kp + 0.01) + torch.tensor([0.1, 0.0, 0.0]), atol=1e-6)

    # Yaw of 90°: bins 62 and 63 average to 62.5 · 3 − 97.5 = 90 degrees; (x, y, z) → (z, y, −x).
    turned = transform_keypoint(_kp_info(yaw=_peaked(62, 63)))
    assert torch.allclose(turned[..., 0], kp[..., 2], atol=1e-5)
    assert torch.allclose(turned[..., 2], -kp[..., 0], atol=1e-5)
    assert torch.allclose(turned[..., 1], kp[..., 1], atol=1e-5)

    # Degrees in place of logits, and (B, 21, 3) in place of flat vectors, give the same result.
    as_degrees = _kp_info(yaw=torch.tensor([[90.0]]), kp=kp, exp=torch.zeros(1, 21, 3))
    assert torch.allclose(transform_keypoint(as_degrees), turned, atol=1e-5)
    assert math.isclose(float(headpose_pred_to_degree(_peaked(62, 63))), 90.0, abs_tol=1e-4)
