"""The default profile is a real face that talks: framed, animated in place, pasted back, and
checked on its own pixels (identity, lip sync) and sound (the speech check). CPU, offline."""

import json
from functools import partial

import numpy as np
import pytest
from PIL import Image
from support.engines import engine_fixture, engine_of
from support.recipes import short_recipe

from vortex.cli import main
from vortex.config import VortexConfig
from vortex.faces import FaceAnalyzer
from vortex.media import probe_mp4
from vortex.engine.portrait import stand_in_portrait


recipe = partial(short_recipe, slot_id=8, seed=11, duration=3.0, script="Good evening, and welcome to the news.",
                 voice="anchor", prompt="portrait of a news anchor")
pipeline = engine_fixture(name="pipeline")  # the embedded default: cpu-preview


@pytest.fixture(scope="module")
def slot(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("face") / "slot.mp4"
    result = pipeline.generate_slot_sync(recipe(), output=out, keep_frames=True)
    assert result.success, result.error_msg
    return result, out


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer.load(VortexConfig.load().faces)


def test_the_default_profile_animates_the_stand_in_portrait_in_place(slot):
    result, out = slot
    assert result.animation == "preview" and result.actor["origin"] == "astronaut (stand-in)" and result.actor["framed"]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["animation"] == "preview" and "animation (preview mesh warp)" in meta["stand_ins"]
    info = probe_mp4(out)
    assert (info.n_frames, info.n_audio_samples) == (72, 72000)
    # Away from the head the frame is the portrait itself (pasted back through a mask that is 0 there).
    portrait = stand_in_portrait("astronaut", 512, 512)
    far = (slice(300, 512), slice(0, 512))  # the suit, the flag, the helmet: below the face crop
    for frame in result.video_frames[::12]:
        assert np.abs(frame[far].astype(int) - portrait[far].astype(int)).max() <= 2


def test_every_sampled_output_frame_shows_a_face_that_moves(slot, analyzer):
    result, _ = slot
    frames = result.video_frames
    for i in range(0, len(frames), 6):
        assert analyzer.primary_face(frames[i]) is not None, f"no face in frame {i}"
    box = result.actor["face_box"]
    face = (slice(box[1], box[3] + 20), slice(box[0], box[2]))
    one_second_apart = [np.abs(frames[i][face].astype(int) - frames[i + 24][face].astype(int)).mean()
                        for i in range(0, len(frames) - 24, 12)]
    assert min(one_second_apart) > 0.3 and max(one_second_apart) > 1.5, one_second_apart


def test_the_checks_are_real_enforced_and_pass(slot):
    v = slot[0].verification
    assert v.identity.enforced and v.identity.passed and v.identity.faces_found == len(v.identity.distances)
    assert v.identity.worst < v.identity.max_distance == 0.6
    assert v.lip_sync.enforced and v.lip_sync.passed and v.lip_sync.r >= v.lip_sync.floor
    assert abs(v.lip_sync.lag_ms) <= 200 and v.lip_sync.frames_without_face == 0
    assert v.speech.enforced and v.speech.passed and v.speech.wer <= v.speech.max_wer
    assert "evening" in v.speech.transcript.lower()
    assert not v.enforced  # the CLIP stand-ins are reported, not enforced


@pytest.mark.parametrize("script", ["Here is the weather for tomorrow: sunny, then rain.",
                                    "Thank you for watching. See you next week."])
def test_lip_sync_holds_on_other_scripts(pipeline, script):
    result = pipeline.generate_slot_sync(recipe(script=script, duration=4.0, seed=3))
    assert result.success, result.error_msg
    assert result.verification.lip_sync.r >= result.verification.lip_sync.floor


def test_an_actor_image_is_framed_wherever_the_face_is(pipeline, tmp_path):
    # The astronaut moved to the lower right of a larger canvas: framing must follow the face.
    canvas = np.full((768, 768, 3), 90, dtype=np.uint8)
    canvas[256:, 256:] = stand_in_portrait("astronaut", 512, 512)
    Image.fromarray(canvas).save(tmp_path / "host.png")
    result = pipeline.generate_slot_sync(recipe(script="Hello there.", duration=1.5, actor_image=str(tmp_path / "host.png")))
    assert result.success, result.error_msg
    assert result.actor["origin"] == "actor_image" and result.verification.identity.passed


def test_a_portrait_without_a_face_is_bad_input(pipeline, tmp_path):
    from skimage import data

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    result = pipeline.generate_slot_sync(recipe(script="Hello there.", duration=1.5,
                                                actor_image=str(tmp_path / "coffee.png")))
    assert not result.success and result.error_kind == "input" and result.failed_phase == "actor"
    assert "visual_track.actor_image" in result.error_msg and "no face" in result.error_msg


def test_the_cli_exits_2_for_a_portrait_without_a_face(tmp_path, capsys):
    from skimage import data

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe(script="Hello there.", duration=1.5, actor_image="coffee.png")))
    assert main(["generate", str(path), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert "visual_track.actor_image" in err and "no face" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_a_generated_portrait_without_a_face_is_retried_then_fails_saying_why(tmp_path):
    """The miniature Flux paints no face: with framing on, every take is tried, then the slot fails."""
    path = tmp_path / "framed.yaml"
    path.write_text("extends: cpu-miniature\nfaces: {framing: true}\npipeline: {animation: still}\n")
    with engine_of(VortexConfig.load(path=path)) as pipe:
        result = pipe.generate_slot_sync(recipe(script="Hello there.", duration=1.5, seed=40))
    assert not result.success and result.failed_phase == "actor" and result.error_kind == "model"
    assert "no detectable face in 3 take(s)" in result.error_msg and "40, 41, 42" in result.error_msg
