namespace Shepherd.Tests.Storage.Redis;

using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Storage.Redis;
using Shepherd.Testing;
using StackExchange.Redis;

/// <summary>The shared limiter against a real Redis: the same exactness as in memory, across "instances".</summary>
public sealed class RedisLimiterTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
    private RedisServer _server = null!;
    private ConnectionMultiplexer _redis = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartAsync();
        _redis = await _server.ConnectAsync();
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _server.DisposeAsync();
    }

    private static KeyEntry Key(Func<VirtualKeyRecord, VirtualKeyRecord> change)
    {
        var record = change(new VirtualKeyRecord { Id = "key_" + Guid.NewGuid().ToString("N")[..16], Name = "t", Hash = new string('0', 64), Display = "x", CreatedAt = Start });
        var runtime = new KeyRuntime();
        runtime.Restore(DateOnly.FromDateTime(Start.UtcDateTime), 0m, 0m, 0m, record.CreditBalance);
        return new KeyEntry(record, ModelAccess.All, runtime);
    }

    private RedisLimiter Limiter(TimeProvider time, bool failOpen = true, IConnectionMultiplexer? redis = null) =>
        new(redis ?? _redis, new InMemoryLimiter(time, BudgetCalendar.Utc), time, BudgetCalendar.Utc, failOpen, NullLogger<RedisLimiter>.Instance, prefix: "t" + Guid.NewGuid().ToString("N")[..6]);

    [Fact]
    public async Task Acquire_RpmAcrossThreeInstances_ExactlyLimitPass()
    {
        var time = new FakeTimeProvider(Start);
        var prefix = "rpm" + Guid.NewGuid().ToString("N")[..6];
        var instances = Enumerable.Range(0, 3).Select(_ => new RedisLimiter(_redis, new InMemoryLimiter(time, BudgetCalendar.Utc), time, BudgetCalendar.Utc, true, NullLogger<RedisLimiter>.Instance, prefix: prefix)).ToArray();
        var key = Key(r => r with { Rpm = 60 });

        var decisions = await Task.WhenAll(Enumerable.Range(0, 300).Select(i => instances[i % 3].AcquireAsync(key, new LimitRequest(0, 0m), CancellationToken.None).AsTask()));

        Assert.Equal(60, decisions.Count(d => d.Allowed));
        Assert.All(decisions.Where(d => !d.Allowed), d => Assert.Equal("rate_limit_exceeded", d.Error!.Code));
    }

    [Fact]
    public async Task Acquire_CreditAcrossInstances_ExactlyAffordableAndBalanceExact()
    {
        var time = new FakeTimeProvider(Start);
        var prefix = "cr" + Guid.NewGuid().ToString("N")[..6];
        var instances = Enumerable.Range(0, 3).Select(_ => new RedisLimiter(_redis, new InMemoryLimiter(time, BudgetCalendar.Utc), time, BudgetCalendar.Utc, true, NullLogger<RedisLimiter>.Instance, prefix: prefix)).ToArray();
        const decimal Cost = 0.000123m;
        var key = Key(r => r with { CreditBalance = (25 * Cost) + (Cost / 2) });
        await instances[0].SeedAsync(key, null, CancellationToken.None);

        var results = await Task.WhenAll(Enumerable.Range(0, 100).Select(async i =>
        {
            var limiter = instances[i % 3];
            var decision = await limiter.AcquireAsync(key, new LimitRequest(0, Cost), CancellationToken.None);
            if (decision.Allowed)
            {
                await limiter.SettleAsync(decision.Lease, 0, Cost);
            }

            return decision.Allowed;
        }));

        Assert.Equal(25, results.Count(a => a));
        var (_, _, total, credit) = await instances[1].ReadSpendAsync(key);
        Assert.Equal(Cost / 2, credit);
        Assert.Equal(25 * Cost, total);
    }

    [Fact]
    public async Task Acquire_MaxParallelAndSettle_SlotFreed()
    {
        var limiter = Limiter(new FakeTimeProvider(Start));
        var key = Key(r => r with { MaxParallel = 1 });
        var first = await limiter.AcquireAsync(key, default, CancellationToken.None);
        Assert.True(first.Allowed);
        Assert.False((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);
        await limiter.SettleAsync(first.Lease, 0, 0m);
        Assert.True((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);
    }

    [Fact]
    public async Task Acquire_TpmReservationSettledToActual()
    {
        var limiter = Limiter(new FakeTimeProvider(Start));
        var key = Key(r => r with { Tpm = 1000 });
        var first = await limiter.AcquireAsync(key, new LimitRequest(800, 0m), CancellationToken.None);
        Assert.True(first.Allowed);
        Assert.False((await limiter.AcquireAsync(key, new LimitRequest(300, 0m), CancellationToken.None)).Allowed);
        await limiter.SettleAsync(first.Lease, 100, 0m);
        var second = await limiter.AcquireAsync(key, new LimitRequest(300, 0m), CancellationToken.None);
        Assert.True(second.Allowed);
        Assert.Equal(600, second.Snapshot.TokensRemaining);
    }

    [Fact]
    public async Task Acquire_DailyBudgetAcrossMidnight_BlockedBeforeAllowedAfter()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 23, 59, 0, TimeSpan.Zero));
        var limiter = Limiter(time);
        var key = Key(r => r with { DailyBudget = 1m });
        var spend = await limiter.AcquireAsync(key, new LimitRequest(0, 1m), CancellationToken.None);
        await limiter.SettleAsync(spend.Lease, 0, 1m);
        var blocked = await limiter.AcquireAsync(key, new LimitRequest(0, 0.01m), CancellationToken.None);
        Assert.Equal("insufficient_quota", blocked.Error!.Code);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await limiter.AcquireAsync(key, new LimitRequest(0, 0.01m), CancellationToken.None)).Allowed);
    }

    [Fact]
    public async Task Acquire_RedisDown_FailOpenUsesLocalLimitsFailClosedRefuses()
    {
        var dead = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions { EndPoints = { $"127.0.0.1:{RedisServer.FreePort()}" }, AbortOnConnectFail = false, ConnectTimeout = 200, SyncTimeout = 200, AsyncTimeout = 200 });
        var time = new FakeTimeProvider(Start);
        var key = Key(r => r with { Rpm = 1 });

        var open = Limiter(time, failOpen: true, redis: dead);
        var local = await open.AcquireAsync(key, default, CancellationToken.None);
        Assert.True(local.Allowed);
        Assert.True(open.Degraded);
        Assert.False((await open.AcquireAsync(key, default, CancellationToken.None)).Allowed);
        await open.SettleAsync(local.Lease, 0, 0m);

        var closed = Limiter(time, failOpen: false, redis: dead);
        var refused = await closed.AcquireAsync(Key(r => r with { Rpm = 1 }), default, CancellationToken.None);
        Assert.Equal(503, refused.Error!.Status);
        await dead.DisposeAsync();
    }
}
