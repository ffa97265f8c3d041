namespace Shepherd.Tests.Resilience;

using Shepherd.Configuration;
using Shepherd.Resilience;

public sealed class CircuitBreakerTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static CircuitBreaker Breaker(int consecutive = 3, double rate = 0.5, int minRequests = 4, int windowS = 10, int cooldownS = 5) =>
        new(new BreakerConfig { ConsecutiveFailures = consecutive, FailureRate = rate, MinRequests = minRequests, WindowS = windowS, CooldownS = cooldownS });

    private static void Fail(CircuitBreaker breaker, DateTimeOffset now)
    {
        Assert.True(breaker.TryPass(now, out var probe));
        breaker.OnFailure(now, probe);
    }

    private static void Succeed(CircuitBreaker breaker, DateTimeOffset now)
    {
        Assert.True(breaker.TryPass(now, out var probe));
        breaker.OnSuccess(now, probe);
    }

    /// <summary>Opens the breaker at <see cref="T0"/> (three failures in a row).</summary>
    private static CircuitBreaker Opened()
    {
        var breaker = Breaker();
        Fail(breaker, T0);
        Fail(breaker, T0);
        Fail(breaker, T0);
        Assert.Equal(BreakerState.Open, breaker.Snapshot(T0).State);
        return breaker;
    }

    [Fact]
    public void OnFailure_ConsecutiveFailuresReached_Opens()
    {
        var breaker = Breaker(consecutive: 3, minRequests: 100);
        Fail(breaker, T0);
        Fail(breaker, T0);
        Assert.Equal(BreakerState.Closed, breaker.Snapshot(T0).State);
        Assert.True(breaker.IsAvailable(T0));

        Fail(breaker, T0);

        var snapshot = breaker.Snapshot(T0);
        Assert.Equal(BreakerState.Open, snapshot.State);
        Assert.Equal(3, snapshot.ConsecutiveFailures);
        Assert.Equal(T0.AddSeconds(5), snapshot.OpenUntil);
        Assert.False(breaker.TryPass(T0, out _));
        Assert.False(breaker.IsAvailable(T0));
    }

    [Fact]
    public void OnSuccess_BetweenFailures_ResetsTheConsecutiveCount()
    {
        var breaker = Breaker(consecutive: 3, minRequests: 100);
        Fail(breaker, T0);
        Fail(breaker, T0);
        Succeed(breaker, T0);
        Fail(breaker, T0);
        Fail(breaker, T0);

        Assert.Equal(BreakerState.Closed, breaker.Snapshot(T0).State);
        Assert.Equal(2, breaker.Snapshot(T0).ConsecutiveFailures);
    }

    [Fact]
    public void OnFailure_FailureRateReachedWithMinRequests_Opens()
    {
        var breaker = Breaker(consecutive: 100, rate: 0.5, minRequests: 4);
        Fail(breaker, T0);
        Succeed(breaker, T0);
        Fail(breaker, T0);
        Assert.Equal(BreakerState.Closed, breaker.Snapshot(T0).State); // 2 of 3 failed, but fewer than min_requests

        Succeed(breaker, T0.AddSeconds(1));
        Assert.Equal(BreakerState.Closed, breaker.Snapshot(T0.AddSeconds(1)).State); // 2 of 4: judged on a failure only

        Fail(breaker, T0.AddSeconds(2)); // 3 of 5

        var snapshot = breaker.Snapshot(T0.AddSeconds(2));
        Assert.Equal(BreakerState.Open, snapshot.State);
        Assert.Equal(5, snapshot.WindowRequests);
        Assert.Equal(3, snapshot.WindowFailures);
    }

    [Fact]
    public void OnFailure_RateBelowThreshold_StaysClosed()
    {
        var breaker = Breaker(consecutive: 100, rate: 0.5, minRequests: 4);
        for (var i = 0; i < 10; i++)
        {
            Succeed(breaker, T0);
            Succeed(breaker, T0);
            Fail(breaker, T0);
        }

        Assert.Equal(BreakerState.Closed, breaker.Snapshot(T0).State);
        Assert.Equal(30, breaker.Snapshot(T0).WindowRequests);
    }

    [Fact]
    public void OnFailure_OldFailuresLeftTheWindow_AreNotCounted()
    {
        var breaker = Breaker(consecutive: 100, rate: 0.5, minRequests: 4, windowS: 10);
        Fail(breaker, T0);
        Fail(breaker, T0);
        Fail(breaker, T0);

        // Ten seconds later those three are out of the window: 1 failure in 4 requests.
        var later = T0.AddSeconds(10);
        Succeed(breaker, later);
        Succeed(breaker, later);
        Succeed(breaker, later);
        Fail(breaker, later);

        var snapshot = breaker.Snapshot(later);
        Assert.Equal(BreakerState.Closed, snapshot.State);
        Assert.Equal(4, snapshot.WindowRequests);
        Assert.Equal(1, snapshot.WindowFailures);
    }

    [Fact]
    public void TryPass_BeforeCooldownEnds_Refuses()
    {
        var breaker = Opened();
        var almost = T0.AddSeconds(5).AddTicks(-1);

        Assert.False(breaker.IsAvailable(almost));
        Assert.False(breaker.TryPass(almost, out _));
        Assert.Equal(BreakerState.Open, breaker.Snapshot(almost).State);
    }

    [Fact]
    public void TryPass_AfterCooldown_HalfOpenAdmitsExactlyOneProbe()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(5);
        Assert.True(breaker.IsAvailable(after));
        Assert.Equal(BreakerState.HalfOpen, breaker.Snapshot(after).State);

        Assert.True(breaker.TryPass(after, out var first));
        Assert.True(first);
        Assert.False(breaker.IsAvailable(after));
        for (var i = 0; i < 10; i++)
        {
            Assert.False(breaker.TryPass(after.AddSeconds(i), out _));
        }
    }

    [Fact]
    public void TryPass_ConcurrentCallersAfterCooldown_OnlyOneProbePasses()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(5);
        var passed = 0;
        Parallel.For(0, 64, _ =>
        {
            if (breaker.TryPass(after, out var probe))
            {
                Assert.True(probe);
                Interlocked.Increment(ref passed);
            }
        });

        Assert.Equal(1, passed);
    }

    [Fact]
    public void OnSuccess_OfTheProbe_Closes()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(5);
        Assert.True(breaker.TryPass(after, out var probe));

        breaker.OnSuccess(after, probe);

        var snapshot = breaker.Snapshot(after);
        Assert.Equal(BreakerState.Closed, snapshot.State);
        Assert.Equal(0, snapshot.ConsecutiveFailures);
        Assert.Null(snapshot.OpenUntil);
        Assert.True(breaker.TryPass(after, out var next));
        Assert.False(next);
        Assert.True(breaker.TryPass(after, out _));
    }

    [Fact]
    public void OnFailure_OfTheProbe_ReopensForAnotherCooldown()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(6);
        Assert.True(breaker.TryPass(after, out var probe));

        breaker.OnFailure(after, probe);

        var snapshot = breaker.Snapshot(after);
        Assert.Equal(BreakerState.Open, snapshot.State);
        Assert.Equal(after.AddSeconds(5), snapshot.OpenUntil);
        Assert.False(breaker.TryPass(after.AddSeconds(4), out _));
        Assert.True(breaker.TryPass(after.AddSeconds(5), out var second));
        Assert.True(second);
    }

    [Fact]
    public void OnAbandoned_Probe_FreesTheSlotForAnotherProbe()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(5);
        Assert.True(breaker.TryPass(after, out var probe));
        Assert.False(breaker.TryPass(after, out _));

        breaker.OnAbandoned(probe);

        Assert.Equal(BreakerState.HalfOpen, breaker.Snapshot(after).State);
        Assert.True(breaker.IsAvailable(after));
        Assert.True(breaker.TryPass(after, out var again));
        Assert.True(again);
    }

    [Fact]
    public void OnAbandoned_NotAProbe_LeavesTheProbeSlotTaken()
    {
        var breaker = Opened();
        var after = T0.AddSeconds(5);
        Assert.True(breaker.TryPass(after, out _));

        breaker.OnAbandoned(wasProbe: false);

        Assert.False(breaker.TryPass(after, out _));
    }
}
