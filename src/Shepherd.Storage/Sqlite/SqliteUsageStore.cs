namespace Shepherd.Storage.Sqlite;

using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using Shepherd.Accounting;
using SQLitePCL;

/// <summary>Usage records with their hourly and daily rollups in the embedded database.</summary>
/// <remarks>
/// Money is stored as integer nano-dollars, so sums are exact. Raw records are written one block per batch (the
/// batch's records as a JSON array of arrays, see migration 0005), not one row each: a row with its indexes cost the
/// writer 3.7–4.6 µs per request, a record in a block about 1.5 µs in all. Reports read raw records only for the
/// minutes at either end of a range that does not fall on whole hours; whole hours and days come from the rollups. A record is claimed once by
/// its record id (<c>usage_record_ids</c>) and rolled up in the same transaction, so raw records and rollups always
/// agree and a replay changes nothing.
/// </remarks>
public sealed class SqliteUsageStore(SqliteDatabase database, TimeSpan? busyTimeout = null) : IUsageStore
{
    // A usage write must fail fast when the database is locked, so the recorder can spill instead of stalling.
    private readonly int _busyMs = (int)(busyTimeout ?? TimeSpan.FromSeconds(2)).TotalMilliseconds;

    // The last batch's block writer, reused by the next (one writer at a time in practice; a second makes its own).
    private UsageBlockWriter? _spareBlock;

    private const long HourMs = 3_600_000;
    private const long DayMs = 24 * HourMs;

    private const string BlockSql = "INSERT INTO usage_blocks (ts_min, ts_max, records, data) VALUES (?1, ?2, ?3, ?4)";

    private const string RollupValues = """
        (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
        ON CONFLICT DO UPDATE SET
          requests = requests + excluded.requests, errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
          cached_tokens = cached_tokens + excluded.cached_tokens, completion_tokens = completion_tokens + excluded.completion_tokens,
          reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
          cost_nanos = cost_nanos + excluded.cost_nanos, estimated = estimated + excluded.estimated
        """;

    private const string HourlySql = """
        INSERT INTO usage_hourly (hour, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
          completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
        VALUES
        """ + RollupValues;

    private const string DailySql = """
        INSERT INTO usage_daily (day, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
          completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
        VALUES
        """ + RollupValues;

    /// <remarks>
    /// The hot loop talks to SQLite directly (prepared statements, parameters bound by position, no boxing): through
    /// ADO.NET every value is boxed and every parameter looked up by name on each execution. Per record: its id
    /// claimed (64 to a statement), its JSON array appended to the block, its sums added to its hour's rollup; per
    /// batch: one block row and one upsert per hourly and daily group.
    /// </remarks>
    public async Task<int> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        if (records.Count == 0)
        {
            return 0;
        }

        await using var connection = await OpenForWriteAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(System.Data.IsolationLevel.Serializable, cancellationToken);
        var db = connection.Handle!;
        var block = Interlocked.Exchange(ref _spareBlock, null) ?? new UsageBlockWriter();
        try
        {
            var isNew = ClaimIds(db, records, cancellationToken);
            var hourly = new Dictionary<RollupKey, RollupSums>();
            var times = new long[records.Count];
            var costs = new long[records.Count];
            var inserted = 0;
            for (var i = 0; i < records.Count; i++)
            {
                if (!isNew[i])
                {
                    continue; // already stored (a replay): counted once, rolled up once
                }

                var record = records[i];
                inserted++;
                var ts = times[i] = record.Time.ToUnixTimeMilliseconds();
                var cost = costs[i] = UsageRows.ToNanos(record.Cost);
                var key = new RollupKey(Floor(ts, HourMs), record.KeyId, record.Team ?? string.Empty, record.ServedModel ?? record.RequestedModel ?? string.Empty, record.Provider ?? string.Empty);
                ref var sums = ref CollectionsMarshal.GetValueRefOrAddDefault(hourly, key, out _);
                sums.Add(record, cost);
            }

            if (inserted > 0)
            {
                // One block per hour the batch covers: nearly always one (a batch spans one flush interval); two at an
                // hour's turn; more only for a replay of records spilled long ago.
                using (var insert = Prepare(db, BlockSql))
                {
                    foreach (var hour in hourly.Keys.Select(k => k.Period).Distinct().Order())
                    {
                        WriteBlock(db, insert, block, records, isNew, times, costs, hour);
                    }
                }

                var daily = new Dictionary<RollupKey, RollupSums>();
                using (var rollup = Prepare(db, HourlySql))
                {
                    foreach (var (key, sums) in hourly)
                    {
                        BindRollup(rollup, HourText(key.Period), key, sums);
                        Step(db, rollup);
                        ref var day = ref CollectionsMarshal.GetValueRefOrAddDefault(daily, key with { Period = Floor(key.Period, DayMs) }, out _);
                        day.Add(sums);
                    }
                }

                using (var rollup = Prepare(db, DailySql))
                {
                    foreach (var (key, sums) in daily)
                    {
                        BindRollup(rollup, DayText(key.Period), key, sums);
                        Step(db, rollup);
                    }
                }
            }

            await transaction.CommitAsync(cancellationToken);
            return inserted;
        }
        finally
        {
            _spareBlock = block;
        }
    }

    /// <summary>Writes the new records of one clock hour as one block row.</summary>
    private static void WriteBlock(sqlite3 db, sqlite3_stmt insert, UsageBlockWriter block, IReadOnlyList<UsageRecord> records, bool[] isNew, long[] times, long[] costs, long hour)
    {
        long tsMin = long.MaxValue, tsMax = long.MinValue;
        var count = 0;
        block.Start();
        for (var i = 0; i < records.Count; i++)
        {
            if (!isNew[i] || Floor(times[i], HourMs) != hour)
            {
                continue;
            }

            var record = records[i];
            block.Append(record, record.RecordId ?? record.RequestId, times[i], costs[i]);
            tsMin = Math.Min(tsMin, times[i]);
            tsMax = Math.Max(tsMax, times[i]);
            count++;
        }

        block.Finish();
        raw.sqlite3_bind_int64(insert, 1, tsMin);
        raw.sqlite3_bind_int64(insert, 2, tsMax);
        raw.sqlite3_bind_int64(insert, 3, count);
        raw.sqlite3_bind_text(insert, 4, block.Written);
        Step(db, insert);
    }

    /// <summary>
    /// Claims each record's id in <c>usage_record_ids</c>; true where the record is new. Ids go 64 to a statement
    /// inside a savepoint: when all 64 are new (the normal case) that is all; when one was already there (a replay,
    /// or a duplicate within the batch) the chunk is rolled back and claimed one id at a time to learn which.
    /// </summary>
    private static bool[] ClaimIds(sqlite3 db, IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        const int Chunk = 64;
        var isNew = new bool[records.Count];
        using var savepoint = Prepare(db, "SAVEPOINT usage_claim");
        using var rollback = Prepare(db, "ROLLBACK TO usage_claim");
        using var release = Prepare(db, "RELEASE usage_claim");
        using var one = Prepare(db, ClaimSql(1));
        sqlite3_stmt? full = null;
        try
        {
            for (var start = 0; start < records.Count; start += Chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var count = Math.Min(Chunk, records.Count - start);
                var claim = count == Chunk ? full ??= Prepare(db, ClaimSql(Chunk)) : Prepare(db, ClaimSql(count));
                try
                {
                    Step(db, savepoint);
                    for (var i = 0; i < count; i++)
                    {
                        raw.sqlite3_bind_text(claim, i + 1, IdOf(records[start + i]));
                    }

                    Step(db, claim);
                    if (raw.sqlite3_changes(db) == count)
                    {
                        isNew.AsSpan(start, count).Fill(true);
                    }
                    else
                    {
                        Step(db, rollback);
                        for (var i = 0; i < count; i++)
                        {
                            raw.sqlite3_bind_text(one, 1, IdOf(records[start + i]));
                            Step(db, one);
                            isNew[start + i] = raw.sqlite3_changes(db) == 1;
                        }
                    }

                    Step(db, release);
                }
                finally
                {
                    if (claim != full)
                    {
                        claim.Dispose();
                    }
                }
            }
        }
        finally
        {
            full?.Dispose();
        }

        return isNew;

        static string IdOf(UsageRecord record) => record.RecordId ?? record.RequestId;
    }

    private static string ClaimSql(int ids) =>
        "INSERT OR IGNORE INTO usage_record_ids (record_id) VALUES " + string.Join(", ", Enumerable.Range(1, ids).Select(i => $"(?{i})"));

    private static sqlite3_stmt Prepare(sqlite3 db, string sql)
    {
        var rc = raw.sqlite3_prepare_v2(db, sql, out var statement);
        SqliteException.ThrowExceptionForRC(rc, db);
        return statement;
    }

    private static void Step(sqlite3 db, sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, db);
        }
    }

    private static void BindRollup(sqlite3_stmt s, string period, RollupKey key, RollupSums sums)
    {
        raw.sqlite3_bind_text(s, 1, period);
        raw.sqlite3_bind_text(s, 2, key.KeyId);
        raw.sqlite3_bind_text(s, 3, key.Team);
        raw.sqlite3_bind_text(s, 4, key.Model);
        raw.sqlite3_bind_text(s, 5, key.Provider);
        raw.sqlite3_bind_int64(s, 6, sums.Requests);
        raw.sqlite3_bind_int64(s, 7, sums.Errors);
        raw.sqlite3_bind_int64(s, 8, sums.PromptTokens);
        raw.sqlite3_bind_int64(s, 9, sums.CachedTokens);
        raw.sqlite3_bind_int64(s, 10, sums.CompletionTokens);
        raw.sqlite3_bind_int64(s, 11, sums.ReasoningTokens);
        raw.sqlite3_bind_int64(s, 12, sums.CacheWriteTokens);
        raw.sqlite3_bind_int64(s, 13, sums.CostNanos);
        raw.sqlite3_bind_int64(s, 14, sums.Estimated);
    }

    /// <param name="Period">The start of the hour (hourly) or day (daily), unix milliseconds.</param>
    private readonly record struct RollupKey(long Period, string KeyId, string Team, string Model, string Provider);

    private struct RollupSums
    {
        public long Requests;
        public long Errors;
        public long PromptTokens;
        public long CachedTokens;
        public long CompletionTokens;
        public long ReasoningTokens;
        public long CacheWriteTokens;
        public long CostNanos;
        public long Estimated;

        public void Add(UsageRecord record, long cost)
        {
            Requests++;
            Errors += record.ErrorClass is null ? 0 : 1;
            PromptTokens += record.PromptTokens;
            CachedTokens += record.CachedTokens;
            CompletionTokens += record.CompletionTokens;
            ReasoningTokens += record.ReasoningTokens;
            CacheWriteTokens += record.CacheWriteTokens;
            CostNanos += cost;
            Estimated += record.Estimated ? 1 : 0;
        }

        public void Add(RollupSums other)
        {
            Requests += other.Requests;
            Errors += other.Errors;
            PromptTokens += other.PromptTokens;
            CachedTokens += other.CachedTokens;
            CompletionTokens += other.CompletionTokens;
            ReasoningTokens += other.ReasoningTokens;
            CacheWriteTokens += other.CacheWriteTokens;
            CostNanos += other.CostNanos;
            Estimated += other.Estimated;
        }
    }

    /// <summary>
    /// Deletes raw records older than <paramref name="before"/> and the hourly rollups of the hours wholly before it;
    /// daily rollups stay. Whole blocks go in slices (a large purge never holds the write lock for long); a block
    /// that straddles the cut keeps only its newer records.
    /// </summary>
    public async Task<int> PurgeAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        // Blocks lie within one hour each, so only the cut's hour can hold blocks that straddle it.
        const string Slice = "SELECT id FROM usage_blocks WHERE ts_min < $cut AND ts_max < $cut ORDER BY ts_min LIMIT 200";
        const string Straddling = "FROM usage_blocks b, json_each(b.data) r WHERE b.ts_min < $cut AND b.ts_max >= $cut AND r.value ->> 0 < $cut";
        var cut = before.ToUnixTimeMilliseconds();
        await using var connection = await OpenForWriteAsync(cancellationToken);
        var total = 0;
        while (true)
        {
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            // Every block holds at least one record: none left to count means no block left in the slice.
            var records = await CountAsync(connection, $"SELECT COALESCE(sum(records), 0) FROM usage_blocks WHERE id IN ({Slice})", cut, cancellationToken);
            if (records == 0)
            {
                break;
            }

            await ExecuteAsync(connection, $"""
                DELETE FROM usage_record_ids WHERE record_id IN (SELECT r.value ->> 1 FROM usage_blocks b, json_each(b.data) r WHERE b.id IN ({Slice}));
                DELETE FROM usage_blocks WHERE id IN ({Slice});
                """, cut, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            total += (int)records;
        }

        await using (var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken))
        {
            var straddling = await CountAsync(connection, $"SELECT count(*) {Straddling}", cut, cancellationToken);
            await ExecuteAsync(connection, $"""
                DELETE FROM usage_record_ids WHERE record_id IN (SELECT r.value ->> 1 {Straddling});
                UPDATE usage_blocks SET
                  data = (SELECT json_group_array(json(r.value)) FROM json_each(usage_blocks.data) r WHERE r.value ->> 0 >= $cut),
                  ts_min = (SELECT min(r.value ->> 0) FROM json_each(usage_blocks.data) r WHERE r.value ->> 0 >= $cut),
                  records = (SELECT count(*) FROM json_each(usage_blocks.data) r WHERE r.value ->> 0 >= $cut)
                WHERE ts_min < $cut AND ts_max >= $cut;
                DELETE FROM usage_hourly WHERE hour < $hour;
                """, cut, cancellationToken, HourText(Floor(cut, HourMs)));
            await transaction.CommitAsync(cancellationToken);
            total += (int)straddling;
        }

        return total;
    }

    private static async Task<long> CountAsync(SqliteConnection connection, string sql, long cut, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$cut", cut);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, long cut, CancellationToken cancellationToken, string? hour = null)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$cut", cut);
        if (hour is not null)
        {
            command.Parameters.AddWithValue("$hour", hour);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = ReportCommand(connection, query);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await UsageRows.ReadRowsAsync(reader, cancellationToken);
    }

    /// <summary>SQLite's plan for a report's query (one line per step), so tests can hold the queries to their indexes.</summary>
    internal async Task<IReadOnlyList<string>> ExplainAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = ReportCommand(connection, query);
        command.CommandText = "EXPLAIN QUERY PLAN " + command.CommandText;
        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            plan.Add(reader.GetString(3));
        }

        return plan;
    }

    /// <summary>
    /// The report query, from the coarsest table that covers each part of [From, To): whole UTC days from the daily
    /// rollups (kept for ever), whole hours from the hourly rollups, and only the minutes at either end of a range
    /// that does not fall on whole hours from raw records (both kept for the retention period). A report from 12:34
    /// counts from 12:34, not from the hour or from midnight. Hour groupings never use the daily rollups.
    /// </summary>
    private static SqliteCommand ReportCommand(SqliteConnection connection, UsageQuery query)
    {
        var command = connection.CreateCommand();
        var parts = new List<string>();
        var keyFilter = query.KeyId is null ? string.Empty : " AND key_id = $key";
        var rawGroup = query.GroupBy switch
        {
            UsageGrouping.Key => "key_id",
            UsageGrouping.Team => "COALESCE(team, '')",
            UsageGrouping.Model => "COALESCE(served_model, requested_model, '')",
            UsageGrouping.Provider => "COALESCE(provider, '')",
            UsageGrouping.Day => "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')",
            _ => "strftime('%Y-%m-%dT%H:00:00Z', ts / 1000, 'unixepoch')",
        };
        string RollupGroup(string period) => query.GroupBy switch
        {
            UsageGrouping.Key => "key_id",
            UsageGrouping.Team => "team",
            UsageGrouping.Model => "model",
            UsageGrouping.Provider => "provider",
            UsageGrouping.Day => $"substr({period}, 1, 10)",
            _ => period,
        };
        const string RollupColumns = """
            model AS m, requests, errors, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
              cache_write_tokens, cost_nanos, estimated
            """;

        // Raw records of [from, to) through the usage_records view: per clock hour, from the blocks of that hour (every
        // block lies within one) that overlap the range — found by ts_min, the others skipped before their JSON is read.
        void Raw(long from, long to)
        {
            for (var hour = Floor(from, HourMs); hour < to; hour += HourMs)
            {
                var n = parts.Count;
                parts.Add($"""
                    SELECT {rawGroup} AS g, COALESCE(served_model, requested_model, '') AS m, 1 AS requests, error_class IS NOT NULL AS errors,
                      prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated
                    FROM usage_records
                    WHERE block_ts_min >= $hour{n} AND block_ts_min < $to{n} AND block_ts_max >= $from{n} AND ts >= $from{n} AND ts < $to{n}{keyFilter}
                    """);
                command.Parameters.AddWithValue($"$hour{n}", hour);
                command.Parameters.AddWithValue($"$from{n}", Math.Max(from, hour));
                command.Parameters.AddWithValue($"$to{n}", Math.Min(to, hour + HourMs));
            }
        }

        void Rollup(string table, string period, string from, string to)
        {
            var n = parts.Count;
            parts.Add($"SELECT {RollupGroup(period)} AS g, {RollupColumns} FROM {table} WHERE {period} >= $from{n} AND {period} < $to{n}{keyFilter}");
            command.Parameters.AddWithValue($"$from{n}", from);
            command.Parameters.AddWithValue($"$to{n}", to);
        }

        void HoursAndMinutes(long from, long to)
        {
            var firstWhole = Ceiling(from, HourMs);
            var lastWholeEnd = Floor(to, HourMs);
            if (firstWhole >= lastWholeEnd)
            {
                Raw(from, to);
                return;
            }

            Raw(from, firstWhole);
            Rollup("usage_hourly", "hour", HourText(firstWhole), HourText(lastWholeEnd));
            Raw(lastWholeEnd, to);
        }

        var start = query.From.ToUnixTimeMilliseconds();
        var end = query.To.ToUnixTimeMilliseconds();
        var firstDay = Ceiling(start, DayMs);
        var lastDayEnd = Floor(end, DayMs);
        if (query.GroupBy == UsageGrouping.Hour || firstDay >= lastDayEnd)
        {
            HoursAndMinutes(start, end);
        }
        else
        {
            HoursAndMinutes(start, firstDay);
            Rollup("usage_daily", "day", DayText(firstDay), DayText(lastDayEnd));
            HoursAndMinutes(lastDayEnd, end);
        }

        if (parts.Count == 0)
        {
            // An empty range (From == To): no rows.
            parts.Add("SELECT NULL AS g, NULL AS m, 0 AS requests, 0 AS errors, 0 AS prompt_tokens, 0 AS cached_tokens, 0 AS completion_tokens, 0 AS reasoning_tokens, 0 AS cache_write_tokens, 0 AS cost_nanos, 0 AS estimated WHERE 0");
        }

        command.CommandText = $"""
            SELECT g, m, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens),
              SUM(reasoning_tokens), SUM(cache_write_tokens), SUM(cost_nanos), SUM(estimated)
            FROM ({string.Join("\nUNION ALL\n", parts)})
            GROUP BY g, m ORDER BY g, m
            """;
        if (query.KeyId is not null)
        {
            command.Parameters.AddWithValue("$key", query.KeyId);
        }

        return command;
    }

    /// <summary>A connection whose waits for a locked database are bounded by the busy timeout.</summary>
    private async Task<SqliteConnection> OpenForWriteAsync(CancellationToken cancellationToken)
    {
        var connection = await database.OpenAsync(cancellationToken);

        // Both waits: SQLite's own busy handler, and Microsoft.Data.Sqlite's retry loop around it (which otherwise
        // retries a locked database for the connection's 30 s default, whatever the cancellation token says).
        connection.DefaultTimeout = Math.Max(1, (_busyMs + 999) / 1000);
        await using var busy = connection.CreateCommand();
        busy.CommandText = $"PRAGMA busy_timeout={_busyMs}";
        await busy.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    /// <summary>The start of the hour or day (<paramref name="unit"/>) holding <paramref name="ms"/>, unix milliseconds.</summary>
    private static long Floor(long ms, long unit) => ms - (((ms % unit) + unit) % unit);

    private static long Ceiling(long ms, long unit) => Floor(ms, unit) == ms ? ms : Floor(ms, unit) + unit;

    private static string HourText(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH':00:00Z'", CultureInfo.InvariantCulture);

    private static string DayText(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
