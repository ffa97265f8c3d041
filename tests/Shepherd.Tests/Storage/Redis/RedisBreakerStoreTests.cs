namespace Shepherd.Tests.Storage.Redis;

using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Configuration;
using Shepherd.Resilience;
using Shepherd.Routing;
using Shepherd.Storage.Redis;
using Shepherd.Testing;
using StackExchange.Redis;

/// <summary>Breakers and upstream-key health shared through a real Redis by several "instances" (stores with their own state).</summary>
public sealed class RedisBreakerStoreTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
    private static readonly BreakerConfig Settings = new() { ConsecutiveFailures = 4, CooldownS = 30, MinRequests = 1000 };
    private readonly string _prefix = "br" + Guid.NewGuid().ToString("N")[..8];
    private readonly FakeTimeProvider _time = new(Start);
    private readonly List<ConnectionMultiplexer> _connections = [];
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    /// <summary>One instance: its own connection, state and store, subscribed and in step with Redis.</summary>
    private async Task<RedisBreakerStore> InstanceAsync()
    {
        var (state, log) = await StateAsync();
        var store = new RedisBreakerStore(state, Settings, _time);
        await InStepAsync(state, log);
        return store;
    }

    private async Task<(RedisState State, LogCapture Log)> StateAsync()
    {
        var connection = await _server.ConnectAsync();
        _connections.Add(connection);
        var log = new LogCapture();
        using var logging = LoggerFactory.Create(builder => builder.AddProvider(log));
        return (new RedisState(connection, new StateConfig { Redis = _server.Endpoint, Prefix = _prefix }, _time, logging.CreateLogger<RedisState>()), log);
    }

    /// <summary>
    /// Not subscribed, an instance would never hear the others: a test about sharing must not start before. The
    /// subscription has a connection of its own that may come up after the first, so (like the gateway's 250 ms
    /// tick) this tries again until the instance is in step.
    /// </summary>
    private static async Task InStepAsync(RedisState state, LogCapture log)
    {
        var waited = Stopwatch.StartNew();
        while (!await state.SyncAsync(CancellationToken.None))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "instance did not get in step with Redis: " + string.Join(" | ", log.Lines));
            await Task.Delay(20);
        }
    }

    /// <summary>An instance whose Redis is not there (nothing listens on the port).</summary>
    private async Task<RedisBreakerStore> UnreachableInstanceAsync()
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(RedisState.Options($"127.0.0.1:{RedisServer.FreePort()},connectTimeout=200,syncTimeout=200,asyncTimeout=200"));
        _connections.Add(connection);
        var state = new RedisState(connection, new StateConfig { Redis = _server.Endpoint, Prefix = _prefix }, _time, NullLogger<RedisState>.Instance);
        var store = new RedisBreakerStore(state, Settings, _time);
        Assert.False(await state.SyncAsync(CancellationToken.None));
        return store;
    }

    /// <summary>Waits for a message from another instance. Delivery takes milliseconds; the bound is generous because
    /// the whole suite runs in parallel on few cores.</summary>
    private static Task EventuallyAsync(Func<bool> condition) =>
        Eventually.HoldsAsync(condition, "a message from the other instance", TimeSpan.FromSeconds(30));

    [Fact]
    public async Task Failures_TwoOnEachOfTwoInstances_OpenOnBothUntilTheSameTime()
    {
        var a = (await InstanceAsync()).Get("deployment:p/m");
        var b = (await InstanceAsync()).Get("deployment:p/m");

        a.OnFailure(_time.GetUtcNow(), wasProbe: false);
        b.OnFailure(_time.GetUtcNow(), wasProbe: false);
        a.OnFailure(_time.GetUtcNow(), wasProbe: false);
        Assert.Equal(BreakerState.Closed, a.Snapshot(_time.GetUtcNow()).State);
        b.OnFailure(_time.GetUtcNow(), wasProbe: false);

        await EventuallyAsync(() => a.Snapshot(_time.GetUtcNow()).State == BreakerState.Open && b.Snapshot(_time.GetUtcNow()).State == BreakerState.Open);
        Assert.Equal(Start.AddSeconds(30), a.Snapshot(_time.GetUtcNow()).OpenUntil);
        Assert.Equal(Start.AddSeconds(30), b.Snapshot(_time.GetUtcNow()).OpenUntil);
        Assert.False(b.TryPass(_time.GetUtcNow(), out _));
    }

    [Fact]
    public async Task Success_BetweenFailures_ResetsTheSharedCount()
    {
        var storeA = await InstanceAsync();
        var storeB = await InstanceAsync();
        var a = storeA.Get("deployment:p/m");
        var b = storeB.Get("deployment:p/m");
        for (var i = 0; i < 3; i++)
        {
            a.OnFailure(_time.GetUtcNow(), wasProbe: false);
        }

        a.OnSuccess(_time.GetUtcNow(), wasProbe: false);
        await DrainedAsync(storeA);
        b.OnFailure(_time.GetUtcNow(), wasProbe: false);
        b.OnFailure(_time.GetUtcNow(), wasProbe: false);
        await DrainedAsync(storeB);

        var db = storeB.State.Connection.GetDatabase();
        Assert.Equal(2, (int)await db.StringGetAsync($"{_prefix}:{{breakers}}:fails:deployment:p/m"));
        Assert.False(await db.HashExistsAsync($"{_prefix}:{{breakers}}:open", "deployment:p/m"));
        Assert.Equal(BreakerState.Closed, a.Snapshot(_time.GetUtcNow()).State);
    }

    /// <summary>Every command the store sent so far has run (one connection runs its commands in order).</summary>
    private static Task DrainedAsync(RedisBreakerStore store) => store.State.Connection.GetDatabase().PingAsync();

    [Fact]
    public async Task HalfOpen_TwoInstances_OneProbeOnly_ItsSuccessClosesBoth()
    {
        var a = (await InstanceAsync()).Get("deployment:p/m");
        var b = (await InstanceAsync()).Get("deployment:p/m");
        for (var i = 0; i < 4; i++)
        {
            a.OnFailure(_time.GetUtcNow(), wasProbe: false);
        }

        await EventuallyAsync(() => b.Snapshot(_time.GetUtcNow()).State == BreakerState.Open);
        _time.Advance(TimeSpan.FromSeconds(31));

        Assert.True(a.TryPass(_time.GetUtcNow(), out var probe));
        Assert.True(probe);
        Assert.False(b.TryPass(_time.GetUtcNow(), out var other));
        Assert.False(other);

        a.OnSuccess(_time.GetUtcNow(), wasProbe: true);
        await EventuallyAsync(() => b.Snapshot(_time.GetUtcNow()).State == BreakerState.Closed);
        Assert.True(b.TryPass(_time.GetUtcNow(), out var afterwards));
        Assert.False(afterwards);
    }

    [Fact]
    public async Task ProbeFails_ReopenedOnBothForAnotherCooldown()
    {
        var a = (await InstanceAsync()).Get("key:p#0");
        var b = (await InstanceAsync()).Get("key:p#0");
        for (var i = 0; i < 4; i++)
        {
            b.OnFailure(_time.GetUtcNow(), wasProbe: false);
        }

        await EventuallyAsync(() => a.Snapshot(_time.GetUtcNow()).State == BreakerState.Open);
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(a.TryPass(_time.GetUtcNow(), out var probe) && probe);

        a.OnFailure(_time.GetUtcNow(), wasProbe: true);

        await EventuallyAsync(() => b.Snapshot(_time.GetUtcNow()).OpenUntil == Start.AddSeconds(61));
        Assert.False(b.TryPass(_time.GetUtcNow(), out _));
    }

    [Fact]
    public async Task SuccessPath_HealthyBreaker_SendsNothingToRedis()
    {
        var store = await InstanceAsync();
        var breaker = store.Get("deployment:p/m");

        for (var i = 0; i < 1000; i++)
        {
            Assert.True(breaker.TryPass(_time.GetUtcNow(), out var probe));
            breaker.OnSuccess(_time.GetUtcNow(), probe);
        }

        Assert.Equal(0, store.Commands);
    }

    [Fact]
    public async Task StartUp_AfterOthersOpenedAndTookKeysOut_ReadsBothFromRedis()
    {
        var a = await InstanceAsync();
        var ringA = new UpstreamKeyRing(["sk-one", "sk-two"], "p", a);
        for (var i = 0; i < 4; i++)
        {
            a.Get("deployment:p/m").OnFailure(_time.GetUtcNow(), wasProbe: false);
        }

        ringA.Keys[1].MarkDead(_time.GetUtcNow());
        await DrainedAsync(a);

        // A new instance: its breakers and keys are created before it syncs, as in the gateway.
        var (state, log) = await StateAsync();
        var late = new RedisBreakerStore(state, Settings, _time);
        var ringLate = new UpstreamKeyRing(["sk-one", "sk-two"], "p", late);
        var breaker = late.Get("deployment:p/m");
        Assert.Equal(BreakerState.Closed, breaker.Snapshot(_time.GetUtcNow()).State);

        await InStepAsync(state, log);

        Assert.Equal(BreakerState.Open, breaker.Snapshot(_time.GetUtcNow()).State);
        Assert.False(ringLate.Keys[0].IsDead);
        Assert.True(ringLate.Keys[1].IsDead);
        Assert.Equal(Start, ringLate.Keys[1].DeadSince);
    }

    [Fact]
    public async Task UpstreamKey_OutAndReadmittedOnOneInstance_SameOnTheOther()
    {
        var ringA = new UpstreamKeyRing(["sk-one"], "p", await InstanceAsync());
        var ringB = new UpstreamKeyRing(["sk-one"], "p", await InstanceAsync());

        ringA.Keys[0].MarkDead(_time.GetUtcNow());
        await EventuallyAsync(() => ringB.Keys[0].IsDead);
        Assert.Null(ringB.NextUsable(_time.GetUtcNow()));

        ringA.Keys[0].Readmit();
        await EventuallyAsync(() => !ringB.Keys[0].IsDead);
        Assert.Same(ringB.Keys[0], ringB.NextUsable(_time.GetUtcNow()));
    }

    [Fact]
    public async Task RedisDown_BreakersWorkLocally()
    {
        var dead = await UnreachableInstanceAsync();
        var breaker = dead.Get("deployment:p/m");
        for (var i = 0; i < 5; i++)
        {
            breaker.OnFailure(_time.GetUtcNow(), wasProbe: false);
        }

        Assert.Equal(BreakerState.Open, breaker.Snapshot(_time.GetUtcNow()).State);
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(breaker.TryPass(_time.GetUtcNow(), out var probe) && probe);
        breaker.OnSuccess(_time.GetUtcNow(), probe);
        Assert.Equal(BreakerState.Closed, breaker.Snapshot(_time.GetUtcNow()).State);
    }
}
