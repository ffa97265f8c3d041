namespace Shepherd.Storage.Sqlite;

using System.Globalization;
using Microsoft.Data.Sqlite;
using Shepherd.Accounting;
using SQLitePCL;

/// <summary>Usage records and daily rollups in the embedded database.</summary>
/// <remarks>Money is stored as integer nano-dollars, so sums are exact. A record is inserted once (by its record id)
/// and rolled up in the same transaction, so raw records and rollups always agree and a replay changes nothing.</remarks>
public sealed class SqliteUsageStore(SqliteDatabase database, TimeSpan? busyTimeout = null) : IUsageStore
{
    // A usage write must fail fast when the database is locked, so the recorder can spill instead of stalling.
    private readonly int _busyMs = (int)(busyTimeout ?? TimeSpan.FromSeconds(2)).TotalMilliseconds;

    private const string InsertSql = """
        INSERT OR IGNORE INTO usage_records (ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment,
          attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
          cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)
        """;

    private const string RollupSql = """
        INSERT INTO usage_daily (day, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
          completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
        ON CONFLICT (day, key_id, team, model, provider) DO UPDATE SET
          requests = requests + excluded.requests, errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
          cached_tokens = cached_tokens + excluded.cached_tokens, completion_tokens = completion_tokens + excluded.completion_tokens,
          reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
          cost_nanos = cost_nanos + excluded.cost_nanos, estimated = estimated + excluded.estimated
        """;

    /// <remarks>
    /// The hot loop talks to SQLite directly (one prepared statement, parameters bound by position, no boxing):
    /// through ADO.NET every value is boxed and every parameter looked up by name on each execution, which cost
    /// more than the inserts themselves. Rollups are summed per batch in memory and upserted once per group, from
    /// exactly the records SQLite took as new.
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
        var rollups = new Dictionary<RollupKey, RollupSums>();
        var inserted = 0;
        using (var insert = Prepare(db, InsertSql))
        {
            var bindings = new Bindings(insert, 24);
            foreach (var record in records)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var cost = UsageRows.ToNanos(record.Cost);
                BindInsert(bindings, record, cost);
                Step(db, insert);
                if (raw.sqlite3_changes(db) == 0)
                {
                    continue; // already stored (a replay): counted once, rolled up once
                }

                inserted++;
                var key = new RollupKey(Day(record.Time), record.KeyId, record.Team ?? string.Empty, record.ServedModel ?? record.RequestedModel ?? string.Empty, record.Provider ?? string.Empty);
                ref var sums = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(rollups, key, out _);
                sums.Add(record, cost);
            }
        }

        using (var rollup = Prepare(db, RollupSql))
        {
            foreach (var (key, sums) in rollups)
            {
                BindRollup(rollup, key, sums);
                Step(db, rollup);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return inserted;
    }

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

    private static void BindInsert(Bindings b, UsageRecord record, long cost)
    {
        b.Integer(1, record.Time.ToUnixTimeMilliseconds());
        b.Text(2, record.RecordId ?? record.RequestId);
        b.Text(3, record.RequestId);
        b.Text(4, record.KeyId);
        b.Text(5, record.Team);
        b.Text(6, record.RequestedModel);
        b.Text(7, record.ServedModel);
        b.Text(8, record.Provider);
        b.Text(9, record.Deployment);
        b.Integer(10, record.Attempts);
        b.Integer(11, record.FallbackUsed ? 1 : 0);
        b.Integer(12, record.Streamed ? 1 : 0);
        b.Integer(13, record.Status);
        b.Text(14, record.ErrorClass);
        b.Integer(15, record.PromptTokens);
        b.Integer(16, record.CachedTokens);
        b.Integer(17, record.CompletionTokens);
        b.Integer(18, record.ReasoningTokens);
        b.Integer(19, record.CacheWriteTokens);
        b.Integer(20, cost);
        b.Real(21, record.LatencyMs);
        b.Real(22, record.TimeToFirstTokenMs);
        b.Real(23, record.OutputTokensPerSecond);
        b.Integer(24, record.Estimated ? 1 : 0);
    }

    private static void BindRollup(sqlite3_stmt s, RollupKey key, RollupSums sums)
    {
        raw.sqlite3_bind_text(s, 1, key.Day);
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

    /// <summary>
    /// Binds by position, skipping values equal to what the parameter already holds: SQLite keeps bindings across
    /// resets, and consecutive records mostly repeat the key, team, model, provider and flags. Each text bind costs a
    /// UTF-8 conversion and a native call; skipping the repeats saves about a quarter of a record's cost.
    /// </summary>
    private sealed class Bindings(sqlite3_stmt statement, int count)
    {
        private const byte IsText = 1, IsInteger = 2, IsReal = 3, IsNull = 4;
        private readonly byte[] _kind = new byte[count + 1];
        private readonly string?[] _text = new string?[count + 1];
        private readonly long[] _bits = new long[count + 1];

        public void Text(int index, string? value)
        {
            if (value is null)
            {
                Null(index);
            }
            else if (_kind[index] != IsText || !string.Equals(_text[index], value, StringComparison.Ordinal))
            {
                raw.sqlite3_bind_text(statement, index, value);
                _kind[index] = IsText;
                _text[index] = value;
            }
        }

        public void Integer(int index, long value)
        {
            if (_kind[index] != IsInteger || _bits[index] != value)
            {
                raw.sqlite3_bind_int64(statement, index, value);
                _kind[index] = IsInteger;
                _bits[index] = value;
            }
        }

        public void Real(int index, double? value)
        {
            if (value is not { } v)
            {
                Null(index);
                return;
            }

            var bits = BitConverter.DoubleToInt64Bits(v);
            if (_kind[index] != IsReal || _bits[index] != bits)
            {
                raw.sqlite3_bind_double(statement, index, v);
                _kind[index] = IsReal;
                _bits[index] = bits;
            }
        }

        private void Null(int index)
        {
            if (_kind[index] != IsNull)
            {
                raw.sqlite3_bind_null(statement, index);
                _kind[index] = IsNull;
                _text[index] = null;
            }
        }
    }

    private readonly record struct RollupKey(string Day, string KeyId, string Team, string Model, string Provider);

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
    }

    public async Task<int> PurgeAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        await using var connection = await OpenForWriteAsync(cancellationToken);
        var total = 0;
        while (true)
        {
            // In slices, so a large purge never holds the write lock for long.
            await using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM usage_records WHERE id IN (SELECT id FROM usage_records WHERE ts < $before LIMIT 10000)";
            delete.Parameters.AddWithValue("$before", before.ToUnixTimeMilliseconds());
            var deleted = await delete.ExecuteNonQueryAsync(cancellationToken);
            total += deleted;
            if (deleted < 10000)
            {
                return total;
            }
        }
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
    /// The report query. Whole UTC days come from the daily rollups (kept for ever); the parts of days at either end of
    /// a range that does not start or end at midnight come from raw records (kept for the retention period), so a
    /// report from 12:00 counts from 12:00, not from midnight. Hours always come from raw records.
    /// </summary>
    private static SqliteCommand ReportCommand(SqliteConnection connection, UsageQuery query)
    {
        var command = connection.CreateCommand();
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
        const string RawColumns = """
            COALESCE(served_model, requested_model, '') AS m, 1 AS requests, error_class IS NOT NULL AS errors, prompt_tokens,
              cached_tokens, completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated
            """;

        string sql;
        if (query.GroupBy == UsageGrouping.Hour)
        {
            sql = $"""
                SELECT {rawGroup} AS g, {RawColumns} FROM usage_records WHERE ts >= $r1 AND ts < $r2{keyFilter}
                """;
            command.Parameters.AddWithValue("$r1", query.From.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$r2", query.To.ToUnixTimeMilliseconds());
        }
        else
        {
            var rollupGroup = query.GroupBy switch
            {
                UsageGrouping.Key => "key_id",
                UsageGrouping.Team => "team",
                UsageGrouping.Model => "model",
                UsageGrouping.Provider => "provider",
                _ => "day",
            };

            // [From, firstWhole) raw, [firstWhole, lastWholeEnd) rollups, [lastWholeEnd, To) raw.
            var from = query.From.ToUniversalTime();
            var to = query.To.ToUniversalTime();
            var fromMidnight = Midnight(from);
            var firstWhole = fromMidnight == from ? from : fromMidnight.AddDays(1);
            var lastWholeEnd = Midnight(to);
            if (firstWhole >= lastWholeEnd)
            {
                firstWhole = lastWholeEnd = to;
            }

            sql = $"""
                SELECT {rollupGroup} AS g, model AS m, requests, errors, prompt_tokens, cached_tokens, completion_tokens,
                  reasoning_tokens, cache_write_tokens, cost_nanos, estimated
                FROM usage_daily WHERE day >= $d1 AND day < $d2{keyFilter}
                UNION ALL
                SELECT {rawGroup}, {RawColumns} FROM usage_records WHERE ts >= $r1 AND ts < $r2{keyFilter}
                UNION ALL
                SELECT {rawGroup}, {RawColumns} FROM usage_records WHERE ts >= $r3 AND ts < $r4{keyFilter}
                """;
            command.Parameters.AddWithValue("$d1", Day(firstWhole));
            command.Parameters.AddWithValue("$d2", Day(lastWholeEnd));
            command.Parameters.AddWithValue("$r1", from.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$r2", firstWhole.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$r3", lastWholeEnd.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$r4", to.ToUnixTimeMilliseconds());
        }

        command.CommandText = $"""
            SELECT g, m, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens),
              SUM(reasoning_tokens), SUM(cache_write_tokens), SUM(cost_nanos), SUM(estimated)
            FROM ({sql})
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

    private static DateTimeOffset Midnight(DateTimeOffset time) => new(time.UtcDateTime.Date, TimeSpan.Zero);

    private static string Day(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
