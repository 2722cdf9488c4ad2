"""The phases of a slot, one list for the pipeline, its events, the VRAM plan and the bench.

    validate → voice ‖ actor → (streamed) voice ‖ video ‖ speech_check → verify → finalize

A streamed slot's phases overlap: the voice speaks chunk by chunk while the first frames render
and the first sentences are heard. Each phase's timing is its span, first step to last.
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    VALIDATE = "validate"  # the recipe, the output, the deadline: before any model runs
    VOICE = "voice"  # the speech plan (and the motion it drives), then Kokoro chunk by chunk
    ACTOR = "actor"  # the portrait, its framing, the animator's source state
    VOICE_ACTOR = "voice+actor"  # the VRAM stage until the portrait is ready (pipeline.parallel_audio_actor)
    VIDEO = "video"  # the animator renders, frames stream to the sinks and the face checks
    SPEECH_CHECK = "speech_check"  # sentences transcribed while the next ones are made
    VERIFY = "verify"  # the whole slot judged: CLIP on its sampled frames, identity, lip sync, speech
    FINALIZE = "finalize"  # the proof, the files published

    def __str__(self) -> str:
        return self.value


# The phases that do timed work in worker threads, in the order a slot runs them.
TIMED = (Phase.VOICE, Phase.ACTOR, Phase.VIDEO, Phase.SPEECH_CHECK, Phase.VERIFY)
