"""The phases of a slot, one list for the pipeline, its events, the VRAM plan and the bench.

    validate → voice ‖ actor (the "voice+actor" stage) → video ‖ speech_check → verify → finalize
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    VALIDATE = "validate"  # the recipe, the output, the deadline: before any model runs
    VOICE = "voice"  # Kokoro speech, then the motion it drives
    ACTOR = "actor"  # the portrait, its framing, the animator's source state
    VOICE_ACTOR = "voice+actor"  # both at once (pipeline.parallel_audio_actor)
    VIDEO = "video"  # the animator renders, frames stream to the sinks
    SPEECH_CHECK = "speech_check"  # the audio transcribed while the video renders
    VERIFY = "verify"  # CLIP, identity and lip sync on the frames
    FINALIZE = "finalize"  # the proof, the files published

    def __str__(self) -> str:
        return self.value


# The phases that do timed work in worker threads, in the order a slot runs them.
TIMED = (Phase.VOICE, Phase.ACTOR, Phase.VIDEO, Phase.SPEECH_CHECK, Phase.VERIFY)
