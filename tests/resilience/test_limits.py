"""ConcurrencyLimit and RateLimiter: pacing, FIFO fairness, the bounded queue, cancellation."""

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from aiecs_llm.errors import InvalidRequestError, RateLimitError
from aiecs_llm.resilience.clock import SYSTEM_CLOCK
from aiecs_llm.resilience.limits import DEFAULT_MAX_WAITING, ConcurrencyLimit, RateLimiter
from tests.fake_clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


async def drain(limiter, count, tokens=0):
    for _ in range(count):
        await limiter.acquire(tokens)


async def settle_loop():
    for _ in range(10):
        await asyncio.sleep(0)


def start_all(coroutines):
    return [asyncio.create_task(coroutine) for coroutine in coroutines]


# --- RateLimiter ----------------------------------------------------------------------------


async def test_requests_per_minute_pace_after_the_first_minute_burst(clock):
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    start = clock.monotonic()
    await drain(limiter, 60)
    assert clock.monotonic() == start
    reservation = await limiter.acquire()
    assert clock.monotonic() - start == pytest.approx(1.0)
    assert reservation.waited == pytest.approx(1.0)
    await drain(limiter, 3)
    assert clock.monotonic() - start == pytest.approx(4.0)


async def test_tokens_per_minute_pace(clock):
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)  # 10 tokens a second
    start = clock.monotonic()
    await limiter.acquire(500)
    await limiter.acquire(100)
    assert clock.monotonic() == start
    await limiter.acquire(50)
    assert clock.monotonic() - start == pytest.approx(5.0)
    await limiter.acquire(0)  # no tokens needed: only the (unlimited) request budget
    assert clock.monotonic() - start == pytest.approx(5.0)


async def test_both_budgets_must_fit(clock):
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=600, clock=clock)
    start = clock.monotonic()
    await limiter.acquire(600)
    await limiter.acquire(0)
    assert clock.monotonic() == start
    await limiter.acquire(30)  # the request fits at once, the tokens after 3 s
    assert clock.monotonic() - start == pytest.approx(3.0)


async def test_the_buckets_refill_while_idle_up_to_their_capacity(clock):
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    await drain(limiter, 60)
    clock.advance(3600)
    start = clock.monotonic()
    await drain(limiter, 60)
    assert clock.monotonic() == start
    await limiter.acquire()
    assert clock.monotonic() - start == pytest.approx(1.0)


async def test_waiters_are_served_first_in_first_out(clock):
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=6000, clock=clock)
    await limiter.acquire(6000)
    order = []

    async def caller(number, tokens):
        await limiter.acquire(tokens)
        order.append((number, clock.monotonic()))

    # The big request first: the small ones behind it would fit sooner but must not overtake.
    sizes = [3000, 1, 10, 1, 500]
    tasks = start_all(caller(n, size) for n, size in enumerate(sizes))
    await settle_loop()
    assert limiter.waiting == 5
    late = asyncio.create_task(caller(99, 1))
    await asyncio.gather(*tasks, late)
    assert [number for number, _ in order] == [0, 1, 2, 3, 4, 99]
    assert [when for _, when in order] == sorted(when for _, when in order)
    assert limiter.waiting == 0


async def test_a_later_caller_that_would_fit_does_not_overtake_a_big_waiter(clock):
    limiter = RateLimiter(tokens_per_minute=6000, clock=clock)  # 100 tokens a second
    await limiter.acquire(6000)
    start = clock.monotonic()
    order = []

    async def caller(name, tokens):
        await limiter.acquire(tokens)
        order.append((name, clock.monotonic() - start))

    big = asyncio.create_task(caller("big", 3000))
    await settle_loop()
    clock.advance(1.0)  # 100 tokens are back: enough for the small caller, not for the big one
    small = asyncio.create_task(caller("small", 50))
    await asyncio.gather(big, small)
    assert order == [("big", pytest.approx(30.0)), ("small", pytest.approx(30.5))]


async def test_a_full_queue_fails_at_once_with_an_estimated_wait(clock):
    limiter = RateLimiter(requests_per_minute=60, max_waiting=3, clock=clock, name="openai")
    await drain(limiter, 60)
    waiters = start_all(limiter.acquire() for _ in range(3))
    await settle_loop()
    assert limiter.waiting == 3
    with capture_logs() as events, pytest.raises(RateLimitError) as caught:
        await limiter.acquire()
    error = caught.value
    assert "rate limiter 'openai'" in error.message
    assert "local queue is full" in error.message
    assert error.retry_after == pytest.approx(4.0)  # three ahead of it, then itself
    assert [event["event"] for event in events] == ["llm.ratelimit.queue_full"]
    await asyncio.gather(*waiters)
    assert DEFAULT_MAX_WAITING == 1000


async def test_max_waiting_zero_never_queues(clock):
    limiter = RateLimiter(requests_per_minute=1, max_waiting=0, clock=clock)
    await limiter.acquire()
    with pytest.raises(RateLimitError) as caught:
        await limiter.acquire()
    assert caught.value.retry_after == pytest.approx(60.0)


async def test_a_request_larger_than_the_token_budget_is_refused_at_once(clock):
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock, name="anthropic")
    with pytest.raises(InvalidRequestError, match="'anthropic' allows 1000 tokens per minute"):
        await limiter.acquire(1001)
    assert limiter.waiting == 0
    await limiter.acquire(1000)


@pytest.mark.parametrize(
    "kwargs",
    [{"requests_per_minute": 0}, {"tokens_per_minute": -5}, {"max_waiting": -1}],
)
def test_invalid_limits(kwargs):
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


async def test_without_limits_nothing_waits(clock):
    limiter = RateLimiter(clock=clock)
    await drain(limiter, 1000, tokens=10**9)
    assert clock.monotonic() == FakeClock().monotonic()


async def test_cancelled_head_consumes_nothing_and_unblocks_the_rest(clock):
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    await drain(limiter, 60)
    start = clock.monotonic()
    served = []

    async def caller(number):
        await limiter.acquire()
        served.append((number, clock.monotonic() - start))

    head, second, third = start_all(caller(n) for n in range(3))
    await settle_loop()
    head.cancel()
    await asyncio.gather(second, third)
    assert head.cancelled()
    # Had the cancelled head taken its request, these would come at 2 s and 3 s.
    assert served == [(1, pytest.approx(1.0)), (2, pytest.approx(2.0))]
    assert limiter.waiting == 0


async def test_cancelled_middle_waiter_consumes_nothing(clock):
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)
    await limiter.acquire(600)
    start = clock.monotonic()
    first = asyncio.create_task(limiter.acquire(10))
    middle = asyncio.create_task(limiter.acquire(300))
    last = asyncio.create_task(limiter.acquire(10))
    await settle_loop()
    assert limiter.waiting == 3
    middle.cancel()
    await asyncio.gather(first, last)
    assert middle.cancelled()
    assert clock.monotonic() - start == pytest.approx(2.0)  # 20 tokens at 10 a second


async def test_settle_refunds_unused_tokens(clock):
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)
    start = clock.monotonic()
    reservation = await limiter.acquire(500)
    assert reservation.tokens == 500
    reservation.settle(100)
    reservation.settle(100)  # idempotent
    await limiter.acquire(500)
    assert clock.monotonic() == start


async def test_settle_charges_extra_tokens(clock):
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)
    start = clock.monotonic()
    reservation = await limiter.acquire(100)
    reservation.settle(600)  # 500 more than reserved: the bucket is now empty
    reservation.settle(600)
    await limiter.acquire(100)
    assert clock.monotonic() - start == pytest.approx(10.0)
    with pytest.raises(ValueError):
        reservation.settle(-1)


async def test_a_refund_wakes_the_waiting_head_early(clock):
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)
    start = clock.monotonic()
    reservation = await limiter.acquire(600)
    waiter = asyncio.create_task(limiter.acquire(300))  # would wait 30 s
    await settle_loop()
    clock.advance(2.0)
    reservation.settle(100)
    await waiter
    assert clock.monotonic() - start == pytest.approx(2.0)


async def test_waiting_is_logged_at_debug(clock):
    limiter = RateLimiter(requests_per_minute=60, clock=clock, name="openai")
    await drain(limiter, 60)
    with capture_logs() as events:
        await limiter.acquire()
    assert events == [
        {
            "event": "llm.ratelimit.waiting",
            "log_level": "debug",
            "limiter": "openai",
            "tokens": 0,
            "position": 1,
            "wait_seconds": 1.0,
        }
    ]


async def test_real_time_pacing_with_the_system_clock():
    # Timed from before the bucket exists: it then holds 1200 requests and refills 20 a
    # second, so 1204 take 0.2 s at least, however long the first 1200 took (timing only the
    # last four would count the refill of a slow drain as free). A sleep never ends early.
    start = time.monotonic()
    limiter = RateLimiter(requests_per_minute=1200, clock=SYSTEM_CLOCK)  # one per 50 ms
    await drain(limiter, 1204)
    elapsed = time.monotonic() - start
    assert elapsed >= 0.2 - 1e-6  # without pacing: a few milliseconds
    assert elapsed < 30  # and it does wake up: not a minute per request


# --- ConcurrencyLimit -----------------------------------------------------------------------


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)


async def test_concurrency_never_exceeds_capacity(clock):
    limit = ConcurrencyLimit(5)
    running = peak = 0

    async def work(number):
        nonlocal running, peak
        async with limit.slot():
            running += 1
            peak = max(peak, running)
            assert limit.in_use <= limit.capacity
            await clock.sleep(1 + number % 3)
            running -= 1

    await asyncio.gather(*(work(n) for n in range(50)))
    assert peak == 5
    assert (limit.in_use, limit.waiting) == (0, 0)


async def test_slots_are_granted_in_arrival_order():
    limit = ConcurrencyLimit(1)
    gate = asyncio.Event()
    order = []

    async def work(number):
        async with limit.slot():
            order.append(number)
            await gate.wait()

    tasks = start_all(work(n) for n in range(5))
    await settle_loop()
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_cancellation_while_waiting_or_holding_releases():
    limit = ConcurrencyLimit(2)
    gate = asyncio.Event()

    async def work():
        async with limit.slot():
            await gate.wait()

    holders = start_all(work() for _ in range(2))
    waiters = start_all(work() for _ in range(3))
    await settle_loop()
    assert (limit.in_use, limit.waiting) == (2, 3)
    waiters[0].cancel()  # cancelled while waiting
    holders[0].cancel()  # cancelled while holding: its slot goes to the next waiter
    await settle_loop()
    assert (limit.in_use, limit.waiting) == (2, 1)
    gate.set()
    await asyncio.gather(*holders, *waiters, return_exceptions=True)
    assert (limit.in_use, limit.waiting) == (0, 0)


async def test_a_waiter_cancelled_just_as_it_is_granted_passes_the_slot_on():
    limit = ConcurrencyLimit(1)
    holder_gate = asyncio.Event()

    async def hold():
        async with limit.slot():
            await holder_gate.wait()

    holder = asyncio.create_task(hold())
    await settle_loop()
    unlucky = asyncio.create_task(hold())
    next_in_line = asyncio.create_task(hold())
    await settle_loop()
    holder_gate.set()
    await asyncio.sleep(0)  # the holder exits and hands the slot to `unlucky`...
    unlucky.cancel()  # ...which is cancelled before it runs again
    await asyncio.gather(holder, next_in_line)
    assert unlucky.cancelled()
    assert (limit.in_use, limit.waiting) == (0, 0)


async def test_holder_and_first_waiter_cancelled_in_the_same_tick():
    limit = ConcurrencyLimit(1)
    gate = asyncio.Event()
    entered = []

    async def work(number):
        async with limit.slot():
            entered.append(number)
            await gate.wait()

    holder, first_waiter, second_waiter = start_all(work(n) for n in range(3))
    await settle_loop()
    holder.cancel()  # releases before the first waiter has run its own cancellation
    first_waiter.cancel()
    await settle_loop()
    assert entered == [0, 2]
    assert (limit.in_use, limit.waiting) == (1, 0)
    gate.set()
    await second_waiter
    assert (limit.in_use, limit.waiting) == (0, 0)


async def test_the_fake_clock_wakes_concurrent_sleepers_in_order_of_wake_time(clock):
    start = clock.monotonic()
    woke = []

    async def sleeper(seconds):
        await clock.sleep(seconds)
        woke.append((seconds, clock.monotonic() - start))

    await asyncio.gather(*(sleeper(s) for s in (5, 1, 3, 0.5, 3)))
    assert woke == [(0.5, 0.5), (1, 1), (3, 3), (3, 3), (5, 5)]
