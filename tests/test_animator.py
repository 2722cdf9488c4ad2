"""The LivePortrait animator on the miniature: the real loader on saved weight files, the source
crop, the keypoint composition against camera.transform_keypoint, and frames rendered into a
ring-shaped uint8 tensor (chunking, determinism, neutral rows, motion over time)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vortex.config import LivePortraitConfig
from vortex.contracts.cancel import CancelToken
from vortex.engine.render import RenderQueue, SlotVideo
from vortex.errors import ConfigError, WeightsNotFoundError
from vortex.models.liveportrait import WEIGHT_FILES, MINIATURE, stitch, transform_keypoint
from vortex.models.liveportrait.animator import (
    DrivingRows,
    LivePortraitAnimator,
    LivePortraitTrack,
    compose_driving_keypoints,
    to_uint8,
)
from vortex.motion import DrivingSequence

MINI = dict(source="miniature", precision="fp32", placement="cpu", batch_frames=4, stitching=True)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vortex-cache")


@pytest.fixture(scope="session")
def animator(cache_dir) -> LivePortraitAnimator:
    return LivePortraitAnimator.load(LivePortraitConfig(**MINI), "cpu", cache_dir)


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """A drawn head: skin-toned ellipse, dark eyes and mouth, on a vertical gradient."""
    y, x = np.mgrid[0:512, 0:512].astype(np.float32)
    image = np.stack([40 + 0.2 * y, 60 + 0.1 * y, 120 + 0.15 * x], axis=-1)
    face = ((x - 256) / 150) ** 2 + ((y - 250) / 190) ** 2 < 1
    image[face] = (224, 172, 140)
    for cx in (196, 316):
        image[((x - cx) / 22) ** 2 + ((y - 210) / 12) ** 2 < 1] = (30, 30, 40)
    image[((x - 256) / 60) ** 2 + ((y - 340) / 14) ** 2 < 1] = (150, 40, 50)
    return image.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def source(animator, portrait):
    return animator.prepare(portrait)


def _sequence(n: int, exp_delta=None, rotation_delta=None, translation_delta=None,
              scale_factor=None) -> DrivingSequence:
    """Test input written by hand: neutral rows (no deltas, scale factor 1) unless given."""
    def given(value, neutral: np.ndarray) -> np.ndarray:
        return neutral if value is None else np.asarray(value, np.float32)

    return DrivingSequence(
        fps=24,
        exp_delta=given(exp_delta, np.zeros((n, 21, 3), np.float32)),
        rotation_delta=given(rotation_delta, np.zeros((n, 3), np.float32)),
        translation_delta=given(translation_delta, np.zeros((n, 3), np.float32)),
        scale_factor=given(scale_factor, np.ones(n, np.float32)),
        mouth_open=np.zeros(n, np.float32),
        eye_open=np.ones(n, np.float32),
    )


def _mouth_ramp(n: int) -> DrivingSequence:
    exp = np.zeros((n, 21, 3), np.float32)
    exp[:, 19, 1] = np.linspace(0.0, 0.08, n)  # +y on keypoint 19 opens the mouth
    return _sequence(n, exp_delta=exp)


def _render(track, n: int, ring_frames: int = 8) -> torch.Tensor:
    """Frames 0..n-1 through a ring of `ring_frames`, as stream_frames drives a track."""
    ring = torch.zeros(ring_frames, 3, 512, 512, dtype=torch.uint8)
    frames = []
    for start in range(0, n, ring_frames):
        view = ring[: min(ring_frames, n - start)]
        track.render(start, view)
        frames.append(view.clone())
    return torch.cat(frames)


# ---- loading ---------------------------------------------------------------------------------


def test_load_builds_the_miniature_once_and_reads_it_with_the_real_loader(animator, cache_dir):
    folder = cache_dir / "miniature" / "liveportrait"
    for relative in WEIGHT_FILES:
        assert (folder / relative).is_file(), relative
    assert animator.networks.config == MINIATURE
    assert animator.device == torch.device("cpu") and animator.dtype == torch.float32
    assert set(animator.modules()) == {"F", "M", "W", "G", "stitching", "retarget_eye", "retarget_lip"}
    assert all(not m.training for m in animator.modules().values())
    again = LivePortraitAnimator.load(LivePortraitConfig(**MINI), "cpu", cache_dir)  # from the cache, same weights
    assert torch.equal(again.networks.G.fc.weight, animator.networks.G.fc.weight)


def test_bf16_keeps_the_keypoint_mlps_in_fp32_and_cuda_placement_on_a_cpu_device_means_cpu(cache_dir):
    cfg = LivePortraitConfig(**{**MINI, "precision": "bf16", "placement": "cuda"})
    animator = LivePortraitAnimator.load(cfg, "cpu", cache_dir)
    assert animator.device == torch.device("cpu") and animator.dtype == torch.bfloat16
    assert animator.networks.W.fourth.weight.dtype == torch.bfloat16
    assert animator.networks.stitching.mlp[0].weight.dtype == torch.float32


def test_fast_path_switches_reach_the_networks(cache_dir):
    """Wiring only: whether NHWC or torch.compile pays is for the device check to measure (a CPU
    Inductor compile of W and G would take minutes here)."""
    cfg = LivePortraitConfig(**{**MINI, "channels_last": True, "compile": "reduce-overhead"})
    animator = LivePortraitAnimator.load(cfg, "cpu", cache_dir)
    assert animator.channels_last
    assert isinstance(animator.networks.W, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(animator.networks.G, torch._dynamo.eval_frame.OptimizedModule)
    conv = next(m for m in animator.networks.G.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision", ["nf4", "int8"])
def test_quantised_precisions_are_refused(cache_dir, precision):
    with pytest.raises(ConfigError, match="models.liveportrait.precision"):
        LivePortraitAnimator.load(LivePortraitConfig(**{**MINI, "precision": precision}), "cpu", cache_dir)


def test_missing_weights_are_named(cache_dir, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        LivePortraitAnimator.load(LivePortraitConfig(**{**MINI, "source": str(tmp_path / "nowhere")}), "cpu", cache_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="no base_models/"):
        LivePortraitAnimator.load(LivePortraitConfig(**{**MINI, "source": str(tmp_path / "empty")}), "cpu", cache_dir)
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache"):  # offline, never downloads
        LivePortraitAnimator.load(LivePortraitConfig(**{**MINI, "source": "KwaiVGI/LivePortrait"}), "cpu", cache_dir)


def test_a_folder_in_the_hugging_face_repo_layout_loads(animator, cache_dir, tmp_path):
    shutil.copytree(cache_dir / "miniature" / "liveportrait", tmp_path / "repo" / "liveportrait")
    loaded = LivePortraitAnimator.load(LivePortraitConfig(**{**MINI, "source": str(tmp_path / "repo")}), "cpu",
                                       cache_dir)
    assert torch.equal(loaded.networks.W.fourth.weight, animator.networks.W.fourth.weight)


# ---- the source --------------------------------------------------------------------------------


def test_prepare_crops_resizes_and_extracts(animator, portrait, source):
    assert source.image_256.shape == (1, 3, 256, 256) and source.image_256.dtype == torch.float32
    # 512² → 256² bilinear is the mean of each 2×2 block, as cv2.resize does in the public code.
    blocks = portrait.astype(np.float32).reshape(256, 2, 256, 2, 3).mean(axis=(1, 3)) / 255
    assert np.allclose(source.image_256[0].permute(1, 2, 0).numpy(), blocks, atol=1e-5)
    c = MINIATURE.appearance_feature_extractor
    assert source.feature.shape == (1, c.reshape_channel, c.reshape_depth, 64, 64)
    shapes = {k: tuple(v.shape) for k, v in source.kp_info.items()}
    assert shapes == {"kp": (1, 21, 3), "exp": (1, 21, 3), "pitch": (1,), "yaw": (1,), "roll": (1,),
                      "t": (1, 3), "scale": (1, 1)}
    assert all(v.dtype == torch.float32 for v in source.kp_info.values())
    assert torch.equal(source.x_s, transform_keypoint(source.kp_info))
    assert (-97.5 <= source.kp_info["yaw"]).all() and (source.kp_info["yaw"] <= 100.5).all()


def test_prepare_takes_the_centred_square_of_a_non_square_portrait(animator, portrait):
    wide = np.concatenate([np.zeros((512, 128, 3), np.uint8), portrait, np.full((512, 128, 3), 255, np.uint8)], axis=1)
    assert torch.equal(animator.prepare(wide).image_256, animator.prepare(portrait).image_256)
    with pytest.raises(ValueError, match="uint8"):
        animator.prepare(portrait.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        animator.prepare(portrait[..., 0])


# ---- the keypoint composition ------------------------------------------------------------------


def _rows(sequence: DrivingSequence) -> DrivingRows:
    return DrivingRows.upload(sequence, "cpu")


def test_a_yaw_delta_is_the_transform_at_the_turned_pose(source):
    rows = _rows(_sequence(2, rotation_delta=[[0, 10, 0], [-5, 0, 7]]))
    x_d = compose_driving_keypoints(source.kp_info, rows)
    info = source.kp_info
    for i, (dp, dy, dr) in enumerate([(0, 10, 0), (-5, 0, 7)]):
        turned = transform_keypoint({**info, "pitch": info["pitch"] + dp, "yaw": info["yaw"] + dy,
                                     "roll": info["roll"] + dr})
        assert torch.allclose(x_d[i], turned[0], atol=1e-6)
    assert not torch.allclose(x_d[0], source.x_s[0], atol=1e-3)


def test_expression_translation_and_scale_by_hand(source):
    info, x_s = source.kp_info, source.x_s[0]
    scale, t = info["scale"][0, 0], info["t"][0]
    exp = np.zeros((3, 21, 3), np.float32)
    exp[0, 19, 1] = 0.05
    rows = _rows(_sequence(3, exp_delta=exp, translation_delta=[[0, 0, 0], [0.1, -0.2, 0.5], [0, 0, 0]],
                           scale_factor=[1.0, 1.0, 1.1]))
    x_d = compose_driving_keypoints(info, rows)
    opened = x_s.clone()
    opened[19, 1] += scale * 0.05  # the expression is scaled with the face
    assert torch.allclose(x_d[0], opened, atol=1e-6)
    assert torch.allclose(x_d[1], x_s + torch.tensor([0.1, -0.2, 0.0]), atol=1e-6)  # t_z is dropped
    t_xy0 = torch.cat([t[:2], t.new_zeros(1)])
    assert torch.allclose(x_d[2] - t_xy0, 1.1 * (x_s - t_xy0), atol=1e-6)


def test_neutral_rows_give_the_source_keypoints(source):
    x_d = compose_driving_keypoints(source.kp_info, _rows(_sequence(3)))
    assert torch.allclose(x_d, source.x_s.expand(3, -1, -1), atol=1e-6)


def test_bad_driving_values_are_refused(animator, source):
    with pytest.raises(ValueError, match="scale_factor must be positive"):
        animator.track(source, _sequence(2, scale_factor=[1.0, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        animator.track(source, _sequence(2, rotation_delta=[[0, np.nan, 0], [0, 0, 0]]))


# ---- rendering ---------------------------------------------------------------------------------


def test_the_track_is_a_video_track_and_checks_its_ring(animator, source):
    track = animator.track(source, _sequence(4))
    assert isinstance(track, LivePortraitTrack) and track.name == "liveportrait" and track.n_frames == 4
    with pytest.raises(ValueError, match="uint8"):
        track.render(0, torch.zeros(2, 3, 512, 512))
    with pytest.raises(ValueError, match=r"\(B, 3, 512, 512\)"):
        track.render(0, torch.zeros(2, 3, 256, 256, dtype=torch.uint8))
    with pytest.raises(IndexError, match="4-frame"):
        track.render(3, torch.zeros(2, 3, 512, 512, dtype=torch.uint8))


def test_neutral_rows_render_the_source_reconstruction_in_every_frame(animator, source):
    frames = _render(animator.track(source, _sequence(6)), 6, ring_frames=6)  # chunks of 4 + 2
    assert frames.dtype == torch.uint8 and frames.shape == (6, 3, 512, 512)
    assert frames.float().std() > 5  # an image, not a flat field
    for i in range(1, 4):
        assert torch.equal(frames[i], frames[0])  # one batched call
    assert (frames[4:].int() - frames[0].int()).abs().max() <= 1  # another batch size: same up to rounding
    # The reconstruction by hand: W from x_s to the stitched x_s, then G.
    with torch.inference_mode():
        n = animator.networks
        x_d = stitch(n.stitching, source.x_s, source.x_s)
        expected = to_uint8(n.G(n.W(source.feature, kp_source=source.x_s, kp_driving=x_d)["out"]))[0]
    assert (frames[0].int() - expected.int()).abs().max() <= 1


def test_without_stitching_neutral_rows_warp_by_the_identity(animator, source):
    cfg = animator.cfg.model_copy(update={"stitching": False})
    plain = LivePortraitAnimator(animator.networks, cfg, "cpu")
    frame = _render(plain.track(source, _sequence(1)), 1)[0]
    with torch.inference_mode():
        n = animator.networks
        warped = n.W(source.feature, kp_source=source.x_s, kp_driving=source.x_s)
        expected = to_uint8(n.G(warped["out"]))[0]
    d = MINIATURE.appearance_feature_extractor.reshape_depth
    from vortex.models.liveportrait.util import make_coordinate_grid

    assert torch.allclose(warped["deformation"][0], make_coordinate_grid(d, 64, 64, like=source.x_s), atol=1e-5)
    assert (frame.int() - expected.int()).abs().max() <= 1


def test_a_mouth_ramp_changes_the_frames_more_and_more(animator, source):
    frames = _render(animator.track(source, _mouth_ramp(8)), 8).float()
    change = [(frames[i] - frames[0]).abs().mean().item() for i in range(8)]
    print("mouth ramp: mean |frame_i - frame_0| =", [round(c, 4) for c in change])
    assert change[0] == 0 and all(c > 0 for c in change[1:])
    # Monotone up to rounding noise: every frame moves further from the first than frames 2 back.
    assert all(change[i] > change[i - 2] for i in range(2, 8))
    assert change[-1] > 1.5 * change[3]


def test_a_yaw_sweep_changes_the_frames(animator, source):
    rotation = np.zeros((4, 3), np.float32)
    rotation[:, 1] = [0, 5, 10, 15]
    frames = _render(animator.track(source, _sequence(4, rotation_delta=rotation)), 4).float()
    change = [(frames[i] - frames[0]).abs().mean().item() for i in range(4)]
    assert change[0] == 0 and all(c > 0 for c in change[1:])
    # Random weights promise no monotone response to a turn, but each pose is its own frame.
    assert all(not torch.equal(frames[i], frames[j]) for i in range(4) for j in range(i))


def test_rendering_is_deterministic_and_chunking_does_not_change_frames(animator, source):
    sequence = _mouth_ramp(5)
    whole = _render(animator.track(source, sequence), 5, ring_frames=5)  # B=5 > batch_frames=4: chunks 4 + 1
    again = _render(animator.track(source, sequence), 5, ring_frames=5)
    assert torch.equal(whole, again)
    single = LivePortraitAnimator(animator.networks, animator.cfg.model_copy(update={"batch_frames": 1}), "cpu")
    one_by_one = _render(single.track(source, sequence), 5, ring_frames=1)
    diff = (whole.int() - one_by_one.int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.01


def test_streams_batched_in_one_call_render_what_each_renders_alone(animator, source, portrait):
    """The render queue gives LivePortrait frames of several streams at once (render_many): each
    stream's frames are the ones it renders alone."""
    other = animator.prepare(np.ascontiguousarray(np.flip(portrait, axis=1)))
    ring = torch.zeros(8, 3, 512, 512, dtype=torch.uint8)
    queue = RenderQueue(ring, None, batch_streams=True)
    try:
        jobs = [queue.submit(SlotVideo(animator, s, None, torch.zeros(3, 512, 512, dtype=torch.uint8)), 0,
                             _mouth_ramp(3), 1) for s in (source, other)]
        frames = [job.result(CancelToken()) for job in jobs]
    finally:
        queue.close()
    assert queue.batches <= 2
    for s, got in zip((source, other), frames):
        alone = _render(animator.track(s, _mouth_ramp(3)), 3).permute(0, 2, 3, 1).numpy()
        assert np.abs(got.astype(int) - alone.astype(int)).max() <= 1


def test_channels_last_renders_the_same_frames(animator, source, cache_dir):
    nhwc = LivePortraitAnimator(LivePortraitAnimator.load(animator.cfg, "cpu", cache_dir).networks, animator.cfg,
                                "cpu", channels_last=True)
    assert nhwc.networks.G.fc.weight.is_contiguous(memory_format=torch.channels_last)
    sequence = _mouth_ramp(2)
    diff = (_render(nhwc.track(source, sequence), 2).int() - _render(animator.track(source, sequence), 2).int()).abs()
    assert diff.max() <= 1


def test_bf16_frames_stay_close_to_fp32(animator, cache_dir, portrait, source):
    bf16 = LivePortraitAnimator.load(animator.cfg.model_copy(update={"precision": "bf16"}), "cpu", cache_dir)
    state = bf16.prepare(portrait)
    assert state.feature.dtype == torch.bfloat16 and state.x_s.dtype == torch.float32
    sequence = _mouth_ramp(2)
    low = _render(bf16.track(state, sequence), 2).float()
    full = _render(animator.track(source, sequence), 2).float()
    assert (low - full).abs().mean() < 3  # levels of 255
