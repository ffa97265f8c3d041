namespace Shepherd.Tests.Storage;

using Microsoft.Data.Sqlite;
using Shepherd.Accounting;
using Shepherd.Storage.Sqlite;

/// <summary>
/// The usage store against a seeded data set whose sums are computed independently (LINQ over the records written):
/// every grouping, ranges that start or end inside a day, a key filter, retention, replays and the query plans.
/// </summary>
public sealed class SqliteUsageStoreTests : IDisposable
{
    private static readonly DateTimeOffset Day1 = new(2026, 11, 20, 0, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-usage-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<SqliteUsageStore> StoreAsync()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "shepherd.db"));
        await database.MigrateAsync(CancellationToken.None);
        return new SqliteUsageStore(database);
    }

    /// <summary>120 records over three days: 3 keys, 2 teams and none, 3 models, 2 providers, errors, estimates, odd costs.</summary>
    private static List<UsageRecord> Seed()
    {
        var keys = new[] { ("key_a", "alpha"), ("key_b", (string?)null), ("key_c", "beta") };
        var models = new[] { ("small", "p1"), ("big", "p2"), ("reasoner", "p1") };
        var records = new List<UsageRecord>();
        for (var i = 0; i < 120; i++)
        {
            var (key, team) = keys[i % 3];
            var (model, provider) = models[i / 3 % 3];
            var prompt = 100 + (i * 37 % 900);
            var completion = 10 + (i * 13 % 300);
            records.Add(new UsageRecord
            {
                // 36 minutes apart: from day 1 00:00 to day 3 23:24.
                Time = Day1.AddMinutes(i * 36),
                RequestId = $"req_{i:D4}",
                KeyId = key,
                Team = team,
                RequestedModel = i % 10 == 0 ? "alias-" + model : model,
                ServedModel = model,
                Provider = provider,
                Deployment = provider + "/" + model,
                Attempts = 1 + (i % 2),
                Status = i % 11 == 0 ? 502 : 200,
                ErrorClass = i % 11 == 0 ? "bad_upstream_response" : null,
                PromptTokens = prompt,
                CachedTokens = prompt / 3,
                CompletionTokens = completion,
                ReasoningTokens = model == "reasoner" ? completion / 2 : 0,
                CacheWriteTokens = i % 4 == 0 ? prompt / 5 : 0,
                Cost = Math.Round((prompt * 0.0000017m) + (completion * 0.0000031m) + (i * 0.000000001m), 9),
                Estimated = i % 7 == 0,
            });
        }

        return records;
    }

    private static string GroupOf(UsageRecord r, UsageGrouping grouping) => grouping switch
    {
        UsageGrouping.Key => r.KeyId,
        UsageGrouping.Team => r.Team ?? string.Empty,
        UsageGrouping.Model => r.ServedModel ?? r.RequestedModel ?? string.Empty,
        UsageGrouping.Provider => r.Provider ?? string.Empty,
        UsageGrouping.Day => r.Time.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        _ => r.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH':00:00Z'", System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The expected report, from the records themselves.</summary>
    private static List<UsageRow> Expected(IEnumerable<UsageRecord> records, UsageGrouping grouping) =>
        records.GroupBy(r => GroupOf(r, grouping))
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new UsageRow(
                g.Key,
                g.Count(),
                g.Count(r => r.ErrorClass is not null),
                g.Sum(r => (long)r.PromptTokens),
                g.Sum(r => (long)r.CachedTokens),
                g.Sum(r => (long)r.CompletionTokens),
                g.Sum(r => (long)r.ReasoningTokens),
                g.Sum(r => (long)r.CacheWriteTokens),
                g.Sum(r => r.Cost),
                g.Count(r => r.Estimated)))
            .ToList();

    private static void AssertRows(IReadOnlyList<UsageRow> expected, IReadOnlyList<UsageRow> actual)
    {
        Assert.Equal(expected.Select(r => r.Group), actual.Select(r => r.Group));
        for (var i = 0; i < expected.Count; i++)
        {
            // Records compare without ByModel (a dictionary compares by reference).
            Assert.Equal(expected[i] with { ByModel = actual[i].ByModel }, actual[i]);
        }
    }

    private async Task<long> CountRawAsync(string table = "usage_records", string? path = null)
    {
        await using var connection = new SqliteConnection($"Data Source={path ?? Path.Combine(_directory, "shepherd.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {table}";
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public static TheoryData<UsageGrouping> Groupings => new() { UsageGrouping.Key, UsageGrouping.Team, UsageGrouping.Model, UsageGrouping.Provider, UsageGrouping.Day, UsageGrouping.Hour };

    [Theory]
    [MemberData(nameof(Groupings))]
    public async Task Query_WholeRange_ExactSumsPerGroup(UsageGrouping grouping)
    {
        var store = await StoreAsync();
        var records = Seed();
        Assert.Equal(120, await store.WriteAsync(records, CancellationToken.None));

        var rows = await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), grouping), CancellationToken.None);

        AssertRows(Expected(records, grouping), rows);
        Assert.Equal(records.Sum(r => r.Cost), rows.Sum(r => r.Cost));
    }

    [Theory]
    [MemberData(nameof(Groupings))]
    public async Task Query_RangeStartingAndEndingInsideDays_CountsOnlyThatPart(UsageGrouping grouping)
    {
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records, CancellationToken.None);
        var from = Day1.AddHours(13).AddMinutes(7);
        var to = Day1.AddDays(2).AddHours(5);

        var rows = await store.QueryAsync(new UsageQuery(from, to, grouping), CancellationToken.None);

        AssertRows(Expected(records.Where(r => r.Time >= from && r.Time < to), grouping), rows);
    }

    [Theory]
    [InlineData(UsageGrouping.Model)]
    [InlineData(UsageGrouping.Day)]
    [InlineData(UsageGrouping.Hour)]
    public async Task Query_KeyFilter_OnlyThatKey(UsageGrouping grouping)
    {
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records, CancellationToken.None);

        var rows = await store.QueryAsync(new UsageQuery(Day1.AddHours(6), Day1.AddDays(3), grouping) { KeyId = "key_b" }, CancellationToken.None);

        AssertRows(Expected(records.Where(r => r.KeyId == "key_b" && r.Time >= Day1.AddHours(6)), grouping), rows);
    }

    [Theory]
    [MemberData(nameof(Groupings))]
    public async Task Query_RangeEndsInsideHours_CountsOnlyThoseMinutes(UsageGrouping grouping)
    {
        // Minutes from raw records at both ends, whole hours from the hourly rollups, a whole day from the daily ones.
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records.Take(50).ToList(), CancellationToken.None);
        await store.WriteAsync(records.Skip(50).ToList(), CancellationToken.None);
        var from = Day1.AddHours(13).AddMinutes(20);
        var to = Day1.AddDays(2).AddHours(5).AddMinutes(40);

        foreach (var key in new[] { null, "key_c" })
        {
            var rows = await store.QueryAsync(new UsageQuery(from, to, grouping) { KeyId = key }, CancellationToken.None);

            AssertRows(Expected(records.Where(r => r.Time >= from && r.Time < to && (key is null || r.KeyId == key)), grouping), rows);
        }
    }

    [Fact]
    public async Task Query_RangeInsideOneHour_OnlyRawRecordsOfThoseMinutes()
    {
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records, CancellationToken.None);
        var from = Day1.AddHours(6).AddMinutes(1);

        var rows = await store.QueryAsync(new UsageQuery(from, from.AddMinutes(40), UsageGrouping.Model), CancellationToken.None);

        AssertRows(Expected(records.Where(r => r.Time >= from && r.Time < from.AddMinutes(40)), UsageGrouping.Model), rows);
        Assert.Single(rows);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(13, 13)]
    [InlineData(14, 13)]
    public async Task Query_EmptyOrInvertedRange_NoRows(int fromHour, int toHour)
    {
        var store = await StoreAsync();
        await store.WriteAsync(Seed(), CancellationToken.None);

        Assert.Empty(await store.QueryAsync(new UsageQuery(Day1.AddHours(fromHour), Day1.AddHours(toHour), UsageGrouping.Key), CancellationToken.None));
    }

    [Fact]
    public async Task Write_BatchAcrossHours_OneBlockPerHourAndEveryRecordFound()
    {
        // A replay of records spilled over a day: one batch, 40 hours; reports that read raw minutes find them all.
        var store = await StoreAsync();
        var records = Seed().Take(67).ToList();
        await store.WriteAsync(records, CancellationToken.None);

        await using var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "shepherd.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*), sum(ts_min / 3600000 = ts_max / 3600000), sum(records) FROM usage_blocks";
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal((long)records.Select(r => r.Time.UtcDateTime.ToString("yyyyMMddHH", System.Globalization.CultureInfo.InvariantCulture)).Distinct().Count(), reader.GetInt64(0));
        Assert.Equal(reader.GetInt64(0), reader.GetInt64(1));
        Assert.Equal(records.Count, reader.GetInt64(2));

        var from = Day1.AddMinutes(20);
        var to = Day1.AddHours(39).AddMinutes(50);
        AssertRows(Expected(records.Where(r => r.Time >= from && r.Time < to), UsageGrouping.Hour), await store.QueryAsync(new UsageQuery(from, to, UsageGrouping.Hour), CancellationToken.None));
    }

    [Fact]
    public async Task Query_HandPickedRecords_HandComputedSums()
    {
        var store = await StoreAsync();
        await store.WriteAsync(
        [
            new UsageRecord { Time = Day1.AddHours(1), RequestId = "a", KeyId = "k", ServedModel = "m", PromptTokens = 1000, CachedTokens = 400, CompletionTokens = 50, ReasoningTokens = 20, Cost = 0.000000001m },
            new UsageRecord { Time = Day1.AddHours(2), RequestId = "b", KeyId = "k", ServedModel = "m", PromptTokens = 10, CompletionTokens = 5, Cost = 0.123456789m, Estimated = true },
            new UsageRecord { Time = Day1.AddHours(3), RequestId = "c", KeyId = "k", ServedModel = "m", ErrorClass = "rate_limit_exceeded", Status = 429 },
        ],
            CancellationToken.None);

        var row = Assert.Single(await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(1), UsageGrouping.Model), CancellationToken.None));

        Assert.Equal(new UsageRow("m", 3, 1, 1010, 400, 55, 20, 0, 0.12345679m, 1) { ByModel = row.ByModel }, row);
    }

    [Fact]
    public async Task Write_ReplayOfStoredRecords_ChangesNothing()
    {
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records, CancellationToken.None);
        var before = await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Day), CancellationToken.None);

        Assert.Equal(0, await store.WriteAsync(records, CancellationToken.None));
        Assert.Equal(0, await store.WriteAsync(records.Take(10).ToList(), CancellationToken.None));

        AssertRows(before, await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Day), CancellationToken.None));
        AssertRows(Expected(records, UsageGrouping.Hour), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Hour), CancellationToken.None));
    }

    [Fact]
    public async Task Write_ValuesRepeatingOrChangingBetweenRecords_EveryColumnStoredAsGiven()
    {
        // Consecutive records repeat some values and change others, nullable ones turning null and back: the writer
        // skips binding what repeats, so every column of every row is read back and compared.
        var database = new SqliteDatabase(Path.Combine(_directory, "columns.db"));
        await database.MigrateAsync(CancellationToken.None);
        var store = new SqliteUsageStore(database);
        var records = Enumerable.Range(0, 40).Select(i => new UsageRecord
        {
            Time = Day1.AddSeconds(i / 3),
            RequestId = $"req_{i / 2}",
            RecordId = $"rec_{i}",
            KeyId = i % 4 < 2 ? "key_a" : "key_b",
            Team = i % 5 == 0 ? null : (i % 3 == 0 ? "alpha" : "beta"),
            RequestedModel = i % 7 == 0 ? null : "gpt-4.1",
            ServedModel = i % 2 == 0 ? "gpt-4.1" : "gpt-4.1-mini",
            Provider = i % 6 == 0 ? null : "openai",
            Deployment = i % 6 == 0 ? null : $"openai/{(i % 2 == 0 ? "gpt-4.1" : "gpt-4.1-mini")}",
            Attempts = 1 + (i % 3 == 2 ? 1 : 0),
            FallbackUsed = i % 9 == 0,
            Streamed = i % 2 == 1,
            Status = i % 8 == 0 ? 429 : 200,
            ErrorClass = i % 8 == 0 ? "rate_limit_exceeded" : null,
            PromptTokens = 100 + (i % 4),
            CachedTokens = i % 5 == 0 ? 0 : 64,
            CompletionTokens = 50,
            ReasoningTokens = i % 3,
            CacheWriteTokens = i % 10 == 0 ? 7 : 0,
            Cost = i % 4 == 0 ? 0m : 0.000001m * (i + 1),
            LatencyMs = i % 2 == 0 ? 812.5 : 812.5 + i,
            TimeToFirstTokenMs = i % 4 == 1 ? null : 120.25,
            OutputTokensPerSecond = i % 4 == 3 ? null : (i % 2 == 0 ? 61.5 : -0.0),
            Estimated = i % 11 == 0,
        }).ToList();

        Assert.Equal(records.Count, await store.WriteAsync(records, CancellationToken.None));

        await using var connection = await database.OpenAsync(CancellationToken.None);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment, attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated FROM usage_records ORDER BY id";
        await using var reader = await command.ExecuteReaderAsync();
        foreach (var r in records)
        {
            Assert.True(await reader.ReadAsync());
            object?[] expected =
            [
                r.Time.ToUnixTimeMilliseconds(), r.RecordId, r.RequestId, r.KeyId, r.Team, r.RequestedModel, r.ServedModel, r.Provider, r.Deployment,
                (long)r.Attempts, r.FallbackUsed ? 1L : 0L, r.Streamed ? 1L : 0L, (long)r.Status, r.ErrorClass, (long)r.PromptTokens, (long)r.CachedTokens,
                (long)r.CompletionTokens, (long)r.ReasoningTokens, (long)r.CacheWriteTokens, Shepherd.Storage.UsageRows.ToNanos(r.Cost), r.LatencyMs,
                r.TimeToFirstTokenMs, r.OutputTokensPerSecond, r.Estimated ? 1L : 0L,
            ];
            var actual = Enumerable.Range(0, expected.Length).Select(c => reader.IsDBNull(c) ? null : reader.GetValue(c)).ToArray();
            Assert.Equal(expected, actual);
        }

        Assert.False(await reader.ReadAsync());
    }

    [Fact]
    public async Task Write_BatchMixingStoredAndNewRecords_OnlyTheNewOnesCount()
    {
        // 120 records in chunks of 64 ids: stored ones scattered through both chunks.
        var store = await StoreAsync();
        var records = Seed();
        var stored = records.Where((_, i) => i % 5 == 2).ToList();
        Assert.Equal(stored.Count, await store.WriteAsync(stored, CancellationToken.None));

        Assert.Equal(records.Count - stored.Count, await store.WriteAsync(records, CancellationToken.None));

        AssertRows(Expected(records, UsageGrouping.Key), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Key), CancellationToken.None));
        AssertRows(Expected(records, UsageGrouping.Hour), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Hour), CancellationToken.None));
        Assert.Equal(records.Count, await CountRawAsync());
    }

    [Fact]
    public async Task Write_TextNeedingJsonEscapes_StoredAsGiven()
    {
        var store = await StoreAsync();
        string[] texts = ["quote\"d", "back\\slash", "tab\tnew\nline", "ünïcödé 模型 🐑", "<script>&'", "\u0001control"];
        var records = texts.Select((t, i) => new UsageRecord
        {
            Time = Day1.AddMinutes(i),
            RequestId = "client " + t,
            RecordId = "rec_" + t,
            KeyId = "key " + t,
            Team = t,
            RequestedModel = t,
            ServedModel = t,
            Provider = t,
            Deployment = t + "/" + t,
            ErrorClass = t,
        }).ToList();

        Assert.Equal(texts.Length, await store.WriteAsync(records, CancellationToken.None));

        await using var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "shepherd.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT record_id, request_id, key_id, team, requested_model, served_model, provider, deployment, error_class FROM usage_records ORDER BY id";
        await using var reader = await command.ExecuteReaderAsync();
        foreach (var r in records)
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal(
                new[] { r.RecordId, r.RequestId, r.KeyId, r.Team, r.RequestedModel, r.ServedModel, r.Provider, r.Deployment, r.ErrorClass },
                Enumerable.Range(0, 9).Select(reader.GetString).ToArray());
        }
    }

    [Fact]
    public async Task Write_DuplicatesInsideOneBatch_StoredAndRolledUpOnce()
    {
        var store = await StoreAsync();
        var records = Seed();
        var batch = records.Concat(records.Take(7)).Concat(records.Skip(3).Take(5)).ToList();

        Assert.Equal(records.Count, await store.WriteAsync(batch, CancellationToken.None));

        AssertRows(Expected(records, UsageGrouping.Day), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Day), CancellationToken.None));
        AssertRows(Expected(records, UsageGrouping.Key), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Key), CancellationToken.None));
        AssertRows(Expected(records, UsageGrouping.Hour), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Hour), CancellationToken.None));
    }

    [Fact]
    public async Task Write_SameRequestIdDifferentRecordIds_BothCounted()
    {
        var store = await StoreAsync();
        var first = new UsageRecord { Time = Day1, RequestId = "client-id", RecordId = "rec_1", KeyId = "k", ServedModel = "m", Cost = 1m };

        Assert.Equal(2, await store.WriteAsync([first, first with { RecordId = "rec_2" }], CancellationToken.None));
        Assert.Equal(0, await store.WriteAsync([first], CancellationToken.None));

        var row = Assert.Single(await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(1), UsageGrouping.Key), CancellationToken.None));
        Assert.Equal((2L, 2m), (row.Requests, row.Cost));
    }

    [Fact]
    public async Task Purge_OldRawRecords_DailyRollupsKeepTheirTotals()
    {
        var store = await StoreAsync();
        var records = Seed();
        await store.WriteAsync(records, CancellationToken.None);

        var purged = await store.PurgeAsync(Day1.AddDays(2), CancellationToken.None);

        Assert.Equal(records.Count(r => r.Time < Day1.AddDays(2)), purged);
        foreach (var grouping in new[] { UsageGrouping.Key, UsageGrouping.Team, UsageGrouping.Model, UsageGrouping.Provider, UsageGrouping.Day })
        {
            AssertRows(Expected(records, grouping), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), grouping), CancellationToken.None));
        }

        // Hours come from raw records: only what retention kept.
        AssertRows(
            Expected(records.Where(r => r.Time >= Day1.AddDays(2)), UsageGrouping.Hour),
            await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Hour), CancellationToken.None));
    }

    [Fact]
    public async Task Purge_CutInsideABlock_WholeOlderBlocksGoAndTheStraddlingOneKeepsItsNewerRecords()
    {
        var store = await StoreAsync();
        var records = Seed();
        foreach (var day in records.GroupBy(r => r.Time.UtcDateTime.Date))
        {
            await store.WriteAsync(day.ToList(), CancellationToken.None); // one block per day
        }

        var cut = Day1.AddDays(1).AddHours(12).AddMinutes(10);
        var purged = await store.PurgeAsync(cut, CancellationToken.None);

        var kept = records.Where(r => r.Time >= cut).ToList();
        Assert.Equal(records.Count - kept.Count, purged);
        Assert.Equal(kept.Count, await CountRawAsync());
        var from = Day1.AddDays(1).AddHours(13).AddMinutes(5);
        AssertRows(
            Expected(kept.Where(r => r.Time >= from), UsageGrouping.Hour),
            await store.QueryAsync(new UsageQuery(from, Day1.AddDays(3), UsageGrouping.Hour), CancellationToken.None));
        AssertRows(Expected(records, UsageGrouping.Day), await store.QueryAsync(new UsageQuery(Day1, Day1.AddDays(3), UsageGrouping.Day), CancellationToken.None));

        // The purged records' ids went with them; the kept ones still deduplicate.
        Assert.Equal(kept.Count, await CountRawAsync("usage_record_ids"));
        Assert.Equal(0, await store.WriteAsync(kept, CancellationToken.None));
        Assert.Equal(0, await store.PurgeAsync(cut, CancellationToken.None));
    }

    [Fact]
    public async Task Write_CostsStoredAsIntegerNanoDollars()
    {
        var store = await StoreAsync();
        await store.WriteAsync([new UsageRecord { Time = Day1, RequestId = "a", KeyId = "k", Cost = 0.000000123m }], CancellationToken.None);

        await using var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "shepherd.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT typeof(r.cost_nanos), r.cost_nanos, typeof(d.cost_nanos), d.cost_nanos FROM usage_records r, usage_daily d";
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(("integer", 123L, "integer", 123L), (reader.GetString(0), reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3)));
    }

    [Theory]
    [MemberData(nameof(Groupings))]
    public async Task Explain_ReportQueries_UseTheRollupsAndTheBlocksTimeIndex(UsageGrouping grouping)
    {
        var store = await StoreAsync();
        await store.WriteAsync(Seed(), CancellationToken.None);

        foreach (var key in new[] { null, "key_a" })
        {
            // Minutes at both ends (raw blocks), hours (hourly rollups) and a whole day (daily rollups) in between.
            var query = new UsageQuery(Day1.AddHours(13).AddMinutes(7), Day1.AddDays(2).AddHours(5).AddMinutes(30), grouping) { KeyId = key };
            var plan = await store.ExplainAsync(query, CancellationToken.None);
            var text = string.Join("\n", plan);

            // No table read whole: only json_each over the blocks found (a virtual table) and the union's own rows.
            Assert.DoesNotContain(plan, step => System.Text.RegularExpressions.Regex.IsMatch(step, @"^SCAN (usage_\w+|b)( |$)"));
            Assert.Contains(plan, step => step.StartsWith("SEARCH b USING INDEX usage_blocks_ts (ts_min>? AND ts_min<?)", StringComparison.Ordinal));
            Assert.Contains(plan, step => step.StartsWith("SEARCH usage_hourly USING", StringComparison.Ordinal) && step.Contains("hour>", StringComparison.Ordinal));
            if (grouping == UsageGrouping.Hour)
            {
                Assert.DoesNotContain("usage_daily", text, StringComparison.Ordinal);
            }
            else
            {
                Assert.Contains(plan, step => step.StartsWith("SEARCH usage_daily USING", StringComparison.Ordinal) && step.Contains("day>", StringComparison.Ordinal));
            }
        }
    }

    [Fact]
    public async Task Migrate_RecordsFromBeforeRecordIds_KeepTheirRequestIdAsRecordId()
    {
        var path = Path.Combine(_directory, "old.db");
        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            await connection.OpenAsync();
            foreach (var (version, name, sql) in SqliteDatabase.Migrations().Where(m => m.Version <= 2))
            {
                await using var command = connection.CreateCommand();
                command.CommandText = sql + "; CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);" +
                    $"INSERT INTO schema_migrations VALUES ({version}, '{name}', 'then');";
                await command.ExecuteNonQueryAsync();
            }

            await using var insert = connection.CreateCommand();
            insert.CommandText = """
                INSERT INTO usage_records (ts, request_id, key_id, attempts, fallback, streamed, status, prompt_tokens, cached_tokens,
                  completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, latency_ms, estimated)
                VALUES (1, 'req_old', 'k', 1, 0, 0, 200, 1, 0, 1, 0, 0, 5, 1.0, 0)
                """;
            await insert.ExecuteNonQueryAsync();
        }

        var database = new SqliteDatabase(path);
        await database.MigrateAsync(CancellationToken.None);
        var store = new SqliteUsageStore(database);

        // Readable as before (through the view over the blocks), and in the hourly rollups.
        Assert.Equal(1, await CountRawAsync("usage_records WHERE record_id = 'req_old' AND request_id = 'req_old' AND latency_ms = 1.0", path));
        var hour = Assert.Single(await store.QueryAsync(new UsageQuery(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddHours(1), UsageGrouping.Hour), CancellationToken.None));
        Assert.Equal((1L, 1L, 1L), (hour.Requests, hour.PromptTokens, hour.CompletionTokens));

        // The old record is recognised on replay by its request id, now its record id.
        Assert.Equal(0, await store.WriteAsync([new UsageRecord { Time = DateTimeOffset.FromUnixTimeMilliseconds(1), RequestId = "req_old", KeyId = "k" }], CancellationToken.None));
        Assert.Equal(1, await store.WriteAsync([new UsageRecord { Time = DateTimeOffset.FromUnixTimeMilliseconds(2), RequestId = "req_old", RecordId = "rec_new", KeyId = "k" }], CancellationToken.None));
    }
}
