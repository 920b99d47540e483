"""The error policy: each error class leads to one outcome, and outages never blame a file."""

from __future__ import annotations

import errno
import os
import random

import pytest

from ocr_watch.api import (
    AccountError,
    PermanentError,
    RateLimited,
    ResultUnavailable,
    ServerError,
    ServiceUnreachable,
)
from ocr_watch.journal import Stage
from ocr_watch.pool.policy import Action, ErrorPolicy, folder_may_recover

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def policy() -> ErrorPolicy:
    return ErrorPolicy(max_attempts=3, backoff_initial_s=1.0, backoff_max_s=8.0, rng=random.Random(1))


class TestErrorPolicy:
    def test_a_permanent_error_quarantines_with_the_services_words(self, policy: ErrorPolicy) -> None:
        verdict = policy.judge(PermanentError("file too large", status_code=413), stage=Stage.CREATE,
                               attempts=1, task_id=None)
        assert (verdict.action, verdict.reason) == (Action.QUARANTINE, "file too large")

    def test_an_expired_result_says_the_credit_is_spent_and_how_to_retry(self, policy: ErrorPolicy) -> None:
        verdict = policy.judge(ResultUnavailable("result URL has expired", status_code=403), stage=Stage.DOWNLOAD,
                               attempts=1, task_id="t-7")
        assert verdict.action is Action.QUARANTINE
        assert "t-7" in verdict.reason and "paid for" in verdict.reason and "back into the inbox" in verdict.reason

    def test_a_refused_account_pauses_and_never_counts(self, policy: ErrorPolicy) -> None:
        verdict = policy.judge(AccountError("invalid API key", status_code=401), stage=Stage.CREATE,
                               attempts=99, task_id=None)
        assert verdict.action is Action.PAUSE_ACCOUNT and not verdict.counts

    @pytest.mark.parametrize("exc", [ServiceUnreachable("connection refused"), RateLimited("429", retry_after=5.0)])
    def test_outages_and_rate_limits_are_waited_out_however_long(self, policy: ErrorPolicy, exc: Exception) -> None:
        verdicts = [policy.judge(exc, stage=Stage.CREATE, attempts=50, task_id=None) for _ in range(20)]  # type: ignore[arg-type]
        assert {v.action for v in verdicts} == {Action.WAIT_OUT}
        assert not any(v.counts for v in verdicts)
        assert all(v.delay_s <= 60.0 for v in verdicts) and verdicts[-1].delay_s >= 4.0
        assert policy.outage_over() == 20 and policy.outage_failures == 0

    def test_a_retry_after_is_respected(self, policy: ErrorPolicy) -> None:
        verdict = policy.judge(RateLimited("429", retry_after=7.0), stage=Stage.POLL, attempts=1, task_id="t")
        assert verdict.delay_s >= 7.0

    def test_server_errors_count_back_off_and_quarantine_at_the_limit(self, policy: ErrorPolicy) -> None:
        first = policy.judge(ServerError("500", status_code=500), stage=Stage.CREATE, attempts=1, task_id=None)
        second = policy.judge(ServerError("500", status_code=500), stage=Stage.CREATE, attempts=2, task_id=None)
        last = policy.judge(ServerError("500", status_code=500), stage=Stage.CREATE, attempts=3, task_id=None)
        assert (first.action, second.action, last.action) == (Action.RETRY, Action.RETRY, Action.QUARANTINE)
        assert first.counts and 0.5 <= first.delay_s <= 1.0 and 1.0 <= second.delay_s <= 2.0
        assert "failed 3 times" in last.reason


class TestLocalFailures:
    def test_each_file_backs_off_on_its_own_and_starts_afresh_once_it_worked(self, policy: ErrorPolicy) -> None:
        """A file waiting on a broken subfolder keeps backing off while others' writes work."""
        delays = [policy.local_failure_delay(1) for _ in range(5)]
        assert delays[-1] >= 4.0 and all(d <= 60.0 for d in delays)
        assert policy.local_failure_delay(2) <= 1.0  # another file starts at the first step
        assert policy.local_failure_over(2) == 1
        assert policy.local_failure_over(1) == 5 and policy.local_failure_over(1) == 0
        assert policy.local_failure_delay(1) <= 1.0

    @pytest.mark.parametrize(("code", "recovers"), [
        (errno.EACCES, True), (errno.EROFS, True), (errno.ENOSPC, True), (errno.ENOENT, True),
        (errno.EDQUOT, True), (errno.ENAMETOOLONG, False), (errno.EINVAL, False), (errno.EILSEQ, False),
    ])
    def test_only_errors_of_the_files_own_name_are_not_waited_for(self, code: int, recovers: bool) -> None:
        assert folder_may_recover(OSError(code, os.strerror(code))) is recovers
