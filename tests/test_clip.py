"""The CLIP verifier, on miniature B/32 and L/14 checkpoints loaded through the real loader."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from vortex.config import ClipConfig, VerificationConfig, VortexConfig
from vortex.errors import ConfigError, VortexInitializationError
from vortex.models.clip import ClipVerifier, SharedTextTower, evenly_spread_indices
from vortex.models.miniature.clip import save_miniature_clip
from vortex.weights import resolve_weights

PROMPT = "a news anchor smiling at the camera"
K = 4


def _mini(precision: str = "fp32") -> ClipConfig:
    return ClipConfig(source="miniature", precision=precision, placement="cpu")


def _load(cache: Path, precision: str = "fp32", shared: SharedTextTower | None = None, **verification) -> ClipVerifier:
    v = VerificationConfig(frames=K, **verification)
    return ClipVerifier.load(_mini(precision), _mini(precision), v, "cpu", cache, shared_l_text=shared)


def _folder(cache: Path, component: str) -> Path:
    size = {"clip_b": "b32", "clip_l": "l14"}[component]
    return resolve_weights("miniature", component=component, cache_dir=cache,
                           build_miniature=lambda p: save_miniature_clip(p, size, seed=0))


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clip-cache")


@pytest.fixture(scope="session")
def verifier(cache) -> ClipVerifier:
    return _load(cache)


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    """Ten distinct 96x96 frames: a colour gradient whose hue drifts frame by frame, plus noise."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 1, 96)[None, :, None] * np.linspace(0, 1, 96)[:, None, None]
    out = []
    for i in range(10):
        colour = np.array([np.sin(i), np.cos(i), np.sin(2 * i)]) * 0.5 + 0.5
        img = 255 * ramp * colour + rng.normal(0, 20, (96, 96, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _tower_from_l14(cache: Path) -> SharedTextTower:
    """Flux's text encoder as the engine holds it: CLIP-L/14's text tower, loaded on its own."""
    folder = _folder(cache, "clip_l")
    model, info = CLIPTextModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    return SharedTextTower(model.eval(), CLIPTokenizer.from_pretrained(folder), "cpu")


# ---- sampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(100, 4), (1080, 8), (9, 8), (8, 8), (5, 1), (3, 8), (1, 8)])
def test_sample_indices_are_evenly_spread(n, k):
    idx = evenly_spread_indices(n, k)
    assert len(idx) == min(n, k)
    assert idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < n
    if k < n:  # the middle of each of k equal stretches, up to rounding
        stretch = n / k
        assert abs(idx[0] - (stretch / 2 - 0.5)) <= 1
        assert all(abs(gap - stretch) <= 1 for gap in np.diff(idx))


def test_sample_indices_values(verifier):
    assert verifier.sample_indices(100) == [12, 37, 62, 87]
    assert verifier.sample_indices(2) == [0, 1]  # K > N: every frame, once
    assert evenly_spread_indices(9, 1) == [4]  # one frame: the middle one
    with pytest.raises(ValueError):
        verifier.sample_indices(0)


# ---- the report ---------------------------------------------------------------------------------


def test_report_fields_and_embedding(verifier, frames):
    report, embedding = verifier.verify(frames, PROMPT)
    v = verifier.verification
    assert report.frame_indices == verifier.sample_indices(len(frames))
    assert len(report.cosine_b) == len(report.cosine_l) == K
    assert all(isinstance(c, float) and -1 <= c <= 1 for c in report.cosine_b + report.cosine_l)
    assert report.mean_b == pytest.approx(np.mean(report.cosine_b))
    assert report.mean_l == pytest.approx(np.mean(report.cosine_l))
    assert report.ensemble == pytest.approx(v.weight_b * report.mean_b + v.weight_l * report.mean_l)
    assert (report.threshold, report.threshold_b, report.threshold_l) == (
        v.ensemble_threshold, v.threshold_b, v.threshold_l)
    assert report.enforced is True and report.notes == []
    assert embedding.shape == (512,) and embedding.dtype == np.float32
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_deterministic_across_calls_loads_and_rebuilt_miniatures(verifier, frames, tmp_path):
    first, emb1 = verifier.verify(frames, PROMPT)
    again, emb2 = verifier.verify(frames, PROMPT)
    rebuilt, emb3 = _load(tmp_path / "fresh-cache").verify(frames, PROMPT)
    assert first == again == rebuilt
    assert np.array_equal(emb1, emb2) and np.array_equal(emb1, emb3)


def test_cosines_equal_a_direct_transformers_computation(verifier, frames, cache):
    report, _ = verifier.verify(frames, PROMPT)
    for component, cosines in (("clip_b", report.cosine_b), ("clip_l", report.cosine_l)):
        folder = _folder(cache, component)
        model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
        processor = CLIPImageProcessorPil.from_pretrained(folder)
        tokens = CLIPTokenizer.from_pretrained(folder)([PROMPT], return_tensors="pt")
        with torch.no_grad():
            for j, i in enumerate(report.frame_indices):
                pixels = processor(images=[frames[i]], return_tensors="pt")["pixel_values"]
                image = model.get_image_features(pixel_values=pixels)
                text = model.get_text_features(**tokens)
                # transformers 5 returns a model output whose pooler_output is the projected vector
                image = image if torch.is_tensor(image) else image.pooler_output
                text = text if torch.is_tensor(text) else text.pooler_output
                expected = torch.nn.functional.cosine_similarity(image, text).item()
                assert cosines[j] == pytest.approx(expected, abs=1e-5), (component, i)


def test_frames_and_prompt_change_the_scores(verifier, frames):
    report, embedding = verifier.verify(frames, PROMPT)
    inverted, inv_embedding = verifier.verify(255 - frames, PROMPT)
    other_prompt, same_embedding = verifier.verify(frames, "a bowl of soup on a wooden table")
    assert not np.allclose(report.cosine_b, inverted.cosine_b, atol=1e-4)
    assert not np.allclose(report.cosine_l, inverted.cosine_l, atol=1e-4)
    assert not np.allclose(embedding, inv_embedding, atol=1e-4)
    assert not np.allclose(report.cosine_b, other_prompt.cosine_b, atol=1e-4)
    assert not np.allclose(report.cosine_l, other_prompt.cosine_l, atol=1e-4)
    assert np.array_equal(embedding, same_embedding)  # the embedding describes the frames only


def test_broadcast_view_of_one_image(verifier, frames):
    still = np.broadcast_to(frames[3], (1080, *frames.shape[1:]))
    report, embedding = verifier.verify(still, PROMPT)
    single, single_embedding = verifier.verify(frames[3:4], PROMPT)
    assert report.frame_indices == [135, 405, 675, 945]
    assert np.allclose(report.cosine_b, single.cosine_b[0], atol=1e-6)
    assert np.allclose(report.cosine_l, single.cosine_l[0], atol=1e-6)
    assert np.allclose(embedding, single_embedding, atol=1e-6)


def test_fewer_frames_than_k_and_long_prompt_are_noted(verifier, frames):
    report, _ = verifier.verify(frames[:2], "word " * 200)
    assert report.frame_indices == [0, 1] and len(report.cosine_l) == 2
    assert any("only 2 frames" in n for n in report.notes)
    assert any("77-token" in n for n in report.notes)


def test_bad_frames_are_refused(verifier, frames):
    with pytest.raises(ValueError, match="uint8"):
        verifier.verify(frames.astype(np.float32), PROMPT)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        verifier.verify(frames[0], PROMPT)


# ---- thresholds ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lenient(cache) -> ClipVerifier:
    return _load(cache, threshold_b=0.0, threshold_l=0.0, enforce=False)


def _positive_prompt(verifier: ClipVerifier, frames: np.ndarray) -> str:
    """A prompt whose mean cosines are above zero with both models (random weights: search a few)."""
    for prompt in (PROMPT, "a cat", "portrait of a man", "a red car", "sunset over the sea"):
        report, _ = verifier.verify(frames, prompt)
        if report.mean_b > 0 and report.mean_l > 0:
            return prompt
    pytest.fail("no candidate prompt scores above zero with both miniatures")


def test_threshold_override_is_honoured(lenient, frames):
    prompt = _positive_prompt(lenient, frames)
    passes, _ = lenient.verify(frames, prompt, threshold=0.0)
    fails, _ = lenient.verify(frames, prompt, threshold=1.0)
    at_score, _ = lenient.verify(frames, prompt, threshold=passes.ensemble)
    above_score, _ = lenient.verify(frames, prompt, threshold=passes.ensemble + 1e-4)
    assert passes.passed and passes.threshold == 0.0
    assert not fails.passed and fails.threshold == 1.0
    assert at_score.passed and not above_score.passed
    assert passes.enforced is False and not fails.fails_slot  # enforce copied: a stand-in fails no slot


@pytest.mark.parametrize("strict", [{"threshold_b": 1.0, "threshold_l": 0.0}, {"threshold_b": 0.0, "threshold_l": 1.0}])
def test_per_model_thresholds_gate_the_pass(strict, lenient, cache, frames):
    prompt = _positive_prompt(lenient, frames)
    report, _ = _load(cache, **strict).verify(frames, prompt, threshold=0.0)
    assert report.ensemble >= 0.0 and not report.passed and report.fails_slot


def test_threshold_above_half_is_noted(verifier, frames):
    high, _ = verifier.verify(frames, PROMPT, threshold=0.7)
    usual, _ = verifier.verify(frames, PROMPT, threshold=0.3)
    assert high.threshold == 0.7 and not high.passed
    assert any("0.2-0.35" in n for n in high.notes)
    assert not any("0.2-0.35" in n for n in usual.notes)


# ---- sharing Flux's text tower ------------------------------------------------------------------


def _text_towers(verifier: ClipVerifier) -> int:
    from transformers.models.clip.modeling_clip import CLIPTextEmbeddings

    return sum(isinstance(m, CLIPTextEmbeddings) for module in verifier.modules().values() for m in module.modules())


def test_shared_text_tower_gives_the_same_results(verifier, cache, frames):
    tower = _tower_from_l14(cache)
    shared = _load(cache, shared=tower)
    report, embedding = verifier.verify(frames, PROMPT)
    shared_report, shared_embedding = shared.verify(frames, PROMPT)
    assert shared.shares_l_text and not verifier.shares_l_text
    assert shared_report.cosine_b == report.cosine_b and np.array_equal(shared_embedding, embedding)
    assert np.allclose(shared_report.cosine_l, report.cosine_l, atol=1e-6)
    # No second L/14 text tower: only B/32's is held, and Flux's tower is not listed as ours.
    assert set(shared.modules()) == {"clip_b_vision", "clip_b_text", "clip_l_vision", "clip_l_text_projection"}
    assert _text_towers(verifier) == 2 and _text_towers(shared) == 1
    assert all(m is not tower.model for module in shared.modules().values() for m in module.modules())


def test_mismatched_shared_tower_is_refused(cache):
    good = _tower_from_l14(cache)
    config = CLIPTextConfig(**{**good.model.config.to_dict(), "num_hidden_layers": 3})
    torch.manual_seed(0)
    wrong = SharedTextTower(CLIPTextModel(config).eval(), good.tokenizer, "cpu")
    with pytest.raises(VortexInitializationError, match="num_hidden_layers 3 != 2"):
        _load(cache, shared=wrong)


# ---- precision ----------------------------------------------------------------------------------


def test_int8_on_cpu_quantizes_linear_layers_and_keeps_scores(verifier, cache, frames):
    int8 = _load(cache, precision="int8")
    for name, module in int8.modules().items():
        layers = list(module.modules())
        assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in layers), name
        assert not any(type(m) is torch.nn.Linear for m in layers), name
    report, embedding = verifier.verify(frames, PROMPT)
    q_report, q_embedding = int8.verify(frames, PROMPT)
    assert np.allclose(q_report.cosine_b, report.cosine_b, atol=0.02)
    assert np.allclose(q_report.cosine_l, report.cosine_l, atol=0.02)
    assert float(q_embedding @ embedding) > 0.99


@pytest.mark.parametrize("which", ["clip_b", "clip_l"])
def test_nf4_is_refused_before_anything_loads(which, tmp_path):
    b = _mini("nf4" if which == "clip_b" else "fp32")
    l = _mini("nf4" if which == "clip_l" else "fp32")
    with pytest.raises(ConfigError, match=f"models.{which}.precision"):
        ClipVerifier.load(b, l, VerificationConfig(), "cpu", tmp_path)
    assert not (tmp_path / "miniature").exists()


def test_int8_on_cuda_without_bitsandbytes_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail, as when absent
    cuda = ClipConfig(source="miniature", precision="int8", placement="cuda")
    with pytest.raises(VortexInitializationError, match=r"pip install 'vortex\[cuda\]'"):
        ClipVerifier.load(cuda, cuda, VerificationConfig(), "cuda:0", tmp_path)


# ---- checkpoints that are not what they claim ---------------------------------------------------


def test_checkpoint_missing_tower_weights_is_refused(cache, tmp_path):
    broken = tmp_path / "clip-b-without-vision"
    shutil.copytree(_folder(cache, "clip_b"), broken)
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("vision_model.encoder")},
              broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(VortexInitializationError, match="lacks weights"):
        ClipVerifier.load(ClipConfig(source=str(broken), precision="fp32", placement="cpu"), _mini(),
                          VerificationConfig(), "cpu", cache)


def test_folder_of_another_model_type_is_refused(cache, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_vision_model"}))
    with pytest.raises(VortexInitializationError, match="model_type 'clip'"):
        ClipVerifier.load(ClipConfig(source=str(tmp_path), placement="cpu", precision="fp32"), _mini(),
                          VerificationConfig(), "cpu", cache)


# ---- identity against the source portrait --------------------------------------------------------

def test_identity_against_the_portrait():
    cfg = VortexConfig.load()
    verifier = ClipVerifier.load(cfg.models.clip_b, cfg.models.clip_l, cfg.verification, "cpu",
                                 Path(os.environ["VORTEX_CACHE"]))
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    same = np.broadcast_to(portrait, (6, 64, 64, 3))
    report, embedding = verifier.verify(same, "a face", threshold=0.0, reference=portrait)
    assert report.clip_identity is not None and len(report.clip_identity) == len(report.frame_indices)
    assert min(report.clip_identity) == pytest.approx(1.0, abs=1e-4) and report.clip_identity_threshold == 0.80
    plain, _ = verifier.verify(same, "a face", threshold=0.0)
    assert plain.clip_identity is None and np.allclose(plain.cosine_b, report.cosine_b, atol=1e-5)
    assert np.allclose(embedding, verifier.verify(same, "a face")[1], atol=1e-5)  # the portrait is not in the embedding

    other = np.full((6, 64, 64, 3), 128, np.uint8)  # a collapsed, featureless video
    drift, _ = verifier.verify(other, "a face", threshold=0.0, reference=portrait)
    assert drift.clip_identity_min < report.clip_identity_min
    strict = ClipVerifier.load(cfg.models.clip_b, cfg.models.clip_l,
                               cfg.verification.model_copy(update={"identity_threshold": drift.clip_identity_min + 1e-3,
                                                                   "threshold_b": 0.0, "threshold_l": 0.0}),
                               "cpu", Path(os.environ["VORTEX_CACHE"]))
    failed = strict.verify(other, "a face", threshold=0.0, reference=portrait)[0]
    assert failed.clip_identity_passed is False and not failed.passed
    assert strict.verify(same, "a face", threshold=0.0, reference=portrait)[0].clip_identity_passed is True
