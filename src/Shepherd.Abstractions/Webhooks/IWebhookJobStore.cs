namespace Shepherd.Webhooks;

/// <summary>
/// The durable queue behind the webhook pipeline: received events, their jobs (process, then optionally deliver),
/// results and attempts. Jobs are leased with a visibility timeout, so a crashed worker's job is leased again once its
/// lease runs out; results are keyed by (source, event id), so processing is at-least-once and its effect exactly-once.
/// </summary>
/// <remarks>
/// Every state change of a leased job is fenced by its attempt number: a worker whose lease ran out (and whose job
/// another worker took) changes nothing. Times are passed in, so callers own the clock (tests use a fake one).
/// SQLite (one host) and PostgreSQL (one queue shared by several instances) implement it; one contract test suite
/// runs against both.
/// </remarks>
public interface IWebhookJobStore
{
    /// <summary>Stores events and their first job in one durable transaction (a group commit).</summary>
    /// <returns>For each event, in order: true when stored, false when an event with the same (source, id) was already there.</returns>
    Task<IReadOnlyList<bool>> EnqueueAsync(IReadOnlyList<WebhookEventDraft> events, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Leases up to <paramref name="max"/> due jobs of the given sources (waiting, retrying, or leased and expired), oldest first.</summary>
    Task<IReadOnlyList<WebhookLeasedJob>> LeaseAsync(IReadOnlyCollection<string> sources, int max, DateTimeOffset now, TimeSpan visibility, CancellationToken cancellationToken);

    /// <summary>Pushes a lease's expiry out (a heartbeat while the job is in flight).</summary>
    /// <returns>False when the lease is no longer this attempt's.</returns>
    Task<bool> ExtendLeaseAsync(long jobId, int attempt, DateTimeOffset until, CancellationToken cancellationToken);

    /// <summary>
    /// Finishes a job: a process job stores its result (first result per event wins) or, without one, is marked skipped;
    /// a delivery job is marked delivered. With <paramref name="enqueueDelivery"/>, a delivery job is queued in the same transaction.
    /// </summary>
    Task<bool> CompleteAsync(WebhookLeasedJob job, WebhookResult? result, WebhookAttempt attempt, bool enqueueDelivery, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Records a failed attempt; the job is due again at <paramref name="nextAttemptAt"/>.</summary>
    Task<bool> FailAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset nextAttemptAt, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Moves a job to the dead letters with its last error.</summary>
    Task<bool> DeadLetterAsync(WebhookLeasedJob job, WebhookAttempt attempt, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Gives a leased job back untried (shutdown): due at once, the try not counted.</summary>
    Task ReleaseAsync(WebhookLeasedJob job, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Makes an event's dead (or retrying) jobs due now with a fresh allowance of tries; the event keeps its id.</summary>
    Task<WebhookReplayOutcome> ReplayAsync(string source, string eventId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Replays every dead job (of one source, or all).</summary>
    /// <returns>How many jobs were replayed.</returns>
    Task<int> ReplayDeadAsync(string? source, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Deletes dead jobs (of one source, or all), and the events left with no job.</summary>
    /// <returns>How many jobs were deleted.</returns>
    Task<int> PurgeDeadAsync(string? source, CancellationToken cancellationToken);

    /// <summary>
    /// Retention: deletes up to <paramref name="max"/> events received before <paramref name="before"/> whose every job
    /// is finished (completed or skipped), with their jobs, attempts and result. Dead, waiting, leased and retrying
    /// jobs keep their event whatever its age. Oldest first; call again until it returns less than <paramref name="max"/>.
    /// </summary>
    /// <returns>How many events were deleted.</returns>
    Task<int> PurgeFinishedAsync(DateTimeOffset before, int max, CancellationToken cancellationToken);
}

/// <summary>Reads for operators: queue statistics, event lists and one event in full.</summary>
public interface IWebhookEventQuery
{
    /// <summary>Job counts per source and kind.</summary>
    Task<IReadOnlyList<WebhookQueueStats>> StatsAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Events, newest first.</summary>
    Task<IReadOnlyList<WebhookEventSummary>> ListAsync(WebhookListQuery query, CancellationToken cancellationToken);

    /// <summary>Every stored event with this id (one per source at most), in full.</summary>
    Task<IReadOnlyList<WebhookEventDetail>> FindAsync(string eventId, string? source, CancellationToken cancellationToken);
}

public enum WebhookJobKind
{
    /// <summary>Render the rule's prompt and call the model.</summary>
    Process,

    /// <summary>POST the result to the source's <c>deliver.url</c>.</summary>
    Deliver,
}

/// <summary>The names of job kinds and statuses, the same in the database, the admin API and metrics.</summary>
public static class WebhookJobNames
{
    /// <summary><c>process</c> or <c>deliver</c>.</summary>
    public static string Name(this WebhookJobKind kind) => kind == WebhookJobKind.Process ? "process" : "deliver";

    /// <summary><c>waiting</c>, <c>leased</c>, <c>completed</c>, <c>failed</c>, <c>dead</c> or <c>skipped</c>.</summary>
    public static string Name(this WebhookJobStatus status) => status switch
    {
        WebhookJobStatus.Waiting => "waiting",
        WebhookJobStatus.Leased => "leased",
        WebhookJobStatus.Completed => "completed",
        WebhookJobStatus.Failed => "failed",
        WebhookJobStatus.Dead => "dead",
        _ => "skipped",
    };

    /// <summary>The status of that name (exactly as <see cref="Name(WebhookJobStatus)"/> writes it), or null.</summary>
    public static WebhookJobStatus? ParseStatus(string name) => name switch
    {
        "waiting" => WebhookJobStatus.Waiting,
        "leased" => WebhookJobStatus.Leased,
        "completed" => WebhookJobStatus.Completed,
        "failed" => WebhookJobStatus.Failed,
        "dead" => WebhookJobStatus.Dead,
        "skipped" => WebhookJobStatus.Skipped,
        _ => null,
    };
}

public enum WebhookJobStatus
{
    /// <summary>Due (or due soon), never tried since it was queued or replayed.</summary>
    Waiting,

    /// <summary>A worker holds it until its lease runs out.</summary>
    Leased,

    Completed,

    /// <summary>An attempt failed; it is retried at its next attempt time.</summary>
    Failed,

    /// <summary>In the dead letters: out of tries, or a fault that retrying cannot fix.</summary>
    Dead,

    /// <summary>Stored but not processed: a <c>skip</c> rule, or no rule matched.</summary>
    Skipped,
}

/// <summary>An event to store, verified and parsed.</summary>
/// <param name="Skip">No model call: stored as skipped, with <paramref name="Note"/> saying why.</param>
public sealed record WebhookEventDraft(string Source, string EventId, string EventType, ReadOnlyMemory<byte> Payload, bool Skip = false, string? Note = null);

/// <summary>A job a worker holds.</summary>
/// <param name="Attempt">The attempt number over the job's whole life (fences every state change; part of the request id).</param>
/// <param name="Try">Tries since the job was queued or replayed (what the retry limit counts).</param>
/// <param name="Result">For a delivery job: the result to deliver.</param>
public sealed record WebhookLeasedJob(
    long JobId,
    WebhookJobKind Kind,
    string Source,
    string EventId,
    string EventType,
    ReadOnlyMemory<byte> Payload,
    DateTimeOffset ReceivedAt,
    int Attempt,
    int Try,
    WebhookResult? Result = null);

/// <summary>The outcome of processing an event: what the model said and what it cost.</summary>
public sealed record WebhookResult
{
    public required string Model { get; init; }

    public required string Text { get; init; }

    public string? FinishReason { get; init; }

    public int PromptTokens { get; init; }

    public int CompletionTokens { get; init; }

    public decimal CostUsd { get; init; }

    /// <summary>The model call's duration.</summary>
    public double LatencyMs { get; init; }

    /// <summary>The gateway request id of the call that produced it (its usage record).</summary>
    public required string RequestId { get; init; }

    public DateTimeOffset CompletedAt { get; init; }
}

/// <summary>One attempt at a job, kept for inspection.</summary>
/// <param name="Outcome"><c>success</c>, <c>retry</c>, <c>dead</c> or <c>skipped</c>.</param>
/// <param name="Status">The HTTP status seen, if any.</param>
public sealed record WebhookAttempt(int Number, DateTimeOffset StartedAt, double DurationMs, string Outcome, int? Status, string? Error, string? RequestId = null);

public enum WebhookReplayOutcome
{
    Replayed,
    NotFound,

    /// <summary>Nothing to replay: the event is completed, skipped, waiting or in flight.</summary>
    NothingToReplay,
}

/// <summary>Job counts of one source and kind.</summary>
public sealed record WebhookQueueStats(string Source, WebhookJobKind Kind)
{
    public long Waiting { get; init; }

    public long Leased { get; init; }

    public long Completed { get; init; }

    public long Failed { get; init; }

    public long Dead { get; init; }

    public long Skipped { get; init; }

    /// <summary>When the longest-waiting job was queued (waiting or retrying), if any.</summary>
    public DateTimeOffset? OldestWaitingSince { get; init; }
}

/// <summary>A page of events, newest first.</summary>
/// <param name="Status">Events whose processing job has this status; <see cref="WebhookJobStatus.Dead"/> also matches a dead delivery.</param>
/// <param name="Before">Events stored before this sequence number (paging).</param>
public sealed record WebhookListQuery(string? Source = null, WebhookJobStatus? Status = null, long? Before = null, int Limit = 50);

/// <summary>One event in a list.</summary>
/// <param name="Sequence">The store's order of arrival (for paging).</param>
public sealed record WebhookEventSummary(
    long Sequence,
    string Source,
    string EventId,
    string EventType,
    DateTimeOffset ReceivedAt,
    WebhookJobStatus Status,
    int Attempts,
    string? LastError,
    DateTimeOffset UpdatedAt,
    WebhookJobStatus? DeliveryStatus);

/// <summary>One event in full: payload, jobs with their attempts, result.</summary>
public sealed record WebhookEventDetail(
    long Sequence,
    string Source,
    string EventId,
    string EventType,
    DateTimeOffset ReceivedAt,
    ReadOnlyMemory<byte> Payload,
    IReadOnlyList<WebhookJobDetail> Jobs,
    WebhookResult? Result);

/// <summary>A job of an event, with every attempt.</summary>
public sealed record WebhookJobDetail(
    long JobId,
    WebhookJobKind Kind,
    WebhookJobStatus Status,
    int Attempts,
    int Tries,
    DateTimeOffset NextAttemptAt,
    string? LastError,
    DateTimeOffset UpdatedAt,
    IReadOnlyList<WebhookAttempt> History);
