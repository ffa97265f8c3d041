namespace Shepherd.Tests.Routing;

using Microsoft.Extensions.Time.Testing;
using Shepherd.Configuration;
using Shepherd.Resilience;
using Shepherd.Routing;

public sealed class DeploymentStateTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static DeploymentState State(int? maxConcurrency = null, int queueSize = 0, int queueTimeoutMs = 5_000, int? rpm = null, int? tpm = null) =>
        new(new CircuitBreaker(new BreakerConfig()), maxConcurrency, queueSize, TimeSpan.FromMilliseconds(queueTimeoutMs), rpm, tpm);

    [Fact]
    public async Task EnterAsync_Unlimited_AlwaysEntersAndCountsInFlight()
    {
        var state = State();
        var time = new FakeTimeProvider(T0);
        for (var i = 0; i < 100; i++)
        {
            Assert.True(await state.EnterAsync(time, CancellationToken.None));
        }

        Assert.Equal(100, state.InFlight);
        state.Exit();
        Assert.Equal(99, state.InFlight);
    }

    [Fact]
    public async Task EnterAsync_SlotsTaken_WaitsInTheQueueUntilOneIsFreed()
    {
        var state = State(maxConcurrency: 2, queueSize: 2);
        var time = new FakeTimeProvider(T0);
        Assert.True(await state.EnterAsync(time, CancellationToken.None));
        Assert.True(await state.EnterAsync(time, CancellationToken.None));

        var third = state.EnterAsync(time, CancellationToken.None).AsTask();
        var fourth = state.EnterAsync(time, CancellationToken.None).AsTask();
        Assert.False(third.IsCompleted);
        Assert.False(fourth.IsCompleted);
        Assert.Equal(2, state.Waiting);
        Assert.Equal(2, state.InFlight);

        state.Exit();
        var first = await Task.WhenAny(third, fourth);
        Assert.True(await first);
        Assert.Equal(1, state.Waiting);
        Assert.Equal(2, state.InFlight);

        state.Exit();
        Assert.True(await third);
        Assert.True(await fourth);
        Assert.Equal(0, state.Waiting);
    }

    [Fact]
    public async Task EnterAsync_QueueFull_RefusedAtOnce()
    {
        var state = State(maxConcurrency: 1, queueSize: 1);
        var time = new FakeTimeProvider(T0);
        Assert.True(await state.EnterAsync(time, CancellationToken.None));
        var queued = state.EnterAsync(time, CancellationToken.None).AsTask();

        var refused = state.EnterAsync(time, CancellationToken.None);

        Assert.True(refused.IsCompleted);
        Assert.False(await refused);
        Assert.Equal(1, state.Waiting);
        state.Exit();
        Assert.True(await queued);
    }

    [Fact]
    public async Task EnterAsync_NoQueue_RefusedAtOnceWhenTheSlotsAreTaken()
    {
        var state = State(maxConcurrency: 1, queueSize: 0);
        var time = new FakeTimeProvider(T0);
        Assert.True(await state.EnterAsync(time, CancellationToken.None));

        Assert.False(await state.EnterAsync(time, CancellationToken.None));
        Assert.Equal(0, state.Waiting);
    }

    [Fact]
    public async Task EnterAsync_QueueTimeoutOnTheGatewayClock_GivesUp()
    {
        var state = State(maxConcurrency: 1, queueSize: 5, queueTimeoutMs: 2_000);
        var time = new FakeTimeProvider(T0);
        Assert.True(await state.EnterAsync(time, CancellationToken.None));
        var queued = state.EnterAsync(time, CancellationToken.None).AsTask();

        time.Advance(TimeSpan.FromMilliseconds(1_999));
        Assert.False(queued.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.False(await queued);
        Assert.Equal(0, state.Waiting);
        Assert.Equal(1, state.InFlight);

        // The slot it never took is still there for the next one.
        state.Exit();
        Assert.True(await state.EnterAsync(time, CancellationToken.None));
    }

    [Fact]
    public async Task EnterAsync_ClientCancelsWhileQueued_ThrowsAndLeavesTheQueue()
    {
        var state = State(maxConcurrency: 1, queueSize: 5);
        var time = new FakeTimeProvider(T0);
        Assert.True(await state.EnterAsync(time, CancellationToken.None));
        using var client = new CancellationTokenSource();
        var queued = state.EnterAsync(time, client.Token).AsTask();

        await client.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued);
        Assert.Equal(0, state.Waiting);
        Assert.Equal(1, state.InFlight);
    }

    [Fact]
    public void TryCountUpstream_Rpm_RefusesBeyondTheLimitUntilTheMinuteSlides()
    {
        var state = State(rpm: 3);

        Assert.True(state.TryCountUpstream(T0, 10));
        Assert.True(state.TryCountUpstream(T0.AddSeconds(20), 10));
        Assert.True(state.TryCountUpstream(T0.AddSeconds(40), 10));
        Assert.False(state.TryCountUpstream(T0.AddSeconds(59), 10));

        // The first request's second has left the one-minute window.
        Assert.True(state.TryCountUpstream(T0.AddSeconds(60), 10));
        Assert.False(state.TryCountUpstream(T0.AddSeconds(61), 10));
    }

    [Fact]
    public void TryCountUpstream_Tpm_CountsTokensAndRefusesWhatDoesNotFit()
    {
        var state = State(tpm: 100);

        Assert.True(state.TryCountUpstream(T0, 60));
        Assert.False(state.TryCountUpstream(T0, 41));
        Assert.True(state.TryCountUpstream(T0, 40));
        Assert.False(state.TryCountUpstream(T0.AddSeconds(30), 1));
        Assert.True(state.TryCountUpstream(T0.AddSeconds(60), 100));
    }

    [Fact]
    public void TryCountUpstream_RefusedByTpm_DoesNotSpendRpm()
    {
        var state = State(rpm: 2, tpm: 100);

        Assert.False(state.TryCountUpstream(T0, 500));
        Assert.True(state.TryCountUpstream(T0, 10));
        Assert.True(state.TryCountUpstream(T0, 10));
        Assert.False(state.TryCountUpstream(T0, 10));
    }

    [Fact]
    public void TryCountUpstream_NoLimits_AlwaysTrue()
    {
        var state = State();
        for (var i = 0; i < 10_000; i++)
        {
            Assert.True(state.TryCountUpstream(T0, 1_000_000));
        }
    }

    [Fact]
    public void RecordFirstByte_MovingAverageAndP95()
    {
        var state = State();
        Assert.True(double.IsNaN(state.LatencyMs));
        Assert.Null(state.P95FirstByte());

        for (var i = 1; i <= 20; i++)
        {
            state.RecordFirstByte(TimeSpan.FromMilliseconds(i * 10));
        }

        Assert.InRange(state.LatencyMs, 100, 200);
        Assert.Equal(TimeSpan.FromMilliseconds(190), state.P95FirstByte());
    }

    [Fact]
    public void TryCountUpstream_ConcurrentCallers_NeverExceedTheLimit()
    {
        for (var round = 0; round < 20; round++)
        {
            var state = State(rpm: 100, tpm: 1_000_000);
            var granted = 0;
            Parallel.For(0, 1_000, _ =>
            {
                if (state.TryCountUpstream(T0, 10))
                {
                    Interlocked.Increment(ref granted);
                }
            });

            Assert.Equal(100, granted);
        }
    }
}
