namespace Shepherd.Tests.Limits;

using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Storage.Redis;
using Shepherd.Testing;
using StackExchange.Redis;

/// <summary>
/// What every limiter promises, in memory or shared through Redis: exact RPM under concurrency, a sliding minute,
/// parallel slots, TPM reservations settled to the real count, budgets by calendar day, exact credit, and a refusal
/// that reserves nothing. One concrete class per limiter runs these tests.
/// </summary>
public abstract class LimiterContractTests
{
    protected static readonly DateTimeOffset Start = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    protected abstract ILimiter Create(TimeProvider time);

    /// <summary>Whatever the limiter needs before a key is used (the shared one seeds its counters).</summary>
    protected abstract Task PrepareAsync(ILimiter limiter, KeyEntry key);

    protected abstract Task<decimal?> BalanceAsync(ILimiter limiter, KeyEntry key);

    protected static KeyEntry Key(Func<VirtualKeyRecord, VirtualKeyRecord> change)
    {
        var record = change(new VirtualKeyRecord { Id = "key_" + Guid.NewGuid().ToString("N")[..16], Name = "t", Hash = new string('0', 64), Display = "x", CreatedAt = Start });
        var runtime = new KeyRuntime();
        runtime.Restore(DateOnly.FromDateTime(Start.UtcDateTime), 0m, 0m, 0m, record.CreditBalance);
        return new KeyEntry(record, ModelAccess.All, runtime);
    }

    private async Task<(ILimiter Limiter, KeyEntry Key)> SetUpAsync(TimeProvider time, Func<VirtualKeyRecord, VirtualKeyRecord> change)
    {
        var limiter = Create(time);
        var key = Key(change);
        await PrepareAsync(limiter, key);
        return (limiter, key);
    }

    [Fact]
    public async Task Acquire_Rpm50_200Concurrent_Exactly50Pass()
    {
        var (limiter, key) = await SetUpAsync(new FakeTimeProvider(Start), r => r with { Rpm = 50 });

        var decisions = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(() => limiter.AcquireAsync(key, default, CancellationToken.None).AsTask())));

        Assert.Equal(50, decisions.Count(d => d.Allowed));
        Assert.All(decisions.Where(d => !d.Allowed), d =>
        {
            Assert.Equal(429, d.Error!.Status);
            Assert.Equal("rate_limit_exceeded", d.Error.Code);
            Assert.True(d.Error.RetryAfter > TimeSpan.Zero);
        });
    }

    [Fact]
    public async Task Acquire_RpmWindowSlides_AllowedAgainWhenTheOldestLeaves()
    {
        var time = new FakeTimeProvider(Start);
        var (limiter, key) = await SetUpAsync(time, r => r with { Rpm = 2 });
        Assert.True((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.True((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);

        var refused = await limiter.AcquireAsync(key, default, CancellationToken.None);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(30), refused.Error!.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(30));
        var again = await limiter.AcquireAsync(key, default, CancellationToken.None);
        Assert.True(again.Allowed);
        Assert.Equal(0, again.Snapshot.RequestsRemaining);
        Assert.Equal(2, again.Snapshot.RequestLimit);
    }

    [Fact]
    public async Task Acquire_CreditFor37_100Concurrent_Exactly37PassAndBalanceExact()
    {
        const decimal Cost = 0.000123m;
        var (limiter, key) = await SetUpAsync(new FakeTimeProvider(Start), r => r with { CreditBalance = (37 * Cost) + (Cost / 2) });

        var passed = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Task.Run(async () =>
        {
            var decision = await limiter.AcquireAsync(key, new LimitRequest(10, Cost), CancellationToken.None);
            if (decision.Allowed)
            {
                await limiter.SettleAsync(decision.Lease, 10, Cost);
            }

            return decision.Allowed;
        })));

        Assert.Equal(37, passed.Count(p => p));
        Assert.Equal(Cost / 2, await BalanceAsync(limiter, key));
    }

    [Fact]
    public async Task Acquire_MaxParallel1_SecondRefusedUntilTheFirstSettles()
    {
        var (limiter, key) = await SetUpAsync(new FakeTimeProvider(Start), r => r with { MaxParallel = 1 });
        var first = await limiter.AcquireAsync(key, default, CancellationToken.None);
        Assert.True(first.Allowed);
        Assert.False((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);

        await limiter.SettleAsync(first.Lease, 0, 0m);

        Assert.True((await limiter.AcquireAsync(key, default, CancellationToken.None)).Allowed);
    }

    [Fact]
    public async Task Settle_TpmReservation_CorrectedToTheRealCount()
    {
        var (limiter, key) = await SetUpAsync(new FakeTimeProvider(Start), r => r with { Tpm = 1000 });
        var first = await limiter.AcquireAsync(key, new LimitRequest(800, 0m), CancellationToken.None);
        Assert.True(first.Allowed);
        Assert.False((await limiter.AcquireAsync(key, new LimitRequest(300, 0m), CancellationToken.None)).Allowed);

        await limiter.SettleAsync(first.Lease, 100, 0m);

        var second = await limiter.AcquireAsync(key, new LimitRequest(300, 0m), CancellationToken.None);
        Assert.True(second.Allowed);
        Assert.Equal(600, second.Snapshot.TokensRemaining);
    }

    [Fact]
    public async Task Acquire_DailyBudgetSpent_RefusedUntilMidnight()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 23, 59, 0, TimeSpan.Zero));
        var (limiter, key) = await SetUpAsync(time, r => r with { DailyBudget = 1m });
        var spend = await limiter.AcquireAsync(key, new LimitRequest(0, 1m), CancellationToken.None);
        await limiter.SettleAsync(spend.Lease, 0, 1m);

        var blocked = await limiter.AcquireAsync(key, new LimitRequest(0, 0.01m), CancellationToken.None);
        Assert.Equal("insufficient_quota", blocked.Error!.Code);
        Assert.Equal(TimeSpan.FromMinutes(1), blocked.Error.RetryAfter);

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await limiter.AcquireAsync(key, new LimitRequest(0, 0.01m), CancellationToken.None)).Allowed);
    }

    [Fact]
    public async Task Acquire_RefusedForTokens_ReservesNothing()
    {
        var (limiter, key) = await SetUpAsync(new FakeTimeProvider(Start), r => r with { Rpm = 2, Tpm = 100 });
        Assert.False((await limiter.AcquireAsync(key, new LimitRequest(500, 0m), CancellationToken.None)).Allowed);
        Assert.False((await limiter.AcquireAsync(key, new LimitRequest(500, 0m), CancellationToken.None)).Allowed);

        Assert.True((await limiter.AcquireAsync(key, new LimitRequest(10, 0m), CancellationToken.None)).Allowed);
        Assert.True((await limiter.AcquireAsync(key, new LimitRequest(10, 0m), CancellationToken.None)).Allowed);
    }
}

public sealed class InMemoryLimiterContractTests : LimiterContractTests
{
    protected override ILimiter Create(TimeProvider time) => new InMemoryLimiter(time, BudgetCalendar.Utc);

    protected override Task PrepareAsync(ILimiter limiter, KeyEntry key) => Task.CompletedTask;

    protected override Task<decimal?> BalanceAsync(ILimiter limiter, KeyEntry key) => Task.FromResult(key.Runtime.Snapshot().CreditBalance);
}

public sealed class RedisLimiterContractTests : LimiterContractTests, IAsyncLifetime
{
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

    protected override ILimiter Create(TimeProvider time) =>
        new RedisLimiter(_redis, new InMemoryLimiter(time, BudgetCalendar.Utc), time, BudgetCalendar.Utc, failOpen: false, NullLogger<RedisLimiter>.Instance, prefix: "lc" + Guid.NewGuid().ToString("N")[..8]);

    protected override Task PrepareAsync(ILimiter limiter, KeyEntry key) => ((RedisLimiter)limiter).SeedAsync(key, null, CancellationToken.None);

    protected override async Task<decimal?> BalanceAsync(ILimiter limiter, KeyEntry key) => (await ((RedisLimiter)limiter).ReadLiveAsync(key)).CreditBalance;
}
