"""bench.live_lag: from (time, store's highest notification id, read side's position) samples to one lag per
notification, on hand-written sample sequences whose lags are known."""
import pytest

from bench.live_lag import lag_summary, live_lags


def test_one_event_at_a_time():
    samples = [(0.0, 0, 0), (1.0, 1, 0), (2.0, 1, 1), (3.0, 2, 1), (4.0, 2, 1), (5.0, 2, 2)]
    assert live_lags(samples) == ([1.0, 2.0], 0)


def test_several_events_appearing_in_one_sample_each_count_from_it():
    samples = [(0.0, 0, 0), (1.0, 3, 0), (2.0, 3, 1), (4.0, 3, 3)]
    assert live_lags(samples) == ([1.0, 3.0, 3.0], 0)


def test_the_read_side_jumping_past_several_events_reaches_them_all_at_once():
    samples = [(0.0, 0, 0), (1.0, 1, 0), (2.0, 2, 0), (3.0, 3, 0), (5.0, 3, 3)]
    assert live_lags(samples) == ([4.0, 3.0, 2.0], 0)


def test_a_read_position_already_ahead_of_the_store_is_no_lag_never_a_negative_one():
    # the position is read after the store's max: it may count events the store's read did not see yet
    samples = [(0.0, 0, 0), (1.0, 1, 2), (2.0, 2, 2), (3.0, 4, 3), (4.0, 4, 4)]
    assert live_lags(samples) == ([0.0, 0.0, 0.0, 1.0], 0)


def test_events_already_stored_at_the_first_sample_are_left_out():
    samples = [(0.0, 5, 3), (1.0, 6, 5), (2.0, 6, 6)]
    assert live_lags(samples) == ([1.0], 0)


def test_events_the_read_side_never_reached_are_counted_apart():
    samples = [(0.0, 0, 0), (1.0, 2, 0), (2.0, 4, 1)]
    assert live_lags(samples) == ([1.0], 3)


def test_no_samples():
    assert live_lags([]) == ([], 0)
    summary = lag_summary([])
    assert summary["notifications"] == 0 and summary["p99_ms"] is None and summary["median_interval_ms"] is None


def test_summary_in_milliseconds_with_the_sampling_resolution_achieved():
    samples = [(0.000, 0, 0), (0.002, 1, 0), (0.004, 2, 1), (0.007, 2, 1), (0.009, 2, 2)]
    summary = lag_summary(samples)
    assert summary["notifications"] == 2 and summary["not_reached"] == 0 and summary["samples"] == 5
    assert summary["p50_ms"] == pytest.approx(2.0) and summary["p99_ms"] == pytest.approx(5.0)
    assert summary["max_ms"] == pytest.approx(5.0)
    assert summary["median_interval_ms"] == pytest.approx(2.0)
