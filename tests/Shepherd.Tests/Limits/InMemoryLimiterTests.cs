namespace Shepherd.Tests.Limits;

using Microsoft.Extensions.Time.Testing;
using Shepherd.Keys;
using Shepherd.Limits;

public sealed class InMemoryLimiterTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    private static KeyEntry Key(VirtualKeyRecord? record = null, decimal? credit = null)
    {
        record ??= new VirtualKeyRecord { Id = "key_test", Name = "t", Hash = new string('0', 64), Display = "sk-shp-…", CreatedAt = Start };
        var runtime = new KeyRuntime();
        runtime.Restore(DateOnly.FromDateTime(Start.UtcDateTime), 0m, 0m, 0m, credit ?? record.CreditBalance);
        return new KeyEntry(record, ModelAccess.All, runtime);
    }

    private static VirtualKeyRecord Record(Func<VirtualKeyRecord, VirtualKeyRecord> change) =>
        change(new VirtualKeyRecord { Id = "key_test", Name = "t", Hash = new string('0', 64), Display = "sk-shp-…", CreatedAt = Start });

    [Fact]
    public void Acquire_RpmUnderConcurrency_ExactlyLimitPass()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var key = Key(Record(r => r with { Rpm = 50 }));
        var allowed = 0;
        var refused = 0;
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 16 }, _ =>
        {
            var decision = limiter.Acquire(key, new LimitRequest(0, 0m));
            if (decision.Allowed)
            {
                Interlocked.Increment(ref allowed);
            }
            else
            {
                Interlocked.Increment(ref refused);
                Assert.Equal(429, decision.Error!.Status);
                Assert.Equal("rate_limit_exceeded", decision.Error.Code);
                Assert.NotNull(decision.Error.RetryAfter);
            }
        });

        Assert.Equal(50, allowed);
        Assert.Equal(150, refused);
    }

    [Fact]
    public void Acquire_RpmWindowSlides_AllowsAgainAfterAMinute()
    {
        var time = new FakeTimeProvider(Start);
        var limiter = new InMemoryLimiter(time, BudgetCalendar.Utc);
        var key = Key(Record(r => r with { Rpm = 2 }));
        Assert.True(limiter.Acquire(key, default).Allowed);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(limiter.Acquire(key, default).Allowed);
        var refused = limiter.Acquire(key, default);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(30), refused.Error!.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(30));
        var decision = limiter.Acquire(key, default);
        Assert.True(decision.Allowed);
        Assert.Equal(0, decision.Snapshot.RequestsRemaining);
        Assert.Equal(2, decision.Snapshot.RequestLimit);
    }

    [Fact]
    public void Acquire_CreditUnderConcurrency_ExactlyAffordableCountPassAndBalanceExact()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var cost = 0.000123m;
        var key = Key(Record(r => r with { CreditBalance = (37 * cost) + (cost / 2) }));
        var allowed = 0;
        Parallel.For(0, 100, new ParallelOptions { MaxDegreeOfParallelism = 16 }, _ =>
        {
            var decision = limiter.Acquire(key, new LimitRequest(10, cost));
            if (decision.Allowed)
            {
                Interlocked.Increment(ref allowed);
                limiter.Settle(decision.Lease, 10, cost);
            }
            else
            {
                Assert.Equal("insufficient_quota", decision.Error!.Code);
            }
        });

        Assert.Equal(37, allowed);
        var snapshot = key.Runtime.Snapshot();
        Assert.Equal(cost / 2, snapshot.CreditBalance);
        Assert.Equal(0m, snapshot.Reserved);
        Assert.Equal(37 * cost, snapshot.SpentTotal);
    }

    [Fact]
    public void Acquire_ReservationsBlockBeforeSettlement_NoOverdraw()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var key = Key(Record(r => r with { CreditBalance = 1.00m }));
        var first = limiter.Acquire(key, new LimitRequest(0, 0.60m));
        Assert.True(first.Allowed);

        // The first request's worst case is still reserved: the second does not fit until it settles.
        Assert.False(limiter.Acquire(key, new LimitRequest(0, 0.60m)).Allowed);
        limiter.Settle(first.Lease, 0, 0.10m);
        Assert.True(limiter.Acquire(key, new LimitRequest(0, 0.60m)).Allowed);
        Assert.Equal(0.90m, key.Runtime.Snapshot().CreditBalance);
    }

    [Fact]
    public void Acquire_DailyBudgetAcrossMidnight_BlockedBeforeAllowedAfter()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 23, 59, 0, TimeSpan.Zero));
        var limiter = new InMemoryLimiter(time, BudgetCalendar.Utc);
        var key = Key(Record(r => r with { DailyBudget = 1.00m, MonthlyBudget = 100m }));
        var spend = limiter.Acquire(key, new LimitRequest(0, 1.00m));
        limiter.Settle(spend.Lease, 0, 1.00m);

        var blocked = limiter.Acquire(key, new LimitRequest(0, 0.01m));
        Assert.False(blocked.Allowed);
        Assert.Equal("insufficient_quota", blocked.Error!.Code);
        Assert.Equal(TimeSpan.FromMinutes(1), blocked.Error.RetryAfter);

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(limiter.Acquire(key, new LimitRequest(0, 0.01m)).Allowed);
        Assert.Equal(1.00m, key.Runtime.Snapshot().SpentThisMonth);
    }

    [Fact]
    public void Acquire_DailyBudgetInConfiguredTimeZone_ResetsAtLocalMidnight()
    {
        var zone = TimeZoneInfo.CreateCustomTimeZone("UTC+2", TimeSpan.FromHours(2), "UTC+2", "UTC+2");
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 21, 59, 0, TimeSpan.Zero)); // 23:59 local
        var limiter = new InMemoryLimiter(time, new BudgetCalendar(zone));
        var key = Key(Record(r => r with { DailyBudget = 1.00m }));
        limiter.Settle(limiter.Acquire(key, new LimitRequest(0, 1.00m)).Lease, 0, 1.00m);
        Assert.False(limiter.Acquire(key, new LimitRequest(0, 0.5m)).Allowed);
        time.Advance(TimeSpan.FromMinutes(1)); // local midnight
        Assert.True(limiter.Acquire(key, new LimitRequest(0, 0.5m)).Allowed);
    }

    [Fact]
    public void Acquire_MonthlyAndTotalBudgets_Refuse()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var monthly = Key(Record(r => r with { MonthlyBudget = 0.5m }));
        Assert.False(limiter.Acquire(monthly, new LimitRequest(0, 0.6m)).Allowed);
        var total = Key(Record(r => r with { TotalBudget = 0.5m }));
        var decision = limiter.Acquire(total, new LimitRequest(0, 0.6m));
        Assert.False(decision.Allowed);
        Assert.Null(decision.Error!.RetryAfter);
    }

    [Fact]
    public void Settle_TpmReservationCorrectedToActual()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var key = Key(Record(r => r with { Tpm = 1000 }));
        var first = limiter.Acquire(key, new LimitRequest(800, 0m));
        Assert.True(first.Allowed);
        Assert.Equal(200, first.Snapshot.TokensRemaining);
        Assert.False(limiter.Acquire(key, new LimitRequest(300, 0m)).Allowed);

        limiter.Settle(first.Lease, 100, 0m);
        var second = limiter.Acquire(key, new LimitRequest(300, 0m));
        Assert.True(second.Allowed);
        Assert.Equal(600, second.Snapshot.TokensRemaining);
    }

    [Fact]
    public void Acquire_RequestLargerThanTpm_RefusedWithTokensType()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var decision = limiter.Acquire(Key(Record(r => r with { Tpm = 100 })), new LimitRequest(101, 0m));
        Assert.False(decision.Allowed);
        Assert.Equal("tokens", decision.Error!.Type);
    }

    [Fact]
    public void Acquire_MaxParallel_CountsUntilSettled()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var key = Key(Record(r => r with { MaxParallel = 2 }));
        var a = limiter.Acquire(key, default);
        var b = limiter.Acquire(key, default);
        Assert.True(a.Allowed && b.Allowed);
        Assert.False(limiter.Acquire(key, default).Allowed);
        limiter.Settle(a.Lease, 0, 0m);
        Assert.True(limiter.Acquire(key, default).Allowed);
    }

    [Fact]
    public void Acquire_RefusedByMoney_ReservesNoRateSlot()
    {
        var limiter = new InMemoryLimiter(new FakeTimeProvider(Start), BudgetCalendar.Utc);
        var key = Key(Record(r => r with { Rpm = 1, CreditBalance = 0.01m }));
        Assert.False(limiter.Acquire(key, new LimitRequest(0, 1m)).Allowed);
        Assert.True(limiter.Acquire(key, new LimitRequest(0, 0.001m)).Allowed);
    }

    [Fact]
    public void Settle_SumsUnsavedSpendPerDay_SpillsTheEndedDay()
    {
        var recorder = new Recorder();
        var time = new FakeTimeProvider(Start);
        var limiter = new InMemoryLimiter(time, BudgetCalendar.Utc, recorder);
        var key = Key(Record(r => r with { CreditBalance = 5m }));
        limiter.Settle(limiter.Acquire(key, new LimitRequest(0, 1m)).Lease, 0, 0.25m);
        limiter.Settle(limiter.Acquire(key, new LimitRequest(0, 1m)).Lease, 0, 0.5m);
        Assert.Empty(recorder.Deltas);

        // The next day's first settlement hands the previous day's unsaved spend to the recorder.
        time.Advance(TimeSpan.FromDays(1));
        limiter.Settle(limiter.Acquire(key, new LimitRequest(0, 1m)).Lease, 0, 0.125m);
        var spilled = Assert.Single(recorder.Deltas);
        Assert.Equal(new SpendDelta("key_test", DateOnly.FromDateTime(Start.UtcDateTime), 0.75m, 0.75m), spilled);

        Assert.True(key.Runtime.TakeUnsaved(out var day, out var spend, out var credit));
        Assert.Equal((DateOnly.FromDateTime(Start.UtcDateTime).AddDays(1), 0.125m, 0.125m), (day, spend, credit));
        Assert.False(key.Runtime.TakeUnsaved(out _, out _, out _));
    }

    [Theory]
    [InlineData(12, "12ms")]
    [InlineData(1500, "1.5s")]
    [InlineData(360_000, "6m0s")]
    public void Duration_FormatsLikeOpenAI(int milliseconds, string expected) =>
        Assert.Equal(expected, InMemoryLimiter.Duration(TimeSpan.FromMilliseconds(milliseconds)));

    private sealed class Recorder : ISpendRecorder
    {
        public List<SpendDelta> Deltas { get; } = [];

        public void Record(SpendDelta delta) => Deltas.Add(delta);
    }
}
