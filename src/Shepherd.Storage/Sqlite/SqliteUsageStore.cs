namespace Shepherd.Storage.Sqlite;

using System.Globalization;
using Microsoft.Data.Sqlite;
using Shepherd.Accounting;

/// <summary>Usage records and daily rollups in the embedded database.</summary>
/// <remarks>Money is stored as integer nano-dollars, so sums are exact. A record is inserted once (by its record id)
/// and rolled up in the same transaction, so raw records and rollups always agree and a replay changes nothing.</remarks>
public sealed class SqliteUsageStore(SqliteDatabase database, TimeSpan? busyTimeout = null) : IUsageStore
{
    private const decimal NanosPerDollar = 1_000_000_000m;

    // A usage write must fail fast when the database is locked, so the recorder can spill instead of stalling.
    private readonly int _busyMs = (int)(busyTimeout ?? TimeSpan.FromSeconds(2)).TotalMilliseconds;

    public async Task<int> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        if (records.Count == 0)
        {
            return 0;
        }

        await using var connection = await OpenForWriteAsync(cancellationToken);

        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(System.Data.IsolationLevel.Serializable, cancellationToken);
        await using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = """
            INSERT OR IGNORE INTO usage_records (ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment,
              attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
              cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated)
            VALUES ($ts, $record, $rid, $key, $team, $req, $served, $provider, $deployment, $attempts, $fallback, $streamed, $status, $error,
              $prompt, $cached, $completion, $reasoning, $cache_write, $cost, $latency, $ttft, $tps, $estimated)
            """;
        var p = new Dictionary<string, SqliteParameter>();
        foreach (var name in new[] { "$ts", "$record", "$rid", "$key", "$team", "$req", "$served", "$provider", "$deployment", "$attempts", "$fallback", "$streamed", "$status", "$error", "$prompt", "$cached", "$completion", "$reasoning", "$cache_write", "$cost", "$latency", "$ttft", "$tps", "$estimated" })
        {
            p[name] = insert.Parameters.Add(name, SqliteType.Text);
        }

        await using var rollup = connection.CreateCommand();
        rollup.Transaction = transaction;
        rollup.CommandText = """
            INSERT INTO usage_daily (day, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
              completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
            VALUES ($day, $key, $team, $model, $provider, 1, $error, $prompt, $cached, $completion, $reasoning, $cache_write, $cost, $estimated)
            ON CONFLICT (day, key_id, team, model, provider) DO UPDATE SET
              requests = requests + 1, errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
              cached_tokens = cached_tokens + excluded.cached_tokens, completion_tokens = completion_tokens + excluded.completion_tokens,
              reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
              cost_nanos = cost_nanos + excluded.cost_nanos, estimated = estimated + excluded.estimated
            """;
        var r = new Dictionary<string, SqliteParameter>();
        foreach (var name in new[] { "$day", "$key", "$team", "$model", "$provider", "$error", "$prompt", "$cached", "$completion", "$reasoning", "$cache_write", "$cost", "$estimated" })
        {
            r[name] = rollup.Parameters.Add(name, SqliteType.Text);
        }

        var inserted = 0;
        foreach (var record in records)
        {
            var cost = ToNanos(record.Cost);
            p["$ts"].Value = record.Time.ToUnixTimeMilliseconds();
            p["$record"].Value = record.RecordId ?? record.RequestId;
            p["$rid"].Value = record.RequestId;
            p["$key"].Value = record.KeyId;
            p["$team"].Value = (object?)record.Team ?? DBNull.Value;
            p["$req"].Value = (object?)record.RequestedModel ?? DBNull.Value;
            p["$served"].Value = (object?)record.ServedModel ?? DBNull.Value;
            p["$provider"].Value = (object?)record.Provider ?? DBNull.Value;
            p["$deployment"].Value = (object?)record.Deployment ?? DBNull.Value;
            p["$attempts"].Value = record.Attempts;
            p["$fallback"].Value = record.FallbackUsed ? 1 : 0;
            p["$streamed"].Value = record.Streamed ? 1 : 0;
            p["$status"].Value = record.Status;
            p["$error"].Value = (object?)record.ErrorClass ?? DBNull.Value;
            p["$prompt"].Value = record.PromptTokens;
            p["$cached"].Value = record.CachedTokens;
            p["$completion"].Value = record.CompletionTokens;
            p["$reasoning"].Value = record.ReasoningTokens;
            p["$cache_write"].Value = record.CacheWriteTokens;
            p["$cost"].Value = cost;
            p["$latency"].Value = record.LatencyMs;
            p["$ttft"].Value = (object?)record.TimeToFirstTokenMs ?? DBNull.Value;
            p["$tps"].Value = (object?)record.OutputTokensPerSecond ?? DBNull.Value;
            p["$estimated"].Value = record.Estimated ? 1 : 0;
            if (await insert.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                continue; // already stored (a replay): counted once, rolled up once
            }

            inserted++;
            r["$day"].Value = Day(record.Time);
            r["$key"].Value = record.KeyId;
            r["$team"].Value = record.Team ?? string.Empty;
            r["$model"].Value = record.ServedModel ?? record.RequestedModel ?? string.Empty;
            r["$provider"].Value = record.Provider ?? string.Empty;
            r["$error"].Value = record.ErrorClass is null ? 0 : 1;
            r["$prompt"].Value = record.PromptTokens;
            r["$cached"].Value = record.CachedTokens;
            r["$completion"].Value = record.CompletionTokens;
            r["$reasoning"].Value = record.ReasoningTokens;
            r["$cache_write"].Value = record.CacheWriteTokens;
            r["$cost"].Value = cost;
            r["$estimated"].Value = record.Estimated ? 1 : 0;
            await rollup.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return inserted;
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
        var rows = new List<UsageRow>();
        UsageRow? current = null;
        Dictionary<string, (long, long, long)>? byModel = null;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var g = reader.IsDBNull(0) ? string.Empty : reader.GetString(0);
            var model = reader.IsDBNull(1) ? string.Empty : reader.GetString(1);
            var requests = reader.GetInt64(2);
            var errors = reader.GetInt64(3);
            var prompt = reader.GetInt64(4);
            var cached = reader.GetInt64(5);
            var completion = reader.GetInt64(6);
            var reasoning = reader.GetInt64(7);
            var cacheWrite = reader.GetInt64(8);
            var cost = reader.GetInt64(9) / NanosPerDollar;
            var estimated = reader.GetInt64(10);
            if (current is null || current.Group != g)
            {
                if (current is not null)
                {
                    rows.Add(current with { ByModel = byModel! });
                }

                byModel = new Dictionary<string, (long, long, long)>(StringComparer.Ordinal);
                current = new UsageRow(g, 0, 0, 0, 0, 0, 0, 0, 0m, 0);
            }

            byModel![model] = (prompt, cached, completion);
            current = current with
            {
                Requests = current.Requests + requests,
                Errors = current.Errors + errors,
                PromptTokens = current.PromptTokens + prompt,
                CachedTokens = current.CachedTokens + cached,
                CompletionTokens = current.CompletionTokens + completion,
                ReasoningTokens = current.ReasoningTokens + reasoning,
                CacheWriteTokens = current.CacheWriteTokens + cacheWrite,
                Cost = current.Cost + cost,
                Estimated = current.Estimated + estimated,
            };
        }

        if (current is not null)
        {
            rows.Add(current with { ByModel = byModel! });
        }

        return rows;
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

    internal static long ToNanos(decimal cost) => (long)decimal.Round(cost * NanosPerDollar, 0, MidpointRounding.AwayFromZero);

    private static string Day(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
