namespace Shepherd.Storage.Postgres;

using System.Runtime.InteropServices;
using Npgsql;
using NpgsqlTypes;
using Shepherd.Storage.Sqlite;
using Shepherd.Webhooks;

/// <summary>
/// The webhook queue in PostgreSQL (migration 0004), shared by every instance: events, jobs, attempts and results,
/// with the same meaning as <see cref="SqliteWebhookJobStore"/>.
/// </summary>
/// <remarks>
/// <para><b>Several instances.</b> A lease is one statement: the due jobs are picked with <c>FOR UPDATE SKIP
/// LOCKED</c> and updated in the same statement, so instances leasing at the same time take disjoint jobs and never
/// wait for each other. A lease that ran out (its instance died) is due again, and the next lease by any instance
/// takes the job with the next attempt number; every later change is fenced by that number (<c>WHERE status =
/// 'leased' AND attempts = @attempt</c>), so the instance that lost the lease can change nothing. Results are keyed by
/// (source, event id) and the first one stored wins: processing is at-least-once, its effect exactly-once.</para>
/// <para><b>Durability.</b> Every write is one round trip: a batch whose first command turns
/// <c>synchronous_commit</c> back on for the transaction if the server or database turned it off, then one statement
/// (several changes are chained in one statement with data-modifying CTEs). The batch commits when it ends, and the
/// caller hears back only after that commit — so an event is acknowledged only once it is in the write-ahead log
/// flushed to disk (and, where synchronous replication is configured, on the standby).</para>
/// <para><b>Intake.</b> <see cref="EnqueueAsync"/> receives a whole group commit (the intake gathers every event
/// waiting) and stores it with one multi-row <c>INSERT … ON CONFLICT DO NOTHING RETURNING</c> from column arrays; the
/// rows come back for the events really inserted, so duplicates — within the batch, from an earlier batch, or sent to
/// another instance at the same moment — are told apart per event. Rows are inserted in (source, event id) order, so
/// two instances inserting overlapping batches take the unique-index locks in the same order and cannot deadlock;
/// large bodies are spread over several statements of the same transaction.</para>
/// </remarks>
public sealed class PostgresWebhookJobStore(PostgresDatabase database) : IWebhookJobStore, IWebhookEventQuery
{
    /// <summary>Raises <c>synchronous_commit</c> for this transaction when it is off (a setting meant for other workloads must not weaken an acknowledgement).</summary>
    private const string DurableCommit = "SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') = 'off'";

    /// <summary>Payload bytes per insert statement: large bodies are split over several statements (PostgreSQL takes at most 1 GB in one value).</summary>
    private const long MaxPayloadBytesPerStatement = 32L << 20;

    // The events in the caller's (sorted) order; a process job for each row really inserted (the first occurrence of its id).
    private const string EnqueueSql = """
        WITH input AS (
          SELECT * FROM unnest(@source, @event_id, @event_type, @payload, @skip, @note) WITH ORDINALITY
            AS t(source, event_id, event_type, payload, skip, note, n)
        ), inserted AS (
          INSERT INTO webhook_events (source, event_id, event_type, payload, received_at)
          SELECT source, event_id, event_type, payload, @now FROM input ORDER BY n
          ON CONFLICT (source, event_id) DO NOTHING
          RETURNING id, source, event_id
        ), first AS (
          SELECT DISTINCT ON (source, event_id) source, event_id, skip, note FROM input ORDER BY source, event_id, n
        ), jobs AS (
          INSERT INTO webhook_jobs (event, kind, source, status, available_at, enqueued_at, updated_at, last_error)
          SELECT i.id, 'process', i.source, CASE WHEN f.skip THEN 'skipped' ELSE 'waiting' END, @now, @now, @now, f.note
          FROM inserted i JOIN first f ON f.source = i.source AND f.event_id = i.event_id
          ORDER BY i.id
        )
        SELECT source, event_id FROM inserted
        """;

    // MATERIALIZED: the locking pick runs exactly once, whatever plan the update gets.
    private const string LeaseSql = """
        WITH due AS MATERIALIZED (
          SELECT id FROM webhook_jobs
          WHERE status IN ('waiting', 'failed', 'leased') AND available_at <= @now AND source = ANY(@sources)
          ORDER BY available_at, id
          LIMIT @max
          FOR UPDATE SKIP LOCKED
        ), leased AS (
          UPDATE webhook_jobs j SET status = 'leased', attempts = j.attempts + 1, tries = j.tries + 1, available_at = @until, updated_at = @now
          FROM due WHERE j.id = due.id
          RETURNING j.id, j.event, j.kind, j.source, j.attempts, j.tries
        )
        SELECT l.id, l.kind, l.source, l.attempts, l.tries, e.event_id, e.event_type, e.payload, e.received_at,
          r.model, r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, r.cost_nanos, r.latency_ms, r.request_id, r.completed_at
        FROM leased l
        JOIN webhook_events e ON e.id = l.event
        LEFT JOIN webhook_results r ON l.kind = 'deliver' AND r.source = l.source AND r.event_id = e.event_id
        ORDER BY l.id
        """;

    // One statement: the result (first one wins, stored even by a worker that lost its lease, as with SQLite), the
    // fenced status change, the attempt, and the delivery job only if the status changed.
    private const string FinishSql = """
        WITH result AS (
          INSERT INTO webhook_results (source, event_id, model, text, finish_reason, prompt_tokens, completion_tokens, cost_nanos, latency_ms, request_id, completed_at)
          SELECT @source, @event_id, @model, @text, @finish, @prompt, @completion, @cost, @latency, @request, @completed
          WHERE @has_result
          ON CONFLICT (source, event_id) DO NOTHING
        ), finished AS (
          UPDATE webhook_jobs SET status = @status, available_at = @available, updated_at = @now, last_error = @error
          WHERE id = @id AND status = 'leased' AND attempts = @attempt
          RETURNING event, source
        ), attempt AS (
          INSERT INTO webhook_attempts (job, attempt, started_at, duration_ms, outcome, status, error, request_id)
          VALUES (@id, @number, @started, @duration, @outcome, @http_status, @attempt_error, @attempt_request)
          ON CONFLICT (job, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
            outcome = excluded.outcome, status = excluded.status, error = excluded.error, request_id = excluded.request_id
        ), delivery AS (
          INSERT INTO webhook_jobs (event, kind, source, status, available_at, enqueued_at, updated_at)
          SELECT event, 'deliver', source, 'waiting', @now, @now, @now FROM finished WHERE @deliver
          ON CONFLICT (event, kind) DO NOTHING
        )
        SELECT count(*) FROM finished
        """;

    private NpgsqlDataSource Source => database.DataSource;

    public async Task<IReadOnlyList<bool>> EnqueueAsync(IReadOnlyList<WebhookEventDraft> events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (events.Count == 0)
        {
            return [];
        }

        // Every instance inserts in the same order (a stable sort: the first occurrence of an id stays first), so two
        // instances storing overlapping batches take the unique-index locks in the same order and cannot deadlock.
        var order = Enumerable.Range(0, events.Count)
            .OrderBy(i => events[i].Source, StringComparer.Ordinal)
            .ThenBy(i => events[i].EventId, StringComparer.Ordinal)
            .ToArray();

        // One statement per slice of at most MaxPayloadBytesPerStatement (one slice unless the bodies are large), all
        // in the batch's one transaction: a later slice sees the rows of an earlier one, so duplicates still lose.
        await using var batch = Batch();
        for (var from = 0; from < order.Length;)
        {
            var to = from;
            long bytes = 0;
            while (to < order.Length && (to == from || bytes + events[order[to]].Payload.Length <= MaxPayloadBytesPerStatement))
            {
                bytes += events[order[to++]].Payload.Length;
            }

            batch.BatchCommands.Add(EnqueueCommand(events, order.AsSpan(from, to - from), now));
            from = to;
        }

        // Never cancelled once sent: the caller must learn whether the batch committed.
        var inserted = new HashSet<(string, string)>();
        await using (var reader = await batch.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.NextResultAsync(CancellationToken.None))
            {
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    inserted.Add((reader.GetString(0), reader.GetString(1)));
                }
            }
        }

        // The first occurrence of an id in the batch is the one inserted.
        var stored = new bool[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            stored[i] = inserted.Remove((events[i].Source, events[i].EventId));
        }

        return stored;
    }

    private static NpgsqlBatchCommand EnqueueCommand(IReadOnlyList<WebhookEventDraft> events, ReadOnlySpan<int> slice, DateTimeOffset now)
    {
        var n = slice.Length;
        var sources = new string[n];
        var ids = new string[n];
        var types = new string[n];
        var payloads = new byte[n][];
        var skips = new bool[n];
        var notes = new string?[n];
        for (var i = 0; i < n; i++)
        {
            var draft = events[slice[i]];
            sources[i] = draft.Source;
            ids[i] = draft.EventId;
            types[i] = draft.EventType;
            payloads[i] = MemoryMarshal.TryGetArray(draft.Payload, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
                ? segment.Array
                : draft.Payload.ToArray();
            skips[i] = draft.Skip;
            notes[i] = draft.Note;
        }

        var command = new NpgsqlBatchCommand(EnqueueSql);
        var p = command.Parameters;
        p.AddWithValue("source", NpgsqlDbType.Array | NpgsqlDbType.Text, sources);
        p.AddWithValue("event_id", NpgsqlDbType.Array | NpgsqlDbType.Text, ids);
        p.AddWithValue("event_type", NpgsqlDbType.Array | NpgsqlDbType.Text, types);
        p.AddWithValue("payload", NpgsqlDbType.Array | NpgsqlDbType.Bytea, payloads);
        p.AddWithValue("skip", NpgsqlDbType.Array | NpgsqlDbType.Boolean, skips);
        p.AddWithValue("note", NpgsqlDbType.Array | NpgsqlDbType.Text, notes);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        return command;
    }

    public async Task<IReadOnlyList<WebhookLeasedJob>> LeaseAsync(IReadOnlyCollection<string> sources, int max, DateTimeOffset now, TimeSpan visibility, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (max <= 0 || sources.Count == 0)
        {
            return [];
        }

        await using var batch = Batch(LeaseSql, out var p);
        p.AddWithValue("sources", NpgsqlDbType.Array | NpgsqlDbType.Text, sources.ToArray());
        p.AddWithValue("max", NpgsqlDbType.Integer, max);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        p.AddWithValue("until", NpgsqlDbType.TimestampTz, (now + visibility).UtcDateTime);

        // Not cancelled half-way either: a lease committed but never read would hide its jobs until it runs out.
        var jobs = new List<WebhookLeasedJob>();
        await using var reader = await ReadAsync(batch, CancellationToken.None);
        while (await reader.ReadAsync(CancellationToken.None))
        {
            var kind = WebhookRows.Kind(reader.GetString(1));
            WebhookResult? result = null;
            if (kind == WebhookJobKind.Deliver && !reader.IsDBNull(9))
            {
                result = ReadResult(reader, 9);
            }

            jobs.Add(new WebhookLeasedJob(
                reader.GetInt64(0),
                kind,
                reader.GetString(2),
                reader.GetString(5),
                reader.GetString(6),
                reader.GetFieldValue<byte[]>(7),
                At(reader, 8),
                reader.GetInt32(3),
                reader.GetInt32(4),
                result));
        }

        return jobs;
    }

    public async Task<bool> ExtendLeaseAsync(long jobId, int attempt, DateTimeOffset until, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await using var batch = Batch("UPDATE webhook_jobs SET available_at = @until WHERE id = @id AND status = 'leased' AND attempts = @attempt", out var p);
        p.AddWithValue("until", NpgsqlDbType.TimestampTz, until.UtcDateTime);
        p.AddWithValue("id", NpgsqlDbType.Bigint, jobId);
        p.AddWithValue("attempt", NpgsqlDbType.Integer, attempt);
        return await ExecuteAsync(batch) == 1;
    }

    public Task<bool> CompleteAsync(WebhookLeasedJob job, WebhookResult? result, WebhookAttempt attempt, bool enqueueDelivery, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var processed = job.Kind == WebhookJobKind.Process && result is not null;
        var status = job.Kind == WebhookJobKind.Process && result is null ? WebhookJobStatus.Skipped : WebhookJobStatus.Completed;
        return FinishAsync(job, status, now, now, null, attempt, processed ? result : null, enqueueDelivery && processed, cancellationToken);
    }

    public Task<bool> FailAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset nextAttemptAt, DateTimeOffset now, CancellationToken cancellationToken) =>
        FinishAsync(job, WebhookJobStatus.Failed, nextAttemptAt, now, attempt.Error, attempt, null, false, cancellationToken);

    public Task<bool> DeadLetterAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset now, CancellationToken cancellationToken) =>
        FinishAsync(job, WebhookJobStatus.Dead, now, now, attempt.Error, attempt, null, false, cancellationToken);

    public async Task ReleaseAsync(WebhookLeasedJob job, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await using var batch = Batch("""
            UPDATE webhook_jobs SET status = CASE WHEN tries > 1 THEN 'failed' ELSE 'waiting' END, tries = tries - 1, available_at = @now, updated_at = @now
            WHERE id = @id AND status = 'leased' AND attempts = @attempt
            """, out var p);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        p.AddWithValue("id", NpgsqlDbType.Bigint, job.JobId);
        p.AddWithValue("attempt", NpgsqlDbType.Integer, job.Attempt);
        await ExecuteAsync(batch);
    }

    public async Task<WebhookReplayOutcome> ReplayAsync(string source, string eventId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await using var batch = Batch("""
            WITH e AS (
              SELECT id FROM webhook_events WHERE source = @source AND event_id = @event_id
            ), replayed AS (
              UPDATE webhook_jobs SET status = 'waiting', tries = 0, available_at = @now, enqueued_at = @now, updated_at = @now
              WHERE event IN (SELECT id FROM e) AND status IN ('dead', 'failed')
              RETURNING 1
            )
            SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM replayed)
            """, out var p);
        p.AddWithValue("source", NpgsqlDbType.Text, source);
        p.AddWithValue("event_id", NpgsqlDbType.Text, eventId);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        await using var reader = await ReadAsync(batch, CancellationToken.None);
        await reader.ReadAsync(CancellationToken.None);
        return reader.GetInt64(0) == 0 ? WebhookReplayOutcome.NotFound
            : reader.GetInt64(1) > 0 ? WebhookReplayOutcome.Replayed
            : WebhookReplayOutcome.NothingToReplay;
    }

    public async Task<int> ReplayDeadAsync(string? source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await using var batch = Batch("""
            UPDATE webhook_jobs SET status = 'waiting', tries = 0, available_at = @now, enqueued_at = @now, updated_at = @now
            WHERE status = 'dead' AND (@source::text IS NULL OR source = @source)
            """, out var p);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        p.AddWithValue("source", NpgsqlDbType.Text, (object?)source ?? DBNull.Value);
        return await ExecuteAsync(batch);
    }

    public async Task<int> PurgeDeadAsync(string? source, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();

        // The events whose jobs are all gone go too (every event has a process job, so these are the only ones left
        // with none). A CTE sees the table as it was, hence the deleted jobs excluded by id.
        await using var batch = Batch("""
            WITH purged AS (
              DELETE FROM webhook_jobs WHERE status = 'dead' AND (@source::text IS NULL OR source = @source)
              RETURNING id, event
            ), orphans AS (
              DELETE FROM webhook_events e
              WHERE e.id IN (SELECT event FROM purged)
                AND NOT EXISTS (SELECT 1 FROM webhook_jobs j WHERE j.event = e.id AND j.id NOT IN (SELECT id FROM purged))
            )
            SELECT count(*) FROM purged
            """, out var p);
        p.AddWithValue("source", NpgsqlDbType.Text, (object?)source ?? DBNull.Value);
        await using var reader = await ReadAsync(batch, CancellationToken.None);
        await reader.ReadAsync(CancellationToken.None);
        return (int)reader.GetInt64(0);
    }

    public async Task<int> PurgeFinishedAsync(DateTimeOffset before, int max, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();

        // Events are numbered in arrival order: the first one at or after the cut bounds the search by id. Jobs and
        // attempts go with their event (ON DELETE CASCADE); results are keyed by (source, event id).
        await using var batch = Batch("""
            WITH victims AS (
              SELECT e.id, e.source, e.event_id FROM webhook_events e
              WHERE e.id < COALESCE((SELECT id FROM webhook_events WHERE received_at >= @before ORDER BY id LIMIT 1), 9223372036854775807)
                AND e.received_at < @before
                AND NOT EXISTS (SELECT 1 FROM webhook_jobs j WHERE j.event = e.id AND j.status NOT IN ('completed', 'skipped'))
              ORDER BY e.id LIMIT @max
            ), results AS (
              DELETE FROM webhook_results r USING victims v WHERE r.source = v.source AND r.event_id = v.event_id
            ), events AS (
              DELETE FROM webhook_events e USING victims v WHERE e.id = v.id RETURNING 1
            )
            SELECT count(*) FROM events
            """, out var p);
        p.AddWithValue("before", NpgsqlDbType.TimestampTz, before.UtcDateTime);
        p.AddWithValue("max", NpgsqlDbType.Integer, max);
        await using var reader = await ReadAsync(batch, CancellationToken.None);
        await reader.ReadAsync(CancellationToken.None);
        return (int)reader.GetInt64(0);
    }

    public async Task<IReadOnlyList<WebhookQueueStats>> StatsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand("""
            SELECT source, kind, status, count(*), min(enqueued_at), count(*) FILTER (WHERE status = 'leased' AND available_at <= @now)
            FROM webhook_jobs GROUP BY source, kind, status
            """);
        command.Parameters.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        var stats = new WebhookRows.StatsBuilder();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            stats.Add(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), At(reader, 4), reader.GetInt64(5));
        }

        return stats.Build();
    }

    public async Task<IReadOnlyList<WebhookEventSummary>> ListAsync(WebhookListQuery query, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand();
        var where = new List<string>();
        if (query.Source is not null)
        {
            where.Add("e.source = @source");
            command.Parameters.AddWithValue("source", NpgsqlDbType.Text, query.Source);
        }

        if (query.Status is { } status)
        {
            if (status == WebhookJobStatus.Dead)
            {
                where.Add("(j.status = 'dead' OR d.status = 'dead')");
            }
            else
            {
                where.Add("j.status = @status");
                command.Parameters.AddWithValue("status", NpgsqlDbType.Text, status.Name());
            }
        }

        if (query.Before is { } before)
        {
            where.Add("e.id < @before");
            command.Parameters.AddWithValue("before", NpgsqlDbType.Bigint, before);
        }

        command.CommandText = $"""
            SELECT e.id, e.source, e.event_id, e.event_type, e.received_at, j.status, j.attempts, j.last_error, j.updated_at, d.status
            FROM webhook_events e
            JOIN webhook_jobs j ON j.event = e.id AND j.kind = 'process'
            LEFT JOIN webhook_jobs d ON d.event = e.id AND d.kind = 'deliver'
            {(where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where))}
            ORDER BY e.id DESC LIMIT @limit
            """;
        command.Parameters.AddWithValue("limit", NpgsqlDbType.Integer, Math.Clamp(query.Limit, 1, 1000));
        var list = new List<WebhookEventSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookEventSummary(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                At(reader, 4),
                WebhookRows.Status(reader.GetString(5)),
                reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                At(reader, 8),
                reader.IsDBNull(9) ? null : WebhookRows.Status(reader.GetString(9))));
        }

        return list;
    }

    public async Task<IReadOnlyList<WebhookEventDetail>> FindAsync(string eventId, string? source, CancellationToken cancellationToken)
    {
        await using var connection = await Source.OpenConnectionAsync(cancellationToken);
        var events = new List<(long Row, string Source, string Type, byte[] Payload, DateTimeOffset Received)>();
        await using (var command = new NpgsqlCommand(
            "SELECT id, source, event_type, payload, received_at FROM webhook_events WHERE event_id = @event_id AND (@source::text IS NULL OR source = @source) ORDER BY id",
            connection))
        {
            command.Parameters.AddWithValue("event_id", NpgsqlDbType.Text, eventId);
            command.Parameters.AddWithValue("source", NpgsqlDbType.Text, (object?)source ?? DBNull.Value);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                events.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<byte[]>(3), At(reader, 4)));
            }
        }

        var details = new List<WebhookEventDetail>();
        foreach (var e in events)
        {
            var jobs = new List<WebhookJobDetail>();
            await using (var command = new NpgsqlCommand(
                "SELECT id, kind, status, attempts, tries, available_at, last_error, updated_at FROM webhook_jobs WHERE event = @event ORDER BY id",
                connection))
            {
                command.Parameters.AddWithValue("event", NpgsqlDbType.Bigint, e.Row);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    jobs.Add(new WebhookJobDetail(
                        reader.GetInt64(0),
                        WebhookRows.Kind(reader.GetString(1)),
                        WebhookRows.Status(reader.GetString(2)),
                        reader.GetInt32(3),
                        reader.GetInt32(4),
                        At(reader, 5),
                        reader.IsDBNull(6) ? null : reader.GetString(6),
                        At(reader, 7),
                        []));
                }
            }

            for (var j = 0; j < jobs.Count; j++)
            {
                var history = new List<WebhookAttempt>();
                await using var command = new NpgsqlCommand(
                    "SELECT attempt, started_at, duration_ms, outcome, status, error, request_id FROM webhook_attempts WHERE job = @job ORDER BY attempt",
                    connection);
                command.Parameters.AddWithValue("job", NpgsqlDbType.Bigint, jobs[j].JobId);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    history.Add(new WebhookAttempt(
                        reader.GetInt32(0),
                        At(reader, 1),
                        reader.GetDouble(2),
                        reader.GetString(3),
                        reader.IsDBNull(4) ? null : reader.GetInt32(4),
                        reader.IsDBNull(5) ? null : reader.GetString(5),
                        reader.IsDBNull(6) ? null : reader.GetString(6)));
                }

                jobs[j] = jobs[j] with { History = history };
            }

            WebhookResult? result = null;
            await using (var command = new NpgsqlCommand(
                "SELECT model, text, finish_reason, prompt_tokens, completion_tokens, cost_nanos, latency_ms, request_id, completed_at FROM webhook_results WHERE source = @source AND event_id = @event_id",
                connection))
            {
                command.Parameters.AddWithValue("source", NpgsqlDbType.Text, e.Source);
                command.Parameters.AddWithValue("event_id", NpgsqlDbType.Text, eventId);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                if (await reader.ReadAsync(cancellationToken))
                {
                    result = ReadResult(reader, 0);
                }
            }

            details.Add(new WebhookEventDetail(e.Row, e.Source, eventId, e.Type, e.Received, e.Payload, jobs, result));
        }

        return details;
    }

    /// <summary>Marks a leased job (fenced by its attempt), records the attempt and, for a process job, its result; one statement.</summary>
    private async Task<bool> FinishAsync(
        WebhookLeasedJob job,
        WebhookJobStatus status,
        DateTimeOffset availableAt,
        DateTimeOffset now,
        string? error,
        WebhookAttempt attempt,
        WebhookResult? result,
        bool enqueueDelivery,
        CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await using var batch = Batch(FinishSql, out var p);
        p.AddWithValue("has_result", NpgsqlDbType.Boolean, result is not null);
        p.AddWithValue("source", NpgsqlDbType.Text, job.Source);
        p.AddWithValue("event_id", NpgsqlDbType.Text, job.EventId);
        p.AddWithValue("model", NpgsqlDbType.Text, (object?)result?.Model ?? DBNull.Value);
        p.AddWithValue("text", NpgsqlDbType.Text, (object?)result?.Text ?? DBNull.Value);
        p.AddWithValue("finish", NpgsqlDbType.Text, (object?)result?.FinishReason ?? DBNull.Value);
        p.AddWithValue("prompt", NpgsqlDbType.Integer, result?.PromptTokens ?? 0);
        p.AddWithValue("completion", NpgsqlDbType.Integer, result?.CompletionTokens ?? 0);
        p.AddWithValue("cost", NpgsqlDbType.Bigint, result is null ? 0L : UsageRows.ToNanos(result.CostUsd));
        p.AddWithValue("latency", NpgsqlDbType.Double, result?.LatencyMs ?? 0d);
        p.AddWithValue("request", NpgsqlDbType.Text, (object?)result?.RequestId ?? DBNull.Value);
        p.AddWithValue("completed", NpgsqlDbType.TimestampTz, (result?.CompletedAt ?? now).UtcDateTime);
        p.AddWithValue("status", NpgsqlDbType.Text, status.Name());
        p.AddWithValue("available", NpgsqlDbType.TimestampTz, availableAt.UtcDateTime);
        p.AddWithValue("now", NpgsqlDbType.TimestampTz, now.UtcDateTime);
        p.AddWithValue("error", NpgsqlDbType.Text, (object?)WebhookRows.Truncate(error) ?? DBNull.Value);
        p.AddWithValue("id", NpgsqlDbType.Bigint, job.JobId);
        p.AddWithValue("attempt", NpgsqlDbType.Integer, job.Attempt);
        p.AddWithValue("number", NpgsqlDbType.Integer, attempt.Number);
        p.AddWithValue("started", NpgsqlDbType.TimestampTz, attempt.StartedAt.UtcDateTime);
        p.AddWithValue("duration", NpgsqlDbType.Double, attempt.DurationMs);
        p.AddWithValue("outcome", NpgsqlDbType.Text, attempt.Outcome);
        p.AddWithValue("http_status", NpgsqlDbType.Integer, (object?)attempt.Status ?? DBNull.Value);
        p.AddWithValue("attempt_error", NpgsqlDbType.Text, (object?)WebhookRows.Truncate(attempt.Error) ?? DBNull.Value);
        p.AddWithValue("attempt_request", NpgsqlDbType.Text, (object?)attempt.RequestId ?? DBNull.Value);
        p.AddWithValue("deliver", NpgsqlDbType.Boolean, enqueueDelivery);

        await using var reader = await ReadAsync(batch, CancellationToken.None);
        await reader.ReadAsync(CancellationToken.None);
        return reader.GetInt64(0) == 1;
    }

    /// <summary>The <c>synchronous_commit</c> in force inside the store's write transactions (for tests).</summary>
    internal async Task<string> CommitSettingAsync(CancellationToken cancellationToken)
    {
        await using var batch = Batch("SELECT current_setting('synchronous_commit')", out _);
        await using var reader = await ReadAsync(batch, cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetString(0);
    }

    /// <summary>A batch (one round trip, one transaction) that starts with the durable-commit guard.</summary>
    private NpgsqlBatch Batch()
    {
        var batch = Source.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(DurableCommit));
        return batch;
    }

    /// <summary>A batch: the durable-commit guard, then <paramref name="sql"/> (whose parameters are returned).</summary>
    private NpgsqlBatch Batch(string sql, out NpgsqlParameterCollection parameters)
    {
        var batch = Batch();
        var command = new NpgsqlBatchCommand(sql);
        batch.BatchCommands.Add(command);
        parameters = command.Parameters;
        return batch;
    }

    /// <summary>Runs a batch and positions the reader on the statement's rows (past the guard's).</summary>
    private static async Task<NpgsqlDataReader> ReadAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        return reader;
    }

    /// <summary>Runs a batch; the rows the statement changed.</summary>
    private static async Task<int> ExecuteAsync(NpgsqlBatch batch)
    {
        await batch.ExecuteNonQueryAsync(CancellationToken.None);
        return batch.BatchCommands[1].RecordsAffected;
    }

    private static WebhookResult ReadResult(NpgsqlDataReader reader, int first) => new()
    {
        Model = reader.GetString(first),
        Text = reader.GetString(first + 1),
        FinishReason = reader.IsDBNull(first + 2) ? null : reader.GetString(first + 2),
        PromptTokens = reader.GetInt32(first + 3),
        CompletionTokens = reader.GetInt32(first + 4),
        CostUsd = reader.GetInt64(first + 5) / UsageRows.NanosPerDollar,
        LatencyMs = reader.GetDouble(first + 6),
        RequestId = reader.GetString(first + 7),
        CompletedAt = At(reader, first + 8),
    };

    private static DateTimeOffset At(NpgsqlDataReader reader, int ordinal) => new(reader.GetFieldValue<DateTime>(ordinal), TimeSpan.Zero);
}
