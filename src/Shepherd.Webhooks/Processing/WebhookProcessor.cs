namespace Shepherd.Webhooks.Processing;

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Resilience;
using Shepherd.Webhooks.Delivery;
using Shepherd.Webhooks.Telemetry;

/// <summary>The key processing falls back to when a source names none.</summary>
public sealed record WebhookCredentials(string MasterKey);

/// <summary>
/// The workers: lease due jobs (up to <c>webhooks.workers</c> at once), run each (a model call through the gateway, or
/// a delivery), and record the outcome: a result, a retry at the next backoff time, or a dead letter.
/// </summary>
/// <remarks>
/// <para>A job's lease is renewed every third of <c>lease_s</c> while it runs, so a long model call keeps it, and a
/// crashed process's jobs come back after at most <c>lease_s</c>. Processing is at-least-once; the first result per
/// event wins, so the effect is exactly-once.</para>
/// <para>Retries: exponential backoff from <c>retry.base_ms</c> with full jitter, capped at <c>retry.max_ms</c>, never
/// sooner than a 429's <c>retry-after</c>; after <c>retry.max_attempts</c> tries, the dead letters. A caller fault
/// (400, 401, 403, 404, 413, 422: the rendered request is invalid or not allowed) goes to the dead letters at once.</para>
/// <para>At shutdown, jobs in flight are given back untried.</para>
/// </remarks>
public sealed partial class WebhookProcessor : BackgroundService
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    private readonly WebhookRuntime _runtime;
    private readonly IWebhookJobStore _store;
    private readonly LoopbackGateway _gateway;
    private readonly ResultDelivery _delivery;
    private readonly WebhookMetrics _metrics;
    private readonly WebhookCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _callTimeout;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ConcurrentDictionary<long, Task> _inFlight = new();

    public WebhookProcessor(
        WebhookRuntime runtime,
        IWebhookJobStore store,
        LoopbackGateway gateway,
        ResultDelivery delivery,
        WebhookMetrics metrics,
        WebhookCredentials credentials,
        TimeProvider time,
        ILogger<WebhookProcessor> logger,
        TimeSpan callTimeout)
    {
        _runtime = runtime;
        _store = store;
        _gateway = gateway;
        _delivery = delivery;
        _metrics = metrics;
        _credentials = credentials;
        _time = time;
        _logger = logger;
        _callTimeout = callTimeout;
    }

    /// <summary>The jitter source: a uniform value in [0, 1) (tests fix it).</summary>
    public Func<double> Jitter { get; set; } = Random.Shared.NextDouble;

    /// <summary>New work was stored: wake an idle dispatcher now rather than at its next poll.</summary>
    public void Notify() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_runtime.Enabled || _runtime.Workers == 0)
        {
            return;
        }

        try
        {
            await _gateway.Address.WaitAsync(stoppingToken);
            using var slots = new SemaphoreSlim(_runtime.Workers, _runtime.Workers);
            while (!stoppingToken.IsCancellationRequested)
            {
                await slots.WaitAsync(stoppingToken);
                var free = 1;
                while (free < _runtime.Workers && slots.Wait(0))
                {
                    free++;
                }

                IReadOnlyList<WebhookLeasedJob> jobs;
                try
                {
                    jobs = await _store.LeaseAsync(_runtime.SourceNames, free, _time.GetUtcNow(), _runtime.Lease, stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogLeaseFailed(_logger, ex);
                    jobs = [];
                }

                if (jobs.Count < free)
                {
                    slots.Release(free - jobs.Count);
                }

                foreach (var job in jobs)
                {
                    _inFlight[job.JobId] = RunAndReleaseAsync(job, slots, stoppingToken);
                }

                if (jobs.Count == 0)
                {
                    await WaitForWorkAsync(stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            await Task.WhenAll(_inFlight.Values);
        }
    }

    private async Task RunAndReleaseAsync(WebhookLeasedJob job, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            await RunAsync(job, stoppingToken);
        }
        finally
        {
            _inFlight.TryRemove(job.JobId, out _);
            slots.Release();
        }
    }

    private async Task WaitForWorkAsync(CancellationToken stoppingToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var signal = _wake.Reader.WaitToReadAsync(wait.Token).AsTask();
        var poll = Task.Delay(PollInterval, _time, wait.Token);
        await Task.WhenAny(signal, poll);
        await wait.CancelAsync();
        _wake.Reader.TryRead(out _);
        stoppingToken.ThrowIfCancellationRequested();
    }

    /// <summary>Leases up to <paramref name="max"/> due jobs, runs them all and waits for them (for tests and for instances with <c>workers: 0</c> driven from outside).</summary>
    /// <returns>How many jobs ran.</returns>
    public async Task<int> RunOnceAsync(int max = 100, CancellationToken cancellationToken = default)
    {
        var jobs = await _store.LeaseAsync(_runtime.SourceNames, max, _time.GetUtcNow(), _runtime.Lease, cancellationToken);
        await Task.WhenAll(jobs.Select(job => RunAsync(job, cancellationToken)));
        return jobs.Count;
    }

    /// <summary>Runs one leased job and records its outcome.</summary>
    internal async Task RunAsync(WebhookLeasedJob job, CancellationToken stoppingToken)
    {
        var startedAt = _time.GetUtcNow();
        var started = Stopwatch.GetTimestamp();
        GatewayCall call;
        string? requestId = null;
        using (var heartbeatStop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            var heartbeat = HeartbeatAsync(job, heartbeatStop.Token);
            try
            {
                (call, requestId) = await AttemptAsync(job, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                call = null!;
            }
            catch (Exception ex)
            {
                call = new GatewayCall(AttemptVerdict.Retry, null, null, $"unexpected {ex.GetType().Name}: {ex.Message}", null, Stopwatch.GetElapsedTime(started));
            }

            await heartbeatStop.CancelAsync();
            await heartbeat;
        }

        // The answer may have been read on a socket thread (server.inline_io), and what follows waits on the job store
        // (SQLite's calls run synchronously): continue on the thread pool.
        await Task.Yield();
        if (call is null)
        {
            // Shutting down: give the job back untried rather than count a try that never finished.
            try
            {
                await _store.ReleaseAsync(job, _time.GetUtcNow(), CancellationToken.None);
            }
            catch (Exception ex)
            {
                // Its lease runs out and another worker takes it.
                LogRecordFailed(_logger, ex, job.Source, job.EventId);
            }

            return;
        }

        await RecordAsync(job, startedAt, call, requestId);
    }

    /// <summary>One attempt: a delivery, or a model call for the rule that now matches (a skip when none does).</summary>
    private async Task<(GatewayCall Call, string? RequestId)> AttemptAsync(WebhookLeasedJob job, CancellationToken stoppingToken)
    {
        if (!_runtime.ByName.TryGetValue(job.Source, out var source))
        {
            return (new GatewayCall(AttemptVerdict.Dead, null, null, $"the source '{job.Source}' is no longer configured", null, TimeSpan.Zero), null);
        }

        if (job.Kind == WebhookJobKind.Deliver)
        {
            return (source.Deliver is { } delivery
                ? await _delivery.DeliverAsync(job, delivery, stoppingToken)
                : new GatewayCall(AttemptVerdict.Dead, null, null, $"the source '{job.Source}' no longer has a deliver url", null, TimeSpan.Zero), null);
        }

        if (source.Match(job.EventType) is not { Skip: false } rule)
        {
            // The rules changed since the event was stored: it is now skipped.
            return (new GatewayCall(AttemptVerdict.Success, null, null, "no processing rule matches this event type any more", null, TimeSpan.Zero), null);
        }

        var requestId = RequestId(job);
        return (await CallModelAsync(job, source, rule, requestId, stoppingToken), requestId);
    }

    private async Task<GatewayCall> CallModelAsync(WebhookLeasedJob job, WebhookSource source, WebhookRule rule, string requestId, CancellationToken cancellationToken)
    {
        byte[] body;
        try
        {
            using var document = JsonDocument.Parse(job.Payload);
            body = WebhookChatRequest.Build(rule, document.RootElement);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // A value the templates cannot read as text (a lone surrogate escape): retrying renders the same.
            return new GatewayCall(AttemptVerdict.Dead, null, null, $"the event cannot be rendered: {ex.Message}", null, TimeSpan.Zero);
        }

        return await _gateway.CompleteAsync(body, source.Key ?? _credentials.MasterKey, requestId, _callTimeout, cancellationToken);
    }

    private async Task RecordAsync(WebhookLeasedJob job, DateTimeOffset startedAt, GatewayCall call, string? requestId)
    {
        _runtime.ByName.TryGetValue(job.Source, out var source);
        var verdict = call.Verdict;
        var error = call.Error;
        if (verdict == AttemptVerdict.Retry && job.Try >= _runtime.MaxAttempts)
        {
            verdict = AttemptVerdict.Dead;
            error = $"gave up after {job.Try} tries: {error}";
        }

        var outcome = verdict switch
        {
            AttemptVerdict.Success when job.Kind == WebhookJobKind.Process && call.Result is null => "skipped",
            AttemptVerdict.Success => "success",
            AttemptVerdict.Retry => "retry",
            _ => "dead",
        };
        var attempt = new WebhookAttempt(job.Attempt, startedAt, call.Elapsed.TotalMilliseconds, outcome, call.Status, error, requestId);
        await FinishAsync(job, source, verdict == AttemptVerdict.Success ? call.Result : null, attempt, outcome, call.Elapsed, call.RetryAfter);
    }

    private async Task FinishAsync(WebhookLeasedJob job, WebhookSource? source, WebhookResult? result, WebhookAttempt attempt, string outcome, TimeSpan elapsed, TimeSpan? retryAfter = null)
    {
        var now = _time.GetUtcNow();
        try
        {
            switch (outcome)
            {
                case "success" when job.Kind == WebhookJobKind.Process:
                    await _store.CompleteAsync(job, result! with { CompletedAt = now }, attempt, source?.Deliver is not null, now, CancellationToken.None);
                    break;
                case "success":
                case "skipped":
                    await _store.CompleteAsync(job, null, attempt, false, now, CancellationToken.None);
                    break;
                case "retry":
                    var delay = RetryDelay(job.Try, retryAfter);
                    await _store.FailAsync(job, attempt, now + delay, now, CancellationToken.None);
                    LogRetry(_logger, job.Source, job.EventId, job.Kind.ToString(), job.Try, delay.TotalMilliseconds, attempt.Error);
                    break;
                default:
                    await _store.DeadLetterAsync(job, attempt, now, CancellationToken.None);
                    LogDead(_logger, job.Source, job.EventId, job.Kind.ToString(), job.Try, attempt.Error);
                    break;
            }
        }
        catch (Exception ex)
        {
            // Not recorded: the lease runs out and the job is tried again (the result table keeps one result per event).
            LogRecordFailed(_logger, ex, job.Source, job.EventId);
        }

        _metrics.Attempt(job.Source, job.Kind, outcome, elapsed);
    }

    /// <summary>The wait before the next try: exponential with full jitter, capped, never before a rate limit's retry-after (itself capped at a day).</summary>
    public TimeSpan RetryDelay(int tries, TimeSpan? retryAfter) =>
        Backoff.Delay(tries, _runtime.RetryBase, _runtime.RetryMax, retryAfter is { } r ? TimeSpan.FromTicks(Math.Min(r.Ticks, TimeSpan.TicksPerDay)) : null, Jitter());

    private async Task HeartbeatAsync(WebhookLeasedJob job, CancellationToken cancellationToken)
    {
        var period = _runtime.Lease / 3;
        try
        {
            while (true)
            {
                await Task.Delay(period, _time, cancellationToken);
                try
                {
                    if (!await _store.ExtendLeaseAsync(job.JobId, job.Attempt, _time.GetUtcNow() + _runtime.Lease, cancellationToken))
                    {
                        return; // the lease ran out and another worker (maybe on another instance) took the job: nothing left to keep
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // A blip of the database: try again at the next beat, while the lease still holds.
                    LogRenewFailed(_logger, ex, job.Source, job.EventId);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary><c>wh-{source}-{event id}-{attempt}</c>: the gateway request id of one attempt (its usage record, its log line).</summary>
    /// <remarks>An event id that is not a safe request-id fragment is replaced by a short hash of it.</remarks>
    public static string RequestId(WebhookLeasedJob job)
    {
        var id = job.EventId;
        var safe = id.Length <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
        if (!safe)
        {
            id = "h" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)).AsSpan(0, 8));
        }

        return $"wh-{job.Source}-{id}-{job.Attempt}";
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Error, Message = "Webhook workers: leasing jobs failed")]
    private static partial void LogLeaseFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning, Message = "Webhook {Source}/{EventId}: the outcome could not be recorded; the job will be tried again when its lease runs out")]
    private static partial void LogRecordFailed(ILogger logger, Exception exception, string source, string eventId);

    [LoggerMessage(EventId = 314, Level = LogLevel.Warning, Message = "Webhook {Source}/{EventId}: the lease could not be renewed; trying again at the next beat")]
    private static partial void LogRenewFailed(ILogger logger, Exception exception, string source, string eventId);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "Webhook {Source}/{EventId} {Kind} try {Try} failed, retrying in {DelayMs:F0} ms: {Error}")]
    private static partial void LogRetry(ILogger logger, string source, string eventId, string kind, int @try, double delayMs, string? error);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "Webhook {Source}/{EventId} {Kind} moved to the dead letters after {Try} tries: {Error}")]
    private static partial void LogDead(ILogger logger, string source, string eventId, string kind, int @try, string? error);
}
