"""The channel's decisions (vortex.channel.policy): pure functions, checked without an engine or a clock."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from vortex.channel import policy
from vortex.channel.definition import ChannelError

T0 = datetime(2026, 12, 1, 21, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- air times and deadlines ----------------------------------------------------------------------

def test_to_ms_truncates_to_what_channel_json_keeps():
    assert policy.to_ms(T0.replace(microsecond=123_987)) == T0.replace(microsecond=123_000)


def test_a_deadline_is_the_air_time_minus_the_margin_in_realtime_only():
    assert policy.deadline_for(at(10), 5.0, "realtime") == at(5)
    assert policy.deadline_for(at(10), 5.0, "asap") is None  # no clock to be late for
    assert policy.deadline_for(None, 5.0, "realtime") is None  # a "now" epoch's first slot


def test_seconds_left():
    assert policy.seconds_left(at(5), at(2)) == 3.0
    assert policy.seconds_left(at(5), at(7)) == -2.0
    assert policy.seconds_left(None, at(7)) is None


def test_a_scheduled_slot_keeps_its_air_time_and_the_next_follows_it():
    times = policy.air_times(at(1.2345678), at(10), 6.0)
    assert times.air == at(10) and not times.epoch_started
    assert times.ready == policy.to_ms(at(1.2345678))
    assert times.lead_sec == 8.766
    assert times.next_air == at(16)


def test_air_times_keep_milliseconds_like_the_recorded_air_time():
    times = policy.air_times(at(0), at(10.0004567), 1 / 3)
    assert times.air == at(10)  # iso(air) in channel.json has milliseconds; the next follows that
    assert times.next_air == at(10) + timedelta(seconds=1 / 3)


def test_a_now_epoch_airs_its_first_slot_after_the_preroll():
    times = policy.air_times(at(3.0001), None, 6.0, preroll_sec=4.5)
    assert times.epoch_started
    assert times.air == at(7.5) and times.lead_sec == 4.5 and times.next_air == at(13.5)


def test_a_late_slot_has_a_negative_lead_and_never_minus_zero():
    assert policy.air_times(at(12), at(10), 2.0).lead_sec == -2.0
    lead = policy.air_times(at(10), at(10), 2.0).lead_sec
    assert lead == 0.0 and str(lead) == "0.0"


def test_the_lookahead_gate_counts_made_slots_still_to_air():
    now = at(0)
    assert policy.lookahead_wait([], now, 1) is None
    assert policy.lookahead_wait([at(-5)], now, 1) is None  # already on air or aired
    assert policy.lookahead_wait([at(4)], now, 2) is None
    assert policy.lookahead_wait([at(8), at(4)], now, 2) == 4.0  # until the earliest airs


def test_the_lookahead_gate_counts_the_slots_in_flight_too():
    now = at(0)
    assert policy.lookahead_wait([], now, 2, making=1) is None  # a second slot may start beside the first
    assert policy.lookahead_wait([at(4)], now, 2, making=1) == 4.0  # one made, one in flight: two ahead
    assert policy.lookahead_wait([], now, 2, making=2) == math.inf  # until one in flight ends
    assert policy.lookahead_wait([], now, 1, making=1) == math.inf  # lookahead 1: one at a time


# -- attempts --------------------------------------------------------------------------------------

def test_a_slot_seed_is_the_recipes_or_stable_per_channel_slot():
    assert policy.slot_seed("ch", 3, 42) == 42
    assert policy.slot_seed("ch", 3, 0) == 0
    seed = policy.slot_seed("ch", 3, None)
    assert seed == policy.slot_seed("ch", 3, None) and 0 <= seed < policy.SEED_SPACE
    assert seed != policy.slot_seed("ch", 4, None) and seed != policy.slot_seed("other", 3, None)


def test_a_retry_uses_the_next_seed_within_the_range():
    assert policy.retry_seed(41) == 42
    assert policy.retry_seed(policy.SEED_SPACE - 1) == 0


@pytest.mark.parametrize("kind, retried", [("input", False), ("cancelled", False), ("deadline", True),
                                           ("oom", True), ("check", True), (None, True)])
def test_which_failures_are_retried(kind, retried):
    assert policy.may_retry(kind) is retried


def test_the_cost_history_keeps_the_last_successes_per_slot_second():
    costs: list[float] = []
    for seconds in (2, 4, 6, 8, 10, 12):
        costs = policy.remember_cost(costs, seconds, 2.0)
    assert costs == [2.0, 3.0, 4.0, 5.0, 6.0] and len(costs) == policy.COST_HISTORY


def test_an_attempts_expected_time_is_the_median_cost_times_the_duration():
    assert policy.expected_seconds([], 5.0) is None
    assert policy.expected_seconds([1.0, 9.0, 2.0], 5.0) == 10.0
    assert policy.expected_seconds([1.0, 2.0, 3.0, 4.0], 1.0) == 3.0  # the upper median


def test_an_attempt_goes_without_a_deadline_or_without_history():
    assert policy.attempt_verdict(None, 100.0) == "go"
    assert policy.attempt_verdict(2.0, None) == "go"
    assert policy.attempt_verdict(10.0, 10.0) == "go"


def test_an_attempt_with_under_a_second_left_is_too_late():
    assert policy.attempt_verdict(policy.MIN_ATTEMPT_SEC - 0.01, None) == "too_late"
    assert policy.attempt_verdict(-3.0, 0.1) == "too_late"
    assert policy.attempt_verdict(policy.MIN_ATTEMPT_SEC, None) == "go"


def test_an_attempt_recent_slots_say_cannot_finish_is_skipped():
    assert policy.attempt_verdict(4.0, 4.1) == "skip"
    assert policy.skip_reason(5.75, 4.0) == "an attempt takes about 5.8 s (recent slots); 4.0 s were left"


# -- fillers ---------------------------------------------------------------------------------------

def test_a_made_slot_airs():
    assert policy.decision_for(True, "last_good", 3) == ("aired", None)
    assert policy.decision_for(True, "standby", None) == ("aired", None)


def test_a_failed_slot_re_airs_the_last_good_one_while_there_is_one():
    assert policy.decision_for(False, "last_good", 3) == ("filler:last_good", 3)
    assert policy.decision_for(False, "last_good", None) == ("filler:standby", None)
    assert policy.decision_for(False, "standby", 3) == ("filler:standby", None)


def test_the_appender_reads_the_right_slots_media():
    assert policy.source_of("aired", 7, None) == ("aired", 7)
    assert policy.source_of("filler:last_good", 7, 5) == ("last_good", 5)
    assert policy.source_of("filler:standby", 7, None) == ("standby", None)


# -- a "now" start ---------------------------------------------------------------------------------

def test_the_preroll_lets_the_lookahead_be_made_at_the_first_slots_cost():
    assert policy.preroll_seconds("realtime", [0.5, 1.2], [5.0, 4.0]) == pytest.approx(10.8)
    assert policy.preroll_seconds("realtime", [1.2], []) == 0.0  # lookahead 1
    assert policy.preroll_seconds("realtime", [], [5.0]) == 0.0  # nothing measured (it failed)
    assert policy.preroll_seconds("asap", [1.2], [5.0]) == 0.0


# -- restarts --------------------------------------------------------------------------------------

def test_listed_frames_count_whole_frames_per_segment():
    assert policy.listed_frames([2.0, 2.0, 1.041667], 24) == 48 + 48 + 25
    assert policy.listed_frames([], 24) == 0


def test_a_restart_resumes_at_the_first_slot_with_no_frame_listed():
    firsts = [0, 36, 72, 108, None]
    assert policy.resume_index(firsts, 0) == 0
    assert policy.resume_index(firsts, 36) == 1
    assert policy.resume_index(firsts, 37) == 2  # slot 1 half listed: it aired
    assert policy.resume_index(firsts, 1000) == 4  # slot 4 was never appended


def test_a_restart_in_time_keeps_the_timetable():
    assert policy.epoch_start(at(20), None, 5.0, "realtime", at(10)) == at(20)


def test_a_restart_past_the_next_deadline_starts_anew_as_now():
    assert policy.epoch_start(at(20), None, 5.0, "realtime", at(15)) is None
    assert policy.epoch_start(at(20), at(100), 5.0, "realtime", at(30)) is None  # the start is history


def test_an_asap_restart_always_continues_the_timetable():
    assert policy.epoch_start(at(20), None, 5.0, "asap", at(1000)) == at(20)


def test_a_fresh_channel_airs_at_its_start_or_now():
    assert policy.epoch_start(None, None, 5.0, "realtime", at(0)) is None
    assert policy.epoch_start(None, at(60), 5.0, "realtime", at(0)) == at(60)
    assert policy.epoch_start(None, at(-60), 5.0, "asap", at(0)) == at(-60)  # asap: no clock


def test_a_realtime_start_already_past_names_the_field():
    with pytest.raises(ChannelError) as err:
        policy.epoch_start(None, at(5), 5.0, "realtime", at(0), source="ch.yaml")
    assert err.value.field == "start" and err.value.source == "ch.yaml" and "already past" in str(err.value)


def test_the_last_good_slot_survives_a_restart_only_if_it_aired_and_is_on_disk():
    assert policy.kept_last_good(3, 5, True) == 3
    assert policy.kept_last_good(5, 5, True) is None  # made, never appended: made again
    assert policy.kept_last_good(3, 5, False) is None  # its MP4 is gone
    assert policy.kept_last_good(None, 5, False) is None


def test_a_restart_deletes_every_slot_file_but_the_last_good_ones():
    names = ["slot-00003.mp4", "slot-00003.json", "slot-00004.mp4", "slot-00030.mp4"]
    assert policy.stale_slot_files(names, 3) == ["slot-00004.mp4", "slot-00030.mp4"]
    assert policy.stale_slot_files(names, None) == names


def test_more_to_air():
    assert policy.more_to_air(10**6, None)
    assert policy.more_to_air(2, 3) and not policy.more_to_air(3, 3)


# -- live inserts ----------------------------------------------------------------------------------
