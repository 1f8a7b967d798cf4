"""KeyPool: round-robin rotation, cooldowns after rate limits, retirement after rejections."""

import pytest
from structlog.testing import capture_logs

from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.errors import AuthenticationError, RateLimitError
from aiecs_llm.resilience.keys import DEFAULT_KEY_COOLDOWN, KeyPool
from tests.fake_clock import FakeClock

CANARY = "sk-canary-0123456789abcdef"
KEYS = ["sk-key-aaaaaaaaaaaaaaaa", "sk-key-bbbbbbbbbbbbbbbb", "sk-key-cccccccccccccccc"]
A, B, C = KEYS


@pytest.fixture
def clock():
    return FakeClock()


def assert_no_key_text(text, keys=(CANARY,)):
    for key in keys:
        for start in range(len(key) - 7):
            assert key[start : start + 8] not in text, f"key slice {start} leaked: {text!r}"


def test_round_robin_in_the_order_given_without_duplicates(clock):
    pool = KeyPool("openai", [A, B, A, C, B], clock=clock)
    assert len(pool) == 3
    assert [pool.choose() for _ in range(7)] == [A, B, C, A, B, C, A]
    assert [state.uses for state in pool.snapshot()] == [3, 2, 2]


@pytest.mark.parametrize("keys", [[], [""], [A, "  "]])
def test_no_keys_or_a_blank_key_is_refused(keys):
    with pytest.raises(ValueError, match="openai"):
        KeyPool("openai", keys)


def test_a_single_string_is_not_taken_for_a_list_of_keys():
    with pytest.raises(TypeError):
        KeyPool("openai", A)


def test_a_cooling_key_is_skipped_and_returns_after_retry_after(clock):
    pool = KeyPool("openai", [A, B, C], clock=clock)
    pool.rate_limited(B, retry_after=10)
    assert [pool.choose() for _ in range(4)] == [A, C, A, C]
    clock.advance(9.9)
    assert pool.choose() == A
    clock.advance(0.1)
    assert [pool.choose() for _ in range(3)] == [B, C, A]


def test_without_retry_after_the_default_cooldown_applies(clock):
    pool = KeyPool("openai", [A, B], clock=clock, default_cooldown=42.0)
    pool.rate_limited(A, retry_after=None)
    assert pool.snapshot()[0].state == "cooling"
    assert pool.snapshot()[0].cooling_for == pytest.approx(42.0)
    clock.advance(41.0)
    assert pool.choose() == B
    assert pool.choose() == B
    clock.advance(1.0)
    assert pool.choose() == A
    assert KeyPool("openai", [A]).snapshot()[0].cooling_for == 0.0
    assert DEFAULT_KEY_COOLDOWN == 60.0


def test_a_shorter_retry_after_does_not_cut_a_running_cooldown(clock):
    pool = KeyPool("openai", [A, B], clock=clock)
    pool.rate_limited(A, retry_after=30)
    pool.rate_limited(A, retry_after=5)
    assert pool.snapshot()[0].cooling_for == pytest.approx(30.0)


def test_all_keys_cooling_raises_rate_limit_with_the_earliest_return(clock):
    pool = KeyPool("openai", [A, B, C], clock=clock)
    pool.rate_limited(A, retry_after=20)
    pool.rate_limited(B, retry_after=7)
    pool.rejected(C)
    assert pool.has_usable_key() is False
    with pytest.raises(RateLimitError) as caught:
        pool.choose()
    error = caught.value
    assert error.provider == "openai"
    assert error.retry_after == pytest.approx(7.0)
    assert "all 2 usable API keys for openai are cooling down" in error.message
    clock.advance(3)
    with pytest.raises(RateLimitError) as again:
        pool.choose()
    assert again.value.retry_after == pytest.approx(4.0)
    clock.advance(4)
    assert pool.has_usable_key() is True
    assert pool.choose() == B


def test_retired_keys_are_never_chosen_again(clock):
    pool = KeyPool("openai", [A, B, C], clock=clock)
    pool.rejected(B)
    clock.advance(10_000)
    assert {pool.choose() for _ in range(20)} == {A, C}
    assert [state.state for state in pool.snapshot()] == ["active", "retired", "active"]


def test_all_keys_rejected_raises_authentication_naming_fingerprints(clock):
    pool = KeyPool("anthropic", [A, B], clock=clock)
    pool.rate_limited(A, retry_after=5)
    pool.rejected(A)
    pool.rejected(B)
    with pytest.raises(AuthenticationError) as caught:
        pool.choose()
    message = caught.value.message
    assert "all 2 API keys for anthropic were rejected" in message
    assert fingerprint(A) in message
    assert fingerprint(B) in message
    assert caught.value.provider == "anthropic"
    assert_no_key_text(message, KEYS)


def test_a_rejected_key_is_logged_once_by_fingerprint(clock):
    pool = KeyPool("openai", [A, B], clock=clock)
    with capture_logs() as events:
        pool.rejected(A)
        pool.rejected(A)
        pool.rejected(B)
    rejected = [event for event in events if event["event"] == "llm.key.rejected"]
    assert [event["key"] for event in rejected] == [fingerprint(A), fingerprint(B)]
    assert all(event["log_level"] == "error" for event in rejected)
    assert all(event["provider"] == "openai" for event in rejected)


def test_succeeded_is_counted(clock):
    pool = KeyPool("openai", [A], clock=clock)
    pool.succeeded(pool.choose())
    assert pool.snapshot()[0].successes == 1


def test_an_unknown_key_is_refused_without_being_echoed(clock):
    pool = KeyPool("openai", [A], clock=clock)
    with pytest.raises(ValueError, match="not in the openai key pool") as caught:
        pool.rate_limited(CANARY, retry_after=1)
    assert_no_key_text(str(caught.value))


def test_no_key_text_in_logs_repr_snapshot_or_errors(clock):
    other = "sk-other-fedcba9876543210"
    with capture_logs() as events:
        pool = KeyPool("openai", [CANARY, other], clock=clock)
        pool.succeeded(pool.choose())
        pool.rate_limited(CANARY, retry_after=None)
        pool.rate_limited(other, retry_after=3)
        texts = [repr(pool), str(pool.snapshot())]
        with pytest.raises(RateLimitError) as cooling:
            pool.choose()
        pool.rejected(CANARY)
        pool.rejected(other)
        with pytest.raises(AuthenticationError) as rejected:
            pool.choose()
    texts += [repr(pool), str(pool.snapshot()), repr(pool._keys)]
    texts += [str(e) + repr(e) for e in (cooling.value, rejected.value)]
    texts += [repr(event) for event in events]
    assert len(events) >= 4
    for text in texts:
        assert_no_key_text(text, (CANARY, other))
    assert fingerprint(CANARY) in repr(pool)
    assert "provider='openai'" in repr(pool)
    assert "retired=2" in repr(pool)


@pytest.mark.parametrize("asked", [99_999_999.0, 1e12])
def test_no_retry_after_rests_a_key_longer_than_the_cap(clock, asked):
    pool = KeyPool("openai", [A, B], clock=clock, max_cooldown=3600)
    pool.rate_limited(A, asked)
    cooling = [state for state in pool.snapshot() if state.state == "cooling"]
    assert len(cooling) == 1
    assert cooling[0].cooling_for == pytest.approx(3600)


def test_an_unreadable_retry_after_rests_a_key_for_the_default(clock):
    pool = KeyPool("openai", [A], clock=clock, default_cooldown=30)
    pool.rate_limited(A, float("nan"))
    pool.rate_limited(A, float("inf"))
    (state,) = pool.snapshot()
    assert state.state == "cooling"
    assert state.cooling_for == pytest.approx(30)
