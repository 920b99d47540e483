"""The poll planner: few queries per task, without leaving a finished result waiting."""

from __future__ import annotations

import pytest

from ocr_watch.pool.planner import PollPlanner, Reading

pytestmark = pytest.mark.timeout(10)


class TestPollPlanner:
    def test_until_it_has_learnt_it_polls_at_the_minimum_interval(self) -> None:
        planner = PollPlanner(min_interval_s=1.0)
        assert planner.first_delay() == 1.0

    def test_after_learning_the_first_query_waits_for_a_typical_duration(self) -> None:
        planner = PollPlanner(min_interval_s=0.5, first_quantile=0.5, margin_s=0.1)
        for duration in (2.0, 3.0, 4.0, 3.0, 3.0):
            planner.record_done(duration, None)
        assert planner.first_delay() == pytest.approx(3.1)

    def test_two_readings_extrapolate_the_finish_from_the_rate_of_progress(self) -> None:
        planner = PollPlanner(min_interval_s=0.1, margin_s=0.0)
        delay = planner.next_delay(Reading(2.0, 60), Reading(1.0, 20))
        assert delay == pytest.approx(1.0)  # 40 %/s, 40 % to go

    def test_one_early_reading_never_waits_longer_than_the_tasks_age(self) -> None:
        """1 % at 0.06 s would predict 6 s; progress starts late, so the wait is capped."""
        planner = PollPlanner(min_interval_s=0.05, margin_s=0.0)
        assert planner.next_delay(Reading(0.06, 1), None) == pytest.approx(0.06)

    def test_a_learnt_duration_stays_inside_what_the_readings_prove(self) -> None:
        planner = PollPlanner()
        learnt = planner.record_done(3.0, Reading(2.0, 90))
        assert 2.0 <= learnt <= 3.0

    def test_never_sooner_than_the_minimum_nor_later_than_the_maximum(self) -> None:
        planner = PollPlanner(min_interval_s=1.0, max_interval_s=5.0, margin_s=0.0)
        assert planner.next_delay(Reading(10.0, 99), Reading(9.0, 98)) == 1.0
        assert planner.next_delay(Reading(100.0, 1), Reading(50.0, 0)) == 5.0

    def test_the_first_delay_settles_where_the_target_share_of_first_queries_find_the_task_done(self) -> None:
        """Durations uniform in 2.1..3.9 s: the 80 % point is 3.54 s, whatever the start."""
        import random

        rng = random.Random(7)
        planner = PollPlanner(min_interval_s=0.5, first_quantile=0.8, max_interval_s=30.0)
        for duration in (9.0, 9.0, 9.0):  # a bad start: three slow tasks
            planner.record_done(duration, None)
        for _ in range(3000):
            planner.first_outcome(done=rng.uniform(2.1, 3.9) <= planner.first_delay())
        assert 3.3 <= planner.first_delay() <= 3.8

    def test_a_busy_quota_aims_late_and_a_spare_one_at_the_median(self) -> None:
        """Same durations, two regimes: each tracker settles on its own share of tasks done."""
        import random

        rng = random.Random(3)
        planner = PollPlanner(min_interval_s=0.5, first_quantile=0.8, spare_quantile=0.5)
        for duration in (3.0, 3.0, 3.0):
            planner.record_done(duration, None)
        for _ in range(3000):
            for busy in (True, False):
                planner.first_outcome(done=rng.uniform(7.0, 13.0) <= planner.first_delay(busy=busy), busy=busy)
        assert 11.3 <= planner.first_delay(busy=True) <= 12.3  # 80 % of 7..13 s is 11.8
        assert 9.5 <= planner.first_delay(busy=False) <= 10.5  # the median is 10

    def test_waits_planned_from_one_reading_learn_how_late_progress_starts(self) -> None:
        """Progress that starts at 25 % of the duration makes one reading overshoot; the scale learns it."""
        planner = PollPlanner(min_interval_s=0.1, margin_s=0.0, max_interval_s=30.0)
        naive = planner.next_delay(Reading(8.0, 70), None)  # 8 * 100 / 70 = 11.43 s: overshoots a 10 s task
        for _ in range(400):
            wait = planner.next_delay(Reading(8.0, 70), None)
            planner.one_reading_outcome(done=8.0 + wait >= 10.0)
        learnt = planner.next_delay(Reading(8.0, 70), None)
        assert naive == pytest.approx(3.43, abs=0.01)
        assert 2.0 <= learnt < 2.4  # just past the true 2 s, not 3.4 s
        assert not planner.one_reading(Reading(9.0, 80), Reading(8.0, 70))  # two readings: a rate

    def test_progress_leaving_zero_is_not_a_rate(self) -> None:
        """0 % at 2 s, 1 % at 3 s: progress just started; 1 %/s would mean a 100 s task."""
        planner = PollPlanner(min_interval_s=1.0, max_interval_s=30.0, margin_s=0.0)
        assert planner.next_delay(Reading(3.0, 1), Reading(2.0, 0)) <= 3.0  # at most doubles the age
        assert planner.next_delay(Reading(3.0, 21), Reading(2.0, 1)) == pytest.approx(3.95)  # 20 %/s, 79 % to go

    def test_a_cold_start_with_late_progress_does_not_push_first_queries_past_every_task(self) -> None:
        """The emulator's own progress (0 until a quarter of the task, then linear) on 7..13 s
        tasks: the first-query delay must settle inside the durations, not at the 30 s cap."""
        import random

        from ocr_watch.emulator.tasks import Task as EmulatedTask

        rng = random.Random(1)
        planner = PollPlanner(min_interval_s=1.0, max_interval_s=30.0)
        delays = []
        for _ in range(40):
            task = EmulatedTask("t", "sha", "scan.png", 1, "txt", None, 0.0, 0.0, duration=rng.uniform(7.0, 13.0))
            age, last, first = planner.first_delay(), None, True
            delays.append(age)
            while True:
                state, progress = task.state_at(age)
                if first:
                    planner.first_outcome(state == 1)
                    first = False
                if state == 1:
                    planner.record_done(age, last)
                    break
                reading = Reading(age, progress)
                age += planner.next_delay(reading, last)
                last = reading
        assert max(delays) < 16.0
        assert 10.0 < planner.first_delay() < 16.0


def _trained() -> PollPlanner:
    """A planner with durations, both first-query trackers and a one-reading scale learnt."""
    planner = PollPlanner(min_interval_s=0.5, max_interval_s=30.0)
    for duration in (9.0, 10.0, 11.0, 10.5, 9.5):
        planner.record_done(duration, None)
    for done in (True, False, True, True):
        planner.first_outcome(done, busy=True)
        planner.first_outcome(done, busy=False)
        planner.one_reading_outcome(done)
    return planner


class TestPlannerMemory:
    def test_a_recalled_planner_plans_exactly_as_the_one_that_learnt(self) -> None:
        trained = _trained()
        fresh = PollPlanner(min_interval_s=0.5, max_interval_s=30.0)
        assert fresh.first_delay() == 0.5  # knows nothing yet
        fresh.recall(trained.memory())
        assert fresh.learnt == 5
        for busy in (True, False):
            assert fresh.first_delay(busy=busy) == trained.first_delay(busy=busy) > 5.0
        assert fresh.next_delay(Reading(4.0, 40), None) == trained.next_delay(Reading(4.0, 40), None)
        assert fresh.next_delay(Reading(4.0, 0), None) == trained.next_delay(Reading(4.0, 0), None)

    def test_it_survives_json(self) -> None:
        import json

        trained = _trained()
        fresh = PollPlanner(min_interval_s=0.5, max_interval_s=30.0)
        fresh.recall(json.loads(json.dumps(trained.memory())))
        assert fresh.memory() == trained.memory()

    @pytest.mark.parametrize("change", [
        {"durations": "10"},
        {"durations": [10.0, -1.0]},
        {"durations": [10.0, float("nan")]},
        {"durations": [True]},
        {"first_busy": "soon"},
        {"first_spare": 0},
        {"second_scale": 5.0},
        {"second_scale": None},
    ])
    def test_a_value_it_could_not_have_written_is_refused_and_changes_nothing(self, change: dict) -> None:
        planner = _trained()
        before = planner.memory()
        with pytest.raises(ValueError):
            planner.recall({**_trained().memory(), **change})
        assert planner.memory() == before

    def test_recalled_delays_respect_this_runs_interval_bounds(self) -> None:
        narrow = PollPlanner(min_interval_s=0.5, max_interval_s=2.0)
        narrow.recall(_trained().memory())
        assert narrow.first_delay(busy=True) == 2.0

    def test_only_the_newest_durations_of_a_longer_history_are_kept(self) -> None:
        small = PollPlanner(history=4)
        small.recall({**_trained().memory(), "durations": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
        assert small.memory()["durations"] == [3.0, 4.0, 5.0, 6.0]
