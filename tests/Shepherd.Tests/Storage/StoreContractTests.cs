namespace Shepherd.Tests.Storage;

using System.Data.Common;
using Shepherd.Accounting;
using Shepherd.Keys;
using Shepherd.Storage;

/// <summary>
/// What every store promises, whatever the database: keys round-trip, spend and credit are exact, usage is stored and
/// rolled up exactly once, reports agree. One concrete class per database (SQLite, PostgreSQL) runs these tests.
/// </summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    protected static readonly DateTimeOffset Noon = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    protected IStorageDatabase Database { get; private set; } = null!;

    protected IKeyStore Keys { get; private set; } = null!;

    protected ISpendStore Spend { get; private set; } = null!;

    protected IUsageStore Usage { get; private set; } = null!;

    /// <summary>A fresh, empty database (not migrated yet) and its stores.</summary>
    protected abstract Task<(IStorageDatabase Database, IKeyStore Keys, ISpendStore Spend, IUsageStore Usage)> CreateAsync();

    protected abstract Task DestroyAsync();

    public async Task InitializeAsync()
    {
        (Database, Keys, Spend, Usage) = await CreateAsync();
        await Database.MigrateAsync(CancellationToken.None);
    }

    public Task DisposeAsync() => DestroyAsync();

    protected static VirtualKeyRecord Record(string id, string hash) => new()
    {
        Id = id,
        Name = "name " + id,
        Team = "team-a",
        Hash = hash,
        Display = "sk-shp-AbCd…wxyz",
        CreatedAt = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero),
        ExpiresAt = new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero),
        AllowedModels = ["gpt-*", "claude"],
        IpAllowlist = ["10.0.0.0/8", "2001:db8::/32"],
        Rpm = 60,
        Tpm = 100_000,
        MaxParallel = 4,
        DailyBudget = 1.5m,
        MonthlyBudget = 30m,
        TotalBudget = 100m,
        CreditBalance = 12.345678m,
        Metadata = new Dictionary<string, string> { ["owner"] = "ops@example.com" },
    };

    protected static UsageRecord Use(string requestId, DateTimeOffset time, string key = "key_a", string model = "gpt-x", string provider = "openai", decimal cost = 0.000001234m, string? error = null, bool estimated = false) => new()
    {
        Time = time,
        RequestId = requestId,
        KeyId = key,
        Team = key == "master" ? null : "team-" + key[^1],
        RequestedModel = model,
        ServedModel = model,
        Provider = provider,
        Deployment = $"{provider}/{model}",
        Attempts = 1,
        Status = error is null ? 200 : 502,
        ErrorClass = error,
        PromptTokens = 100,
        CachedTokens = 20,
        CompletionTokens = 50,
        ReasoningTokens = 10,
        CacheWriteTokens = 5,
        Cost = cost,
        LatencyMs = 12.5,
        TimeToFirstTokenMs = error is null ? 3.25 : null,
        OutputTokensPerSecond = error is null ? 80 : null,
        Estimated = estimated,
    };

    [Fact]
    public async Task Migrate_RunTwice_IsIdempotent()
    {
        await Database.MigrateAsync(CancellationToken.None);
        await Keys.InsertAsync(Record("key_a", new string('a', 64)), CancellationToken.None);
        await Database.MigrateAsync(CancellationToken.None);
        Assert.Single(await Keys.LoadAllAsync(CancellationToken.None));
        Assert.True(await Database.PingAsync(CancellationToken.None));
    }

    [Fact]
    public async Task InsertLoad_RoundTripsEveryField()
    {
        var record = Record("key_a", new string('a', 64));
        await Keys.InsertAsync(record, CancellationToken.None);

        var loaded = Assert.Single(await Keys.LoadAllAsync(CancellationToken.None));
        Assert.Equal(record with { AllowedModels = loaded.AllowedModels, IpAllowlist = loaded.IpAllowlist, Metadata = loaded.Metadata }, loaded);
        Assert.Equal(record.AllowedModels, loaded.AllowedModels);
        Assert.Equal(record.IpAllowlist, loaded.IpAllowlist);
        Assert.Equal("ops@example.com", loaded.Metadata["owner"]);
    }

    [Fact]
    public async Task Get_ExistingAndMissing_RecordOrNull()
    {
        var record = Record("key_a", new string('a', 64)) with { Team = null, ExpiresAt = null, Rpm = null, CreditBalance = null, Metadata = new Dictionary<string, string>() };
        await Keys.InsertAsync(record, CancellationToken.None);

        var loaded = await Keys.GetAsync("key_a", CancellationToken.None);
        Assert.NotNull(loaded);
        Assert.Equal(record with { AllowedModels = loaded.AllowedModels, IpAllowlist = loaded.IpAllowlist, Metadata = loaded.Metadata }, loaded);
        Assert.Empty(loaded.Metadata);
        Assert.Null(await Keys.GetAsync("key_missing", CancellationToken.None));
    }

    [Fact]
    public async Task Insert_SameHashTwice_Refused()
    {
        await Keys.InsertAsync(Record("key_a", new string('a', 64)), CancellationToken.None);
        await Assert.ThrowsAnyAsync<DbException>(() => Keys.InsertAsync(Record("key_b", new string('a', 64)), CancellationToken.None));
    }

    [Fact]
    public async Task Update_ChangesSettings_KeepsHashCreationAndBalance()
    {
        var record = Record("key_a", new string('a', 64));
        await Keys.InsertAsync(record, CancellationToken.None);
        var revoked = new DateTimeOffset(2026, 11, 23, 8, 30, 0, TimeSpan.FromHours(2));

        await Keys.UpdateAsync(record with { Name = "renamed", Rpm = null, Enabled = false, RevokedAt = revoked, Hash = new string('b', 64), CreatedAt = Noon, CreditBalance = 99m, AllowedModels = ["x"] }, CancellationToken.None);

        var loaded = (await Keys.GetAsync("key_a", CancellationToken.None))!;
        Assert.Equal("renamed", loaded.Name);
        Assert.Null(loaded.Rpm);
        Assert.False(loaded.Enabled);
        Assert.Equal(revoked, loaded.RevokedAt);
        Assert.Equal(record.Hash, loaded.Hash);
        Assert.Equal(record.CreatedAt, loaded.CreatedAt);
        Assert.Equal(12.345678m, loaded.CreditBalance);
        Assert.Equal(["x"], loaded.AllowedModels);

        await Keys.UpdateAsync(loaded with { CreditBalance = null }, CancellationToken.None);
        Assert.Null((await Keys.GetAsync("key_a", CancellationToken.None))!.CreditBalance);
        await Keys.UpdateAsync(loaded with { CreditBalance = 2.5m }, CancellationToken.None);
        Assert.Equal(2.5m, (await Keys.GetAsync("key_a", CancellationToken.None))!.CreditBalance);
    }

    [Fact]
    public async Task UpdateAndTopUp_MissingKey_KeyNotFound()
    {
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Keys.UpdateAsync(Record("key_x", new string('x', 64)), CancellationToken.None));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Keys.TopUpAsync("key_x", 1m, CancellationToken.None));
    }

    [Fact]
    public async Task ApplyAndTopUp_SpendAndBalanceExact()
    {
        await Keys.InsertAsync(Record("key_a", new string('a', 64)), CancellationToken.None);
        var day = new DateOnly(2026, 11, 22);
        await Spend.ApplyAsync([new SpendDelta("key_a", day, 0.1m, 0.1m), new SpendDelta("key_a", day, 0.2m, 0.2m), new SpendDelta("key_a", day.AddDays(-1), 1m, 0m)], CancellationToken.None);

        var spend = Assert.Single(await Spend.LoadAsync(day, CancellationToken.None));
        Assert.Equal(0.3m, spend.Today);
        Assert.Equal(1.3m, spend.ThisMonth);
        Assert.Equal(1.3m, spend.Total);
        Assert.Equal(12.345678m + 5m - 0.3m, await Keys.TopUpAsync("key_a", 5m, CancellationToken.None));
        Assert.Equal(17.045678m, Assert.Single(await Keys.LoadAllAsync(CancellationToken.None)).CreditBalance);
    }

    [Fact]
    public async Task Apply_ManyBatches_NanoDollarsExactAndMonthRollsOver()
    {
        await Keys.InsertAsync(Record("key_a", new string('a', 64)) with { CreditBalance = null }, CancellationToken.None);
        await Keys.InsertAsync(Record("key_b", new string('b', 64)) with { CreditBalance = 1m }, CancellationToken.None);
        var day = new DateOnly(2026, 12, 1);
        for (var i = 0; i < 20; i++)
        {
            await Spend.ApplyAsync([new SpendDelta("key_a", day, 0.000000001m, 0m), new SpendDelta("key_b", day, 0.000123457m, 0.000123457m), new SpendDelta("key_b", day.AddDays(-1), 0.1m, 0.1m)], CancellationToken.None);
        }

        var spend = (await Spend.LoadAsync(day, CancellationToken.None)).ToDictionary(s => s.KeyId);
        Assert.Equal(0.00000002m, spend["key_a"].Today);
        Assert.Equal(20 * 0.000123457m, spend["key_b"].ThisMonth);
        Assert.Equal((20 * 0.000123457m) + 2m, spend["key_b"].Total);
        Assert.Null((await Keys.GetAsync("key_a", CancellationToken.None))!.CreditBalance);
        Assert.Equal(1m - (20 * 0.000123457m) - 2m, (await Keys.GetAsync("key_b", CancellationToken.None))!.CreditBalance);
    }

    [Fact]
    public async Task Write_ReplayedAndDuplicatedRecords_StoredAndRolledUpOnce()
    {
        var first = Enumerable.Range(0, 10).Select(i => Use($"req-{i}", Noon.AddMinutes(i))).ToList();
        Assert.Equal(10, await Usage.WriteAsync(first, CancellationToken.None));

        // A replay of half of them plus five new ones, one of which appears twice in the batch.
        var replay = first.Take(5).Concat(Enumerable.Range(10, 5).Select(i => Use($"req-{i}", Noon.AddMinutes(i)))).Append(Use("req-12", Noon.AddMinutes(12))).ToList();
        Assert.Equal(5, await Usage.WriteAsync(replay, CancellationToken.None));
        Assert.Equal(0, await Usage.WriteAsync([], CancellationToken.None));

        var byDay = Assert.Single(await Usage.QueryAsync(new UsageQuery(Noon.AddHours(-12), Noon.AddHours(12), UsageGrouping.Day), CancellationToken.None));
        Assert.Equal("2026-11-22", byDay.Group);
        Assert.Equal(15, byDay.Requests);
        Assert.Equal(1500, byDay.PromptTokens);
        Assert.Equal(15 * 0.000001234m, byDay.Cost);
        var byHour = Assert.Single(await Usage.QueryAsync(new UsageQuery(Noon, Noon.AddHours(1), UsageGrouping.Hour), CancellationToken.None));
        Assert.Equal(15, byHour.Requests);
    }

    [Fact]
    public async Task Query_EveryGrouping_SameRowsAndSums()
    {
        var day2 = Noon.AddDays(1);
        await Usage.WriteAsync(
        [
            Use("r1", Noon, "key_a", "gpt-x", "openai", 0.000001m),
            Use("r2", Noon.AddMinutes(70), "key_a", "claude", "anthropic", 0.000002m, error: "server_error"),
            Use("r3", Noon.AddMinutes(5), "key_b", "gpt-x", "openai", 0.000004m, estimated: true),
            Use("r4", day2, "key_b", "gpt-x", "azure", 0.000008m),
            Use("r5", day2.AddMinutes(1), "master", "Gpt-Upper", "openai", 0.000016m),
        ], CancellationToken.None);
        var all = (Noon.AddHours(-12), day2.AddHours(1));

        var byKey = await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Key), CancellationToken.None);
        Assert.Equal(["key_a", "key_b", "master"], byKey.Select(r => r.Group));
        Assert.Equal(0.000003m, byKey[0].Cost);
        Assert.Equal(1, byKey[0].Errors);
        Assert.Equal(1, byKey[1].Estimated);
        Assert.Equal((100L, 20L, 50L), byKey[0].ByModel["claude"]);
        Assert.Equal(["claude", "gpt-x"], byKey[0].ByModel.Keys.Order(StringComparer.Ordinal));

        var byTeam = await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Team), CancellationToken.None);
        Assert.Equal(["", "team-a", "team-b"], byTeam.Select(r => r.Group));

        var byModel = await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Model), CancellationToken.None);
        Assert.Equal(["Gpt-Upper", "claude", "gpt-x"], byModel.Select(r => r.Group));
        Assert.Equal(3, byModel[2].Requests);

        var byProvider = await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Provider), CancellationToken.None);
        Assert.Equal(["anthropic", "azure", "openai"], byProvider.Select(r => r.Group));

        var byDay = await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Day), CancellationToken.None);
        Assert.Equal(["2026-11-22", "2026-11-23"], byDay.Select(r => r.Group));
        Assert.Equal(0.000007m, byDay[0].Cost);
        Assert.Equal(30, byDay[0].ReasoningTokens);

        var byHour = await Usage.QueryAsync(new UsageQuery(Noon, Noon.AddHours(3), UsageGrouping.Hour) { KeyId = "key_a" }, CancellationToken.None);
        Assert.Equal(["2026-11-22T12:00:00Z", "2026-11-22T13:00:00Z"], byHour.Select(r => r.Group));
        Assert.Equal(1, byHour[1].Errors);
        Assert.Equal(5, byHour[1].CacheWriteTokens);

        var oneKey = Assert.Single(await Usage.QueryAsync(new UsageQuery(all.Item1, all.Item2, UsageGrouping.Key) { KeyId = "key_b" }, CancellationToken.None));
        Assert.Equal(2, oneKey.Requests);
    }

    [Theory]
    [InlineData(UsageGrouping.Key)]
    [InlineData(UsageGrouping.Day)]
    [InlineData(UsageGrouping.Model)]
    public async Task Query_RangeStartingAndEndingInsideDays_CountsOnlyThatPart(UsageGrouping grouping)
    {
        // Records on both sides of each end of [noon, next day 01:00): only the two inside count, by every grouping.
        var day2 = Noon.AddDays(1);
        await Usage.WriteAsync(
        [
            Use("before", Noon.AddHours(-1), "key_a", "gpt-x", "openai", 0.000001m),
            Use("first", Noon.AddMinutes(5), "key_a", "gpt-x", "openai", 0.000002m),
            Use("second", day2.AddMinutes(-690), "key_a", "gpt-x", "openai", 0.000004m),
            Use("last", day2.AddMinutes(-660), "key_a", "gpt-x", "openai", 0.000008m),
            Use("after", day2.AddHours(2), "key_a", "gpt-x", "openai", 0.000016m),
        ], CancellationToken.None);

        var rows = await Usage.QueryAsync(new UsageQuery(Noon, day2.AddHours(-10.5), grouping), CancellationToken.None);

        Assert.Equal(3, rows.Sum(r => r.Requests));
        Assert.Equal(0.000014m, rows.Sum(r => r.Cost));
    }

    [Fact]
    public async Task Purge_OldRecords_DeletedRollupsKept()
    {
        await Usage.WriteAsync([Use("old", Noon.AddDays(-40)), Use("new", Noon)], CancellationToken.None);

        Assert.Equal(1, await Usage.PurgeAsync(Noon.AddDays(-30), CancellationToken.None));
        Assert.Equal(0, await Usage.PurgeAsync(Noon.AddDays(-30), CancellationToken.None));

        Assert.Empty(await Usage.QueryAsync(new UsageQuery(Noon.AddDays(-41), Noon.AddDays(-39), UsageGrouping.Hour), CancellationToken.None));
        Assert.Single(await Usage.QueryAsync(new UsageQuery(Noon.AddDays(-41), Noon.AddDays(-39), UsageGrouping.Day), CancellationToken.None));
        Assert.Single(await Usage.QueryAsync(new UsageQuery(Noon, Noon.AddHours(1), UsageGrouping.Hour), CancellationToken.None));
    }
}
