"""The `program` block (vortex.program.spec): what it accepts, and each refusal naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.recipes import short_recipe

from vortex.channel.definition import ChannelDefinition, ChannelError
from vortex.program.spec import LowerThird, ProgramError, ProgramSpec, parse_program

BLOCK = {"size": "1920x1080", "background": "#102030", "lower_third": {"name": "Ada Reyes", "title": "Evening News"},
         "ticker": ["Comet seen over the harbor", "Markets close higher"], "logo": "logo.png", "ai_label": True,
         "captions": "burn", "loudness": {"target_lufs": -24, "true_peak_dbtp": -2}}


def test_the_block_as_the_issue_writes_it(tmp_path):
    spec = parse_program(BLOCK, tmp_path)
    assert spec.size == (1920, 1080) and spec.background == "#102030"
    assert spec.lower_third == LowerThird("Ada Reyes", "Evening News") and len(spec.ticker) == 2
    assert spec.logo == tmp_path / "logo.png" and spec.captions == "burn"
    assert (spec.loudness.target_lufs, spec.loudness.true_peak_dbtp) == (-24.0, -2.0)


def test_defaults_are_a_720p_program_at_r128():
    spec = parse_program({})
    assert spec == ProgramSpec() and spec.size == (1280, 720) and spec.ai_label and spec.captions is True
    assert (spec.loudness.target_lufs, spec.loudness.true_peak_dbtp) == (-23.0, -1.0)


@pytest.mark.parametrize("block, field, says", [
    ({"size": "1281x720"}, "size", "odd side"),
    ({"size": "3840x2160"}, "size", "out of range"),
    ({"size": "1920x1082"}, "size", "out of range"),
    ({"size": "big"}, "size", "WIDTHxHEIGHT"),
    ({"loudness": {"target_lufs": -32}}, "loudness.target_lufs", "-31 to -10"),
    ({"loudness": {"target_lufs": -9.5}}, "loudness.target_lufs", "-31 to -10"),
    ({"loudness": {"lufs": -23}}, "loudness", "target_lufs"),
    ({"captions": 1}, "captions", "true, false or burn"),
    ({"ticker": "one headline"}, "ticker", "list"),
    ({"ticker": ["fine", ""]}, "ticker[1]", "1 to 200"),
    ({"lower_third": {"title": "no name"}}, "lower_third", "{name, title}"),
    ({"lower_third": {"name": "two\nlines"}}, "lower_third.name", "one line"),
    ({"logo_corner": "middle"}, "logo_corner", "top-right"),
    ({"colour": "red"}, "colour", "not a program field"),
])
def test_each_bad_field_is_named_with_what_is_allowed(block, field, says):
    with pytest.raises(ProgramError) as caught:
        parse_program(block)
    assert caught.value.field == field and says in caught.value.problem


def test_the_channel_definition_reports_it_as_program_dot_field(tmp_path: Path):
    channel = {"name": "c", "slots": [{"recipe": short_recipe()}]}
    assert ChannelDefinition.from_dict(channel).program is None  # no block: the engine's square
    assert ChannelDefinition.from_dict({**channel, "program": {}}).program == ProgramSpec()
    with pytest.raises(ChannelError) as caught:
        ChannelDefinition.from_dict({**channel, "program": {"size": "1281x720"}})
    assert caught.value.field == "program.size"


def test_patching_the_text_keeps_the_rest():
    spec = parse_program({"size": "1920x1080", "ticker": ["a"]})
    patched = spec.with_text(ticker=["b", "c"], lower_third={"name": "Ben"})
    assert patched.ticker == ("b", "c") and patched.lower_third == LowerThird("Ben") and patched.size == (1920, 1080)
    assert spec.with_text(lower_third=None).ticker == ("a",)
    with pytest.raises(ProgramError):
        spec.with_text(ticker=[3])
