namespace Shepherd.Webhooks.Health;

using System.Text.Json;

/// <summary>
/// The <c>webhooks</c> section of <c>/health/ready</c>: per configured source, its jobs waiting, leased, completed,
/// failed (retrying), dead and skipped, and how long the oldest unfinished one has waited; deliveries likewise.
/// </summary>
/// <remarks>Read before the response is written (the store is asked once), then written into the readiness JSON. A
/// queue that cannot be read is reported in the section (<c>intake: unavailable</c>); it never makes the gateway
/// unready by itself.</remarks>
public sealed class WebhookQueueReport(WebhookRuntime runtime, IWebhookEventQuery query, TimeProvider time)
{
    /// <summary>Reads the statistics; null when no source is configured (the section is then left out).</summary>
    /// <param name="storageReachable">
    /// Whether the database answered readiness's ping. When it did not, the queue is not asked (that would only wait
    /// for the same failure) and the section says the intake is unavailable: events are answered 503 until it answers.
    /// </param>
    /// <param name="cancellationToken">The readiness request's.</param>
    public async Task<Action<Utf8JsonWriter>?> ReadAsync(bool storageReachable, CancellationToken cancellationToken)
    {
        if (!runtime.Enabled)
        {
            return null;
        }

        if (!storageReachable)
        {
            return Unavailable;
        }

        var now = time.GetUtcNow();
        IReadOnlyList<WebhookQueueStats> stats;
        try
        {
            stats = await query.StatsAsync(now, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return Unavailable;
        }

        return w => Write(w, stats, now);
    }

    private void Unavailable(Utf8JsonWriter w)
    {
        w.WriteStartObject("webhooks"u8);
        w.WriteNumber("workers"u8, runtime.Workers);
        w.WriteString("intake"u8, "unavailable"u8);
        w.WriteString("error"u8, "the webhook queue could not be read; events are refused with 503 (retry) until the database answers");
        w.WriteEndObject();
    }

    private void Write(Utf8JsonWriter w, IReadOnlyList<WebhookQueueStats> stats, DateTimeOffset now)
    {
        w.WriteStartObject("webhooks"u8);
        w.WriteNumber("workers"u8, runtime.Workers);
        w.WriteString("intake"u8, "ok"u8);
        w.WriteStartArray("sources"u8);
        foreach (var source in runtime.Sources)
        {
            w.WriteStartObject();
            w.WriteString("name"u8, source.Name);
            WriteCounts(w, Find(stats, source.Name, WebhookJobKind.Process), now);
            if (source.Deliver is not null)
            {
                w.WriteStartObject("deliveries"u8);
                WriteCounts(w, Find(stats, source.Name, WebhookJobKind.Deliver), now);
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static WebhookQueueStats Find(IReadOnlyList<WebhookQueueStats> stats, string source, WebhookJobKind kind) =>
        stats.FirstOrDefault(s => s.Kind == kind && string.Equals(s.Source, source, StringComparison.Ordinal)) ?? new WebhookQueueStats(source, kind);

    private static void WriteCounts(Utf8JsonWriter w, WebhookQueueStats s, DateTimeOffset now)
    {
        w.WriteNumber("waiting"u8, s.Waiting);
        w.WriteNumber("leased"u8, s.Leased);
        w.WriteNumber("completed"u8, s.Completed);
        w.WriteNumber("failed"u8, s.Failed);
        w.WriteNumber("dead"u8, s.Dead);
        w.WriteNumber("skipped"u8, s.Skipped);
        w.WriteNumber("oldest_waiting_age_s"u8, s.OldestWaitingSince is { } since ? Math.Max(0, Math.Round((now - since).TotalSeconds, 1)) : 0);
    }
}
