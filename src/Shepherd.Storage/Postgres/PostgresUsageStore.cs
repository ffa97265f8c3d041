namespace Shepherd.Storage.Postgres;

using Npgsql;
using NpgsqlTypes;
using Shepherd.Accounting;

/// <summary>
/// Usage records and daily rollups in PostgreSQL. A batch is ONE statement: the records go in as column arrays
/// (a multi-row insert), <c>ON CONFLICT (record_id) DO NOTHING RETURNING</c> yields the rows really inserted, and
/// the rollups are added from exactly those rows — so a record replayed from a spill file, or written by two
/// instances, is stored and rolled up once.
/// </summary>
public sealed class PostgresUsageStore(PostgresDatabase database) : IUsageStore
{
    private const string InsertSql = """
        WITH input AS (
          SELECT * FROM unnest(@ts, @record, @rid, @key, @team, @req, @served, @provider, @deployment, @attempts, @fallback, @streamed,
            @status, @error, @prompt, @cached, @completion, @reasoning, @cache_write, @cost, @latency, @ttft, @tps, @estimated)
            AS t(ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment, attempts, fallback, streamed,
              status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos,
              latency_ms, ttft_ms, tokens_per_s, estimated)
        ), inserted AS (
          INSERT INTO usage_records (ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment, attempts,
            fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
            cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated)
          SELECT * FROM input
          ON CONFLICT (record_id) DO NOTHING
          RETURNING ts, key_id, team, requested_model, served_model, provider, error_class, prompt_tokens, cached_tokens,
            completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated
        ), rolled AS (
          INSERT INTO usage_daily AS d (day, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
            completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
          SELECT (ts AT TIME ZONE 'UTC')::date, key_id, COALESCE(team, ''), COALESCE(served_model, requested_model, ''),
            COALESCE(provider, ''), count(*), count(error_class), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens),
            sum(reasoning_tokens), sum(cache_write_tokens), sum(cost_nanos), count(*) FILTER (WHERE estimated)
          FROM inserted
          GROUP BY 1, 2, 3, 4, 5
          ORDER BY 1, 2, 3, 4, 5
          ON CONFLICT (day, key_id, team, model, provider) DO UPDATE SET
            requests = d.requests + excluded.requests, errors = d.errors + excluded.errors,
            prompt_tokens = d.prompt_tokens + excluded.prompt_tokens, cached_tokens = d.cached_tokens + excluded.cached_tokens,
            completion_tokens = d.completion_tokens + excluded.completion_tokens,
            reasoning_tokens = d.reasoning_tokens + excluded.reasoning_tokens,
            cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
            cost_nanos = d.cost_nanos + excluded.cost_nanos, estimated = d.estimated + excluded.estimated
          RETURNING 1
        )
        SELECT count(*) FROM inserted
        """;

    public async Task<int> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        if (records.Count == 0)
        {
            return 0;
        }

        // In record-id order: two instances replaying overlapping batches take the unique-index locks in the same order.
        var sorted = records.OrderBy(r => r.RecordId ?? r.RequestId, StringComparer.Ordinal).ToArray();
        var n = sorted.Length;
        var ts = new DateTime[n];
        var record = new string[n];
        var rid = new string[n];
        var key = new string[n];
        var team = new string?[n];
        var req = new string?[n];
        var served = new string?[n];
        var provider = new string?[n];
        var deployment = new string?[n];
        var attempts = new int[n];
        var fallback = new bool[n];
        var streamed = new bool[n];
        var status = new int[n];
        var error = new string?[n];
        var prompt = new int[n];
        var cached = new int[n];
        var completion = new int[n];
        var reasoning = new int[n];
        var cacheWrite = new int[n];
        var cost = new long[n];
        var latency = new double[n];
        var ttft = new double?[n];
        var tps = new double?[n];
        var estimated = new bool[n];
        for (var i = 0; i < n; i++)
        {
            var r = sorted[i];
            ts[i] = r.Time.UtcDateTime;
            record[i] = r.RecordId ?? r.RequestId;
            rid[i] = r.RequestId;
            key[i] = r.KeyId;
            team[i] = r.Team;
            req[i] = r.RequestedModel;
            served[i] = r.ServedModel;
            provider[i] = r.Provider;
            deployment[i] = r.Deployment;
            attempts[i] = r.Attempts;
            fallback[i] = r.FallbackUsed;
            streamed[i] = r.Streamed;
            status[i] = r.Status;
            error[i] = r.ErrorClass;
            prompt[i] = r.PromptTokens;
            cached[i] = r.CachedTokens;
            completion[i] = r.CompletionTokens;
            reasoning[i] = r.ReasoningTokens;
            cacheWrite[i] = r.CacheWriteTokens;
            cost[i] = UsageRows.ToNanos(r.Cost);
            latency[i] = r.LatencyMs;
            ttft[i] = r.TimeToFirstTokenMs;
            tps[i] = r.OutputTokensPerSecond;
            estimated[i] = r.Estimated;
        }

        await using var command = database.DataSource.CreateCommand(InsertSql);
        var p = command.Parameters;
        p.AddWithValue("ts", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, ts);
        p.AddWithValue("record", NpgsqlDbType.Array | NpgsqlDbType.Text, record);
        p.AddWithValue("rid", NpgsqlDbType.Array | NpgsqlDbType.Text, rid);
        p.AddWithValue("key", NpgsqlDbType.Array | NpgsqlDbType.Text, key);
        p.AddWithValue("team", NpgsqlDbType.Array | NpgsqlDbType.Text, team);
        p.AddWithValue("req", NpgsqlDbType.Array | NpgsqlDbType.Text, req);
        p.AddWithValue("served", NpgsqlDbType.Array | NpgsqlDbType.Text, served);
        p.AddWithValue("provider", NpgsqlDbType.Array | NpgsqlDbType.Text, provider);
        p.AddWithValue("deployment", NpgsqlDbType.Array | NpgsqlDbType.Text, deployment);
        p.AddWithValue("attempts", NpgsqlDbType.Array | NpgsqlDbType.Integer, attempts);
        p.AddWithValue("fallback", NpgsqlDbType.Array | NpgsqlDbType.Boolean, fallback);
        p.AddWithValue("streamed", NpgsqlDbType.Array | NpgsqlDbType.Boolean, streamed);
        p.AddWithValue("status", NpgsqlDbType.Array | NpgsqlDbType.Integer, status);
        p.AddWithValue("error", NpgsqlDbType.Array | NpgsqlDbType.Text, error);
        p.AddWithValue("prompt", NpgsqlDbType.Array | NpgsqlDbType.Integer, prompt);
        p.AddWithValue("cached", NpgsqlDbType.Array | NpgsqlDbType.Integer, cached);
        p.AddWithValue("completion", NpgsqlDbType.Array | NpgsqlDbType.Integer, completion);
        p.AddWithValue("reasoning", NpgsqlDbType.Array | NpgsqlDbType.Integer, reasoning);
        p.AddWithValue("cache_write", NpgsqlDbType.Array | NpgsqlDbType.Integer, cacheWrite);
        p.AddWithValue("cost", NpgsqlDbType.Array | NpgsqlDbType.Bigint, cost);
        p.AddWithValue("latency", NpgsqlDbType.Array | NpgsqlDbType.Double, latency);
        p.AddWithValue("ttft", NpgsqlDbType.Array | NpgsqlDbType.Double, ttft);
        p.AddWithValue("tps", NpgsqlDbType.Array | NpgsqlDbType.Double, tps);
        p.AddWithValue("estimated", NpgsqlDbType.Array | NpgsqlDbType.Boolean, estimated);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<int> PurgeAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        var total = 0;
        while (true)
        {
            // In slices, so a large purge never holds many row locks or one long transaction.
            await using var delete = database.DataSource.CreateCommand(
                "DELETE FROM usage_records WHERE id IN (SELECT id FROM usage_records WHERE ts < @before LIMIT 10000)");
            delete.Parameters.AddWithValue("before", NpgsqlDbType.TimestampTz, before.UtcDateTime);
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
        await using var command = database.DataSource.CreateCommand();
        var keyFilter = query.KeyId is null ? "" : "AND key_id = @key";
        var rawGroup = query.GroupBy switch
        {
            UsageGrouping.Key => "key_id",
            UsageGrouping.Team => "COALESCE(team, '')",
            UsageGrouping.Model => "COALESCE(served_model, requested_model, '')",
            UsageGrouping.Provider => "COALESCE(provider, '')",
            UsageGrouping.Day => "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            _ => """to_char(date_trunc('hour', ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24":00:00Z"')""",
        };
        const string RawColumns = """
            COALESCE(served_model, requested_model, '') AS m, 1::bigint AS requests, (error_class IS NOT NULL)::int::bigint AS errors,
              prompt_tokens::bigint, cached_tokens::bigint, completion_tokens::bigint, reasoning_tokens::bigint,
              cache_write_tokens::bigint, cost_nanos, estimated::int::bigint
            """;

        string sql;
        var from = query.From.ToUniversalTime();
        var to = query.To.ToUniversalTime();
        if (query.GroupBy == UsageGrouping.Hour)
        {
            // Hours come from raw records (kept for the retention period).
            sql = $"SELECT {rawGroup} AS g, {RawColumns} FROM usage_records WHERE ts >= @r1 AND ts < @r2 {keyFilter}";
            command.Parameters.AddWithValue("r1", NpgsqlDbType.TimestampTz, from.UtcDateTime);
            command.Parameters.AddWithValue("r2", NpgsqlDbType.TimestampTz, to.UtcDateTime);
        }
        else
        {
            // As in the SQLite store: [From, firstWhole) raw, [firstWhole, lastWholeEnd) rollups, [lastWholeEnd, To) raw.
            var rollupGroup = query.GroupBy switch
            {
                UsageGrouping.Key => "key_id",
                UsageGrouping.Team => "team",
                UsageGrouping.Model => "model",
                UsageGrouping.Provider => "provider",
                _ => "to_char(day, 'YYYY-MM-DD')",
            };
            var fromMidnight = new DateTimeOffset(from.UtcDateTime.Date, TimeSpan.Zero);
            var firstWhole = fromMidnight == from ? from : fromMidnight.AddDays(1);
            var lastWholeEnd = new DateTimeOffset(to.UtcDateTime.Date, TimeSpan.Zero);
            if (firstWhole >= lastWholeEnd)
            {
                firstWhole = lastWholeEnd = to;
            }

            sql = $"""
                SELECT {rollupGroup} AS g, model AS m, requests, errors, prompt_tokens, cached_tokens, completion_tokens,
                  reasoning_tokens, cache_write_tokens, cost_nanos, estimated
                FROM usage_daily WHERE day >= @d1 AND day < @d2 {keyFilter}
                UNION ALL
                SELECT {rawGroup}, {RawColumns} FROM usage_records WHERE ts >= @r1 AND ts < @r2 {keyFilter}
                UNION ALL
                SELECT {rawGroup}, {RawColumns} FROM usage_records WHERE ts >= @r3 AND ts < @r4 {keyFilter}
                """;
            command.Parameters.AddWithValue("d1", NpgsqlDbType.Date, DateOnly.FromDateTime(firstWhole.UtcDateTime));
            command.Parameters.AddWithValue("d2", NpgsqlDbType.Date, DateOnly.FromDateTime(lastWholeEnd.UtcDateTime));
            command.Parameters.AddWithValue("r1", NpgsqlDbType.TimestampTz, from.UtcDateTime);
            command.Parameters.AddWithValue("r2", NpgsqlDbType.TimestampTz, firstWhole.UtcDateTime);
            command.Parameters.AddWithValue("r3", NpgsqlDbType.TimestampTz, lastWholeEnd.UtcDateTime);
            command.Parameters.AddWithValue("r4", NpgsqlDbType.TimestampTz, to.UtcDateTime);
        }

        command.CommandText = $"""
            SELECT g COLLATE "C", m COLLATE "C", sum(requests)::bigint, sum(errors)::bigint, sum(prompt_tokens)::bigint,
              sum(cached_tokens)::bigint, sum(completion_tokens)::bigint, sum(reasoning_tokens)::bigint,
              sum(cache_write_tokens)::bigint, sum(cost_nanos)::bigint, sum(estimated)::bigint
            FROM ({sql}) AS u
            GROUP BY 1, 2 ORDER BY 1, 2
            """;

        if (query.KeyId is not null)
        {
            command.Parameters.AddWithValue("key", query.KeyId);
        }

        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await UsageRows.ReadRowsAsync(reader, cancellationToken);
    }
}
