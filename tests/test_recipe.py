"""Recipe validation: every bad input names its field and what is allowed."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vortex.errors import RecipeError
from vortex.recipe import Recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def good() -> dict:
    return {
        "slot_params": {"slot_id": 3, "duration_sec": 2.5, "fps": 24, "seed": 11},
        "audio_track": {"script": "Hello there.", "voice_id": "rick_c137", "speed": 1.0, "emotion": "neutral"},
        "visual_track": {"prompt": "portrait of a man"},
        "semantic_constraints": {"clip_threshold": 0.2},
    }


def with_(path: str, value):
    data = good()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DELETE = object()


def test_good_recipe_and_defaults():
    r = Recipe.from_dict(good())
    assert r.slot_params.n_frames == 60
    assert r.slot_params.n_samples(24000) == 60000
    minimal = {"slot_params": {"slot_id": 1, "duration_sec": 1}, "audio_track": {"script": "Hi."},
               "visual_track": {"prompt": "a face"}}
    m = Recipe.from_dict(minimal)
    assert (m.slot_params.fps, m.audio_track.voice_id, m.audio_track.speed, m.audio_track.emotion.value) == (24, "rick_c137", 1.0, "neutral")
    assert m.semantic_constraints.clip_threshold is None and m.slot_params.seed is None


def test_frame_count_rounds_duration_times_fps():
    r = Recipe.from_dict(with_("slot_params.duration_sec", 0.7))
    assert r.slot_params.n_frames == round(0.7 * 24) == 17


@pytest.mark.parametrize(
    "path, value, field, allowed",
    [
        ("slot_params.slot_id", _DELETE, "slot_params.slot_id", "is required"),
        ("slot_params.duration_sec", _DELETE, "slot_params.duration_sec", "is required"),
        ("slot_params.duration_sec", 0, "slot_params.duration_sec", "> 0 and <= 45"),
        ("slot_params.duration_sec", -3, "slot_params.duration_sec", "> 0 and <= 45"),
        ("slot_params.duration_sec", 45.5, "slot_params.duration_sec", "> 0 and <= 45"),
        ("slot_params.duration_sec", "ten", "slot_params.duration_sec", "> 0 and <= 45"),
        ("slot_params.slot_id", "abc", "slot_params.slot_id", "an integer"),
        ("slot_params.fps", 0, "slot_params.fps", "frame rate"),
        ("audio_track.speed", 2.5, "audio_track.speed", "0.5 to 2.0"),
        ("audio_track.speed", 0.1, "audio_track.speed", "0.5 to 2.0"),
        ("audio_track.emotion", "bored", "audio_track.emotion", "neutral, excited, sad, angry, manic"),
        ("audio_track.script", "", "audio_track.script", "non-empty"),
        ("audio_track.script", "   ", "audio_track.script", "non-empty"),
        ("audio_track.script", 42, "audio_track.script", "non-empty"),
        ("audio_track.script", _DELETE, "audio_track.script", "is required"),
        ("visual_track.prompt", _DELETE, "visual_track.prompt", "is required"),
        ("semantic_constraints.clip_threshold", 1.5, "semantic_constraints.clip_threshold", "0 to 1"),
    ],
)
def test_bad_fields_are_named(path, value, field, allowed):
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(with_(path, value))
    assert info.value.field == field
    assert field in str(info.value) and allowed in str(info.value)


def test_missing_section_is_named():
    data = good()
    del data["audio_track"]
    with pytest.raises(RecipeError, match="'audio_track': is required"):
        Recipe.from_dict(data)


def test_unknown_voice_is_named_with_the_known_ones():
    r = Recipe.from_dict(with_("audio_track.voice_id", "nobody"))
    with pytest.raises(RecipeError, match=r"audio_track.voice_id.*unknown voice 'nobody'.*anchor, rick_c137"):
        r.check_voice(["rick_c137", "anchor"])


def test_wrapped_shape_lifts_slot_id_and_seed():
    inner = good()
    del inner["slot_params"]["slot_id"], inner["slot_params"]["seed"]
    r = Recipe.from_dict({"recipe": inner, "slot_id": 77, "seed": 5})
    assert (r.slot_params.slot_id, r.slot_params.seed) == (77, 5)


def test_example_files_parse():
    assert Recipe.from_file(EXAMPLES / "rick_intro.json").slot_params.slot_id == 1
    wrapped = Recipe.from_file(EXAMPLES / "wrapped_recipe.yaml")
    assert (wrapped.slot_params.slot_id, wrapped.slot_params.seed, wrapped.audio_track.emotion.value) == (7, 99, "excited")


@pytest.mark.parametrize("text", ['{"slot_params": {', "slot_params: [unclosed", "- just\n- a list"])
def test_malformed_text_is_a_recipe_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        Recipe.from_file(path)
    assert str(path) in str(info.value) or info.value.field == "recipe"


def test_unreadable_file(tmp_path):
    with pytest.raises(RecipeError, match="cannot be read"):
        Recipe.from_file(tmp_path / "absent.json")


def test_actor_image_is_checked_and_resolved(tmp_path):
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(tmp_path / "host.png")
    data = with_("visual_track.actor_image", "host.png")
    (tmp_path / "r.json").write_text(json.dumps(data))
    r = Recipe.from_file(tmp_path / "r.json")
    assert r.visual_track.actor_image == str((tmp_path / "host.png").resolve())

    (tmp_path / "junk.png").write_bytes(b"not an image")
    (tmp_path / "r2.json").write_text(json.dumps(with_("visual_track.actor_image", "junk.png")))
    with pytest.raises(RecipeError, match="visual_track.actor_image.*cannot read image 'junk.png'"):
        Recipe.from_file(tmp_path / "r2.json")


def test_canonical_json_is_stable_and_seed_sensitive():
    a, b = Recipe.from_dict(good()), Recipe.from_dict(json.loads(json.dumps(good())))
    assert a.sha256() == b.sha256()
    assert a.with_overrides(seed=12).sha256() != a.sha256()
