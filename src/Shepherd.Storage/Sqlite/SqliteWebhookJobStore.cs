namespace Shepherd.Storage.Sqlite;

using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Shepherd.Webhooks;

/// <summary>
/// The webhook queue in the embedded database (migration 0004): events, jobs, attempts and results.
/// </summary>
/// <remarks>
/// <para>Every change goes through one <see cref="SqliteGroupWriter"/>: operations queued together commit together, in
/// one transaction with <c>PRAGMA synchronous=FULL</c>, and each caller hears back only once its batch is on disk
/// (the write-ahead log fsync'd). So an acknowledged event survives a process crash and a power cut, and so does
/// every result, retry and dead letter recorded. One fsync per batch keeps this fast under load.</para>
/// <para>Reads (statistics, lists, one event) use their own pooled connections beside the writer (WAL mode).</para>
/// </remarks>
public sealed class SqliteWebhookJobStore(SqliteDatabase database) : IWebhookJobStore, IWebhookEventQuery, IAsyncDisposable
{
    private readonly SqliteGroupWriter _writer = new(database);

    /// <summary>Write transactions committed so far (operations per commit = the batching achieved).</summary>
    public long Commits => _writer.Commits;

    public ValueTask DisposeAsync() => _writer.DisposeAsync();

    public Task<IReadOnlyList<bool>> EnqueueAsync(IReadOnlyList<WebhookEventDraft> events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (events.Count == 0)
        {
            return Task.FromResult<IReadOnlyList<bool>>([]);
        }

        return _writer.WriteAsync<IReadOnlyList<bool>>(async (connection, transaction) =>
        {
            var stored = new bool[events.Count];
            await using var insertEvent = connection.CreateCommand();
            insertEvent.Transaction = transaction;
            insertEvent.CommandText = """
                INSERT INTO webhook_events (source, event_id, event_type, payload, received_at) VALUES ($source, $id, $type, $payload, $now)
                ON CONFLICT (source, event_id) DO NOTHING RETURNING id
                """;
            var source = insertEvent.Parameters.Add("$source", SqliteType.Text);
            var id = insertEvent.Parameters.Add("$id", SqliteType.Text);
            var type = insertEvent.Parameters.Add("$type", SqliteType.Text);
            var payload = insertEvent.Parameters.Add("$payload", SqliteType.Blob);
            insertEvent.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());

            await using var insertJob = connection.CreateCommand();
            insertJob.Transaction = transaction;
            insertJob.CommandText = """
                INSERT INTO webhook_jobs (event, kind, source, status, available_at, enqueued_at, updated_at, last_error)
                VALUES ($event, 'process', $source, $status, $now, $now, $now, $note)
                """;
            var jobEvent = insertJob.Parameters.Add("$event", SqliteType.Integer);
            var jobSource = insertJob.Parameters.Add("$source", SqliteType.Text);
            var status = insertJob.Parameters.Add("$status", SqliteType.Text);
            var note = insertJob.Parameters.Add("$note", SqliteType.Text);
            insertJob.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());

            for (var i = 0; i < events.Count; i++)
            {
                var draft = events[i];
                source.Value = draft.Source;
                id.Value = draft.EventId;
                type.Value = draft.EventType;
                payload.Value = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(draft.Payload, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
                    ? segment.Array
                    : draft.Payload.ToArray();
                if (await insertEvent.ExecuteScalarAsync(CancellationToken.None) is not long eventRow)
                {
                    continue; // a duplicate: stored before (or earlier in this batch)
                }

                jobEvent.Value = eventRow;
                jobSource.Value = draft.Source;
                status.Value = (draft.Skip ? WebhookJobStatus.Skipped : WebhookJobStatus.Waiting).Name();
                note.Value = (object?)draft.Note ?? DBNull.Value;
                await insertJob.ExecuteNonQueryAsync(CancellationToken.None);
                stored[i] = true;
            }

            return stored;
        });
    }

    public Task<IReadOnlyList<WebhookLeasedJob>> LeaseAsync(IReadOnlyCollection<string> sources, int max, DateTimeOffset now, TimeSpan visibility, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (max <= 0 || sources.Count == 0)
        {
            return Task.FromResult<IReadOnlyList<WebhookLeasedJob>>([]);
        }

        return _writer.WriteAsync<IReadOnlyList<WebhookLeasedJob>>(async (connection, transaction) =>
        {
            var leased = new List<(long Job, long Event, WebhookJobKind Kind, string Source, int Attempt, int Try)>();
            await using (var lease = connection.CreateCommand())
            {
                lease.Transaction = transaction;
                var names = new StringBuilder();
                var n = 0;
                foreach (var source in sources)
                {
                    names.Append(n == 0 ? "" : ", ").Append("$s").Append(n);
                    lease.Parameters.AddWithValue($"$s{n++}", source);
                }

                lease.CommandText = $"""
                    UPDATE webhook_jobs SET status = 'leased', attempts = attempts + 1, tries = tries + 1, available_at = $until, updated_at = $now
                    WHERE id IN (
                      SELECT id FROM webhook_jobs
                      WHERE status IN ('waiting', 'failed', 'leased') AND available_at <= $now AND source IN ({names})
                      ORDER BY available_at LIMIT $max)
                    RETURNING id, event, kind, source, attempts, tries
                    """;
                lease.Parameters.AddWithValue("$until", (now + visibility).ToUnixTimeMilliseconds());
                lease.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                lease.Parameters.AddWithValue("$max", max);
                await using var reader = await lease.ExecuteReaderAsync(CancellationToken.None);
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    leased.Add((reader.GetInt64(0), reader.GetInt64(1), WebhookRows.Kind(reader.GetString(2)), reader.GetString(3), reader.GetInt32(4), reader.GetInt32(5)));
                }
            }

            if (leased.Count == 0)
            {
                return [];
            }

            var events = new Dictionary<long, (string Id, string Type, byte[] Payload, long Received)>();
            await using (var read = connection.CreateCommand())
            {
                read.Transaction = transaction;
                read.CommandText = $"SELECT id, event_id, event_type, payload, received_at FROM webhook_events WHERE id IN ({string.Join(", ", leased.Select(l => l.Event.ToString(CultureInfo.InvariantCulture)))})";
                await using var reader = await read.ExecuteReaderAsync(CancellationToken.None);
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    events[reader.GetInt64(0)] = (reader.GetString(1), reader.GetString(2), (byte[])reader.GetValue(3), reader.GetInt64(4));
                }
            }

            var jobs = new List<WebhookLeasedJob>(leased.Count);
            foreach (var l in leased.OrderBy(l => l.Job))
            {
                if (!events.TryGetValue(l.Event, out var e))
                {
                    continue;
                }

                var result = l.Kind == WebhookJobKind.Deliver ? await ReadResultAsync(connection, transaction, l.Source, e.Id, CancellationToken.None) : null;
                jobs.Add(new WebhookLeasedJob(l.Job, l.Kind, l.Source, e.Id, e.Type, e.Payload, FromMs(e.Received), l.Attempt, l.Try, result));
            }

            return jobs;
        });
    }

    public Task<bool> ExtendLeaseAsync(long jobId, int attempt, DateTimeOffset until, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "UPDATE webhook_jobs SET available_at = $until WHERE id = $id AND status = 'leased' AND attempts = $attempt";
            command.Parameters.AddWithValue("$until", until.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$id", jobId);
            command.Parameters.AddWithValue("$attempt", attempt);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) == 1;
        }, cancellationToken);

    public Task<bool> CompleteAsync(WebhookLeasedJob job, WebhookResult? result, WebhookAttempt attempt, bool enqueueDelivery, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            if (job.Kind == WebhookJobKind.Process && result is not null)
            {
                await using var insert = connection.CreateCommand();
                insert.Transaction = transaction;
                insert.CommandText = """
                    INSERT OR IGNORE INTO webhook_results (source, event_id, model, text, finish_reason, prompt_tokens, completion_tokens, cost_nanos, latency_ms, request_id, completed_at)
                    VALUES ($source, $event, $model, $text, $finish, $prompt, $completion, $cost, $latency, $request, $at)
                    """;
                insert.Parameters.AddWithValue("$source", job.Source);
                insert.Parameters.AddWithValue("$event", job.EventId);
                insert.Parameters.AddWithValue("$model", result.Model);
                insert.Parameters.AddWithValue("$text", result.Text);
                insert.Parameters.AddWithValue("$finish", (object?)result.FinishReason ?? DBNull.Value);
                insert.Parameters.AddWithValue("$prompt", result.PromptTokens);
                insert.Parameters.AddWithValue("$completion", result.CompletionTokens);
                insert.Parameters.AddWithValue("$cost", UsageRows.ToNanos(result.CostUsd));
                insert.Parameters.AddWithValue("$latency", result.LatencyMs);
                insert.Parameters.AddWithValue("$request", result.RequestId);
                insert.Parameters.AddWithValue("$at", result.CompletedAt.ToUnixTimeMilliseconds());
                await insert.ExecuteNonQueryAsync(CancellationToken.None);
            }

            var status = job.Kind == WebhookJobKind.Process && result is null ? WebhookJobStatus.Skipped : WebhookJobStatus.Completed;
            var changed = await FinishAsync(connection, transaction, job, status, now, null, null, attempt, CancellationToken.None);
            if (changed && enqueueDelivery && job.Kind == WebhookJobKind.Process && result is not null)
            {
                await using var deliver = connection.CreateCommand();
                deliver.Transaction = transaction;
                deliver.CommandText = """
                    INSERT OR IGNORE INTO webhook_jobs (event, kind, source, status, available_at, enqueued_at, updated_at)
                    SELECT event, 'deliver', source, 'waiting', $now, $now, $now FROM webhook_jobs WHERE id = $id
                    """;
                deliver.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                deliver.Parameters.AddWithValue("$id", job.JobId);
                await deliver.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return changed;
        }, cancellationToken);

    public Task<bool> FailAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset nextAttemptAt, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) => FinishAsync(connection, transaction, job, WebhookJobStatus.Failed, nextAttemptAt, now, attempt.Error, attempt, CancellationToken.None), cancellationToken);

    public Task<bool> DeadLetterAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) => FinishAsync(connection, transaction, job, WebhookJobStatus.Dead, now, now, attempt.Error, attempt, CancellationToken.None), cancellationToken);

    public Task ReleaseAsync(WebhookLeasedJob job, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = """
                UPDATE webhook_jobs SET status = CASE WHEN tries > 1 THEN 'failed' ELSE 'waiting' END, tries = tries - 1, available_at = $now, updated_at = $now
                WHERE id = $id AND status = 'leased' AND attempts = $attempt
                """;
            command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$id", job.JobId);
            command.Parameters.AddWithValue("$attempt", job.Attempt);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) == 1;
        }, cancellationToken);

    public Task<WebhookReplayOutcome> ReplayAsync(string source, string eventId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            await using var find = connection.CreateCommand();
            find.Transaction = transaction;
            find.CommandText = "SELECT id FROM webhook_events WHERE source = $source AND event_id = $event";
            find.Parameters.AddWithValue("$source", source);
            find.Parameters.AddWithValue("$event", eventId);
            if (await find.ExecuteScalarAsync(CancellationToken.None) is not long eventRow)
            {
                return WebhookReplayOutcome.NotFound;
            }

            await using var replay = connection.CreateCommand();
            replay.Transaction = transaction;
            replay.CommandText = """
                UPDATE webhook_jobs SET status = 'waiting', tries = 0, available_at = $now, enqueued_at = $now, updated_at = $now
                WHERE event = $event AND status IN ('dead', 'failed')
                """;
            replay.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            replay.Parameters.AddWithValue("$event", eventRow);
            return await replay.ExecuteNonQueryAsync(CancellationToken.None) > 0 ? WebhookReplayOutcome.Replayed : WebhookReplayOutcome.NothingToReplay;
        }, cancellationToken);

    public Task<int> ReplayDeadAsync(string? source, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            await using var replay = connection.CreateCommand();
            replay.Transaction = transaction;
            replay.CommandText = $"""
                UPDATE webhook_jobs SET status = 'waiting', tries = 0, available_at = $now, enqueued_at = $now, updated_at = $now
                WHERE status = 'dead'{(source is null ? "" : " AND source = $source")}
                """;
            replay.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            if (source is not null)
            {
                replay.Parameters.AddWithValue("$source", source);
            }

            return await replay.ExecuteNonQueryAsync(CancellationToken.None);
        }, cancellationToken);

    public Task<int> PurgeDeadAsync(string? source, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            var filter = source is null ? "" : " AND source = $source";
            await using var purge = connection.CreateCommand();
            purge.Transaction = transaction;
            purge.CommandText = $"DELETE FROM webhook_jobs WHERE status = 'dead'{filter}";
            if (source is not null)
            {
                purge.Parameters.AddWithValue("$source", source);
            }

            var deleted = await purge.ExecuteNonQueryAsync(CancellationToken.None);
            await using var orphans = connection.CreateCommand();
            orphans.Transaction = transaction;
            orphans.CommandText = $"DELETE FROM webhook_events WHERE NOT EXISTS (SELECT 1 FROM webhook_jobs j WHERE j.event = webhook_events.id){filter}";
            if (source is not null)
            {
                orphans.Parameters.AddWithValue("$source", source);
            }

            await orphans.ExecuteNonQueryAsync(CancellationToken.None);
            return deleted;
        }, cancellationToken);

    public Task<int> PurgeFinishedAsync(DateTimeOffset before, int max, CancellationToken cancellationToken) =>
        WriteAsync(async (connection, transaction) =>
        {
            // Events are numbered in arrival order: the first one at or after the cut bounds the search by id, so a
            // sweep reads only the old events, not the whole table (received_at has no index of its own). The same
            // victims are chosen twice in the transaction: for their results (keyed by source and event id), then for
            // the events themselves (jobs and attempts go with them, ON DELETE CASCADE).
            const string Victims = """
                SELECT e.id, e.source, e.event_id FROM webhook_events e
                WHERE e.id < COALESCE((SELECT id FROM webhook_events WHERE received_at >= $before ORDER BY id LIMIT 1), 9223372036854775807)
                  AND e.received_at < $before
                  AND NOT EXISTS (SELECT 1 FROM webhook_jobs j WHERE j.event = e.id AND j.status NOT IN ('completed', 'skipped'))
                ORDER BY e.id LIMIT $max
                """;
            const string Sql = $"""
                WITH victims AS ({Victims}) DELETE FROM webhook_results WHERE (source, event_id) IN (SELECT source, event_id FROM victims);
                WITH victims AS ({Victims}) DELETE FROM webhook_events WHERE id IN (SELECT id FROM victims);
                SELECT changes();
                """;
            await using var delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = Sql;
            delete.Parameters.AddWithValue("$before", before.ToUnixTimeMilliseconds());
            delete.Parameters.AddWithValue("$max", max);
            return Convert.ToInt32(await delete.ExecuteScalarAsync(CancellationToken.None), System.Globalization.CultureInfo.InvariantCulture);
        }, cancellationToken);

    public async Task<IReadOnlyList<WebhookQueueStats>> StatsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT source, kind, status, COUNT(*), MIN(enqueued_at), SUM(CASE WHEN status = 'leased' AND available_at <= $now THEN 1 ELSE 0 END)
            FROM webhook_jobs GROUP BY source, kind, status
            """;
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        var stats = new WebhookRows.StatsBuilder();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            stats.Add(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), FromMs(reader.GetInt64(4)), reader.GetInt64(5));
        }

        return stats.Build();
    }

    public async Task<IReadOnlyList<WebhookEventSummary>> ListAsync(WebhookListQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        var where = new List<string>();
        if (query.Source is not null)
        {
            where.Add("e.source = $source");
            command.Parameters.AddWithValue("$source", query.Source);
        }

        if (query.Status is { } status)
        {
            if (status == WebhookJobStatus.Dead)
            {
                where.Add("(j.status = 'dead' OR d.status = 'dead')");
            }
            else
            {
                where.Add("j.status = $status");
                command.Parameters.AddWithValue("$status", status.Name());
            }
        }

        if (query.Before is { } before)
        {
            where.Add("e.id < $before");
            command.Parameters.AddWithValue("$before", before);
        }

        command.CommandText = $"""
            SELECT e.id, e.source, e.event_id, e.event_type, e.received_at, j.status, j.attempts, j.last_error, j.updated_at, d.status
            FROM webhook_events e
            JOIN webhook_jobs j ON j.event = e.id AND j.kind = 'process'
            LEFT JOIN webhook_jobs d ON d.event = e.id AND d.kind = 'deliver'
            {(where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where))}
            ORDER BY e.id DESC LIMIT $limit
            """;
        command.Parameters.AddWithValue("$limit", Math.Clamp(query.Limit, 1, 1000));
        var list = new List<WebhookEventSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookEventSummary(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                FromMs(reader.GetInt64(4)),
                WebhookRows.Status(reader.GetString(5)),
                reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                FromMs(reader.GetInt64(8)),
                reader.IsDBNull(9) ? null : WebhookRows.Status(reader.GetString(9))));
        }

        return list;
    }

    public async Task<IReadOnlyList<WebhookEventDetail>> FindAsync(string eventId, string? source, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var events = new List<(long Row, string Source, string Type, byte[] Payload, long Received)>();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"SELECT id, source, event_type, payload, received_at FROM webhook_events WHERE event_id = $event{(source is null ? "" : " AND source = $source")} ORDER BY id";
            command.Parameters.AddWithValue("$event", eventId);
            if (source is not null)
            {
                command.Parameters.AddWithValue("$source", source);
            }

            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                events.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2), (byte[])reader.GetValue(3), reader.GetInt64(4)));
            }
        }

        var details = new List<WebhookEventDetail>();
        foreach (var e in events)
        {
            var jobs = new List<WebhookJobDetail>();
            await using (var command = connection.CreateCommand())
            {
                command.CommandText = "SELECT id, kind, status, attempts, tries, available_at, last_error, updated_at FROM webhook_jobs WHERE event = $event ORDER BY id";
                command.Parameters.AddWithValue("$event", e.Row);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    jobs.Add(new WebhookJobDetail(
                        reader.GetInt64(0),
                        WebhookRows.Kind(reader.GetString(1)),
                        WebhookRows.Status(reader.GetString(2)),
                        reader.GetInt32(3),
                        reader.GetInt32(4),
                        FromMs(reader.GetInt64(5)),
                        reader.IsDBNull(6) ? null : reader.GetString(6),
                        FromMs(reader.GetInt64(7)),
                        []));
                }
            }

            for (var j = 0; j < jobs.Count; j++)
            {
                var history = new List<WebhookAttempt>();
                await using var command = connection.CreateCommand();
                command.CommandText = "SELECT attempt, started_at, duration_ms, outcome, status, error, request_id FROM webhook_attempts WHERE job = $job ORDER BY attempt";
                command.Parameters.AddWithValue("$job", jobs[j].JobId);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    history.Add(new WebhookAttempt(
                        reader.GetInt32(0),
                        FromMs(reader.GetInt64(1)),
                        reader.GetDouble(2),
                        reader.GetString(3),
                        reader.IsDBNull(4) ? null : reader.GetInt32(4),
                        reader.IsDBNull(5) ? null : reader.GetString(5),
                        reader.IsDBNull(6) ? null : reader.GetString(6)));
                }

                jobs[j] = jobs[j] with { History = history };
            }

            var result = await ReadResultAsync(connection, null, e.Source, eventId, cancellationToken);
            details.Add(new WebhookEventDetail(e.Row, e.Source, eventId, e.Type, FromMs(e.Received), e.Payload, jobs, result));
        }

        return details;
    }

    /// <summary>Marks a leased job (fenced by its attempt) and records the attempt, in the caller's transaction.</summary>
    private static async Task<bool> FinishAsync(
        SqliteConnection connection,
        SqliteTransaction transaction,
        WebhookLeasedJob job,
        WebhookJobStatus status,
        DateTimeOffset availableAt,
        DateTimeOffset? now,
        string? error,
        WebhookAttempt attempt,
        CancellationToken cancellationToken)
    {
        var at = (now ?? availableAt).ToUnixTimeMilliseconds();
        await using var update = connection.CreateCommand();
        update.Transaction = transaction;
        update.CommandText = """
            UPDATE webhook_jobs SET status = $status, available_at = $available, updated_at = $now, last_error = $error
            WHERE id = $id AND status = 'leased' AND attempts = $attempt
            """;
        update.Parameters.AddWithValue("$status", status.Name());
        update.Parameters.AddWithValue("$available", availableAt.ToUnixTimeMilliseconds());
        update.Parameters.AddWithValue("$now", at);
        update.Parameters.AddWithValue("$error", (object?)WebhookRows.Truncate(error) ?? DBNull.Value);
        update.Parameters.AddWithValue("$id", job.JobId);
        update.Parameters.AddWithValue("$attempt", job.Attempt);
        var changed = await update.ExecuteNonQueryAsync(cancellationToken) == 1;

        await using var record = connection.CreateCommand();
        record.Transaction = transaction;
        record.CommandText = """
            INSERT OR REPLACE INTO webhook_attempts (job, attempt, started_at, duration_ms, outcome, status, error, request_id)
            VALUES ($job, $attempt, $started, $duration, $outcome, $status, $error, $request)
            """;
        record.Parameters.AddWithValue("$job", job.JobId);
        record.Parameters.AddWithValue("$attempt", attempt.Number);
        record.Parameters.AddWithValue("$started", attempt.StartedAt.ToUnixTimeMilliseconds());
        record.Parameters.AddWithValue("$duration", attempt.DurationMs);
        record.Parameters.AddWithValue("$outcome", attempt.Outcome);
        record.Parameters.AddWithValue("$status", (object?)attempt.Status ?? DBNull.Value);
        record.Parameters.AddWithValue("$error", (object?)WebhookRows.Truncate(attempt.Error) ?? DBNull.Value);
        record.Parameters.AddWithValue("$request", (object?)attempt.RequestId ?? DBNull.Value);
        await record.ExecuteNonQueryAsync(cancellationToken);
        return changed;
    }

    private static async Task<WebhookResult?> ReadResultAsync(SqliteConnection connection, SqliteTransaction? transaction, string source, string eventId, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            SELECT model, text, finish_reason, prompt_tokens, completion_tokens, cost_nanos, latency_ms, request_id, completed_at
            FROM webhook_results WHERE source = $source AND event_id = $event
            """;
        command.Parameters.AddWithValue("$source", source);
        command.Parameters.AddWithValue("$event", eventId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new WebhookResult
        {
            Model = reader.GetString(0),
            Text = reader.GetString(1),
            FinishReason = reader.IsDBNull(2) ? null : reader.GetString(2),
            PromptTokens = reader.GetInt32(3),
            CompletionTokens = reader.GetInt32(4),
            CostUsd = reader.GetInt64(5) / UsageRows.NanosPerDollar,
            LatencyMs = reader.GetDouble(6),
            RequestId = reader.GetString(7),
            CompletedAt = FromMs(reader.GetInt64(8)),
        };
    }

    /// <summary>One write, committed durably with whatever else is queued (never cancelled once queued).</summary>
    private Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _writer.WriteAsync(work);
    }


    private static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);



}
