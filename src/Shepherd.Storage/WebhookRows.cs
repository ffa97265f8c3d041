namespace Shepherd.Storage;

using Shepherd.Webhooks;

/// <summary>What the webhook job stores share whatever the database: reading statuses and kinds back, and the queue statistics.</summary>
internal static class WebhookRows
{
    public static WebhookJobStatus Status(string text) => WebhookJobNames.ParseStatus(text) ?? WebhookJobStatus.Skipped;

    public static WebhookJobKind Kind(string text) => text == WebhookJobKind.Deliver.Name() ? WebhookJobKind.Deliver : WebhookJobKind.Process;

    /// <summary>A job's last error as stored: at most 2,000 characters.</summary>
    public static string? Truncate(string? error) => error is { Length: > 2000 } ? error[..2000] + "…" : error;

    /// <summary>Folds the rows of "count jobs per source, kind and status" into one line per source and kind.</summary>
    public sealed class StatsBuilder
    {
        private readonly Dictionary<(string, WebhookJobKind), WebhookQueueStats> _stats = [];

        /// <param name="oldest">The oldest job's enqueue time in this group.</param>
        /// <param name="expired">Leased jobs whose lease ran out (their worker died): they count as waiting again.</param>
        public void Add(string source, string kind, string status, long count, DateTimeOffset oldest, long expired)
        {
            var key = (source, Kind(kind));
            var s = _stats.GetValueOrDefault(key) ?? new WebhookQueueStats(key.source, key.Item2);
            _stats[key] = Status(status) switch
            {
                WebhookJobStatus.Waiting => s with { Waiting = s.Waiting + count, OldestWaitingSince = Min(s.OldestWaitingSince, oldest) },
                WebhookJobStatus.Failed => s with { Failed = s.Failed + count, OldestWaitingSince = Min(s.OldestWaitingSince, oldest) },
                WebhookJobStatus.Leased => s with { Leased = s.Leased + count - expired, Waiting = s.Waiting + expired },
                WebhookJobStatus.Completed => s with { Completed = s.Completed + count },
                WebhookJobStatus.Dead => s with { Dead = s.Dead + count },
                _ => s with { Skipped = s.Skipped + count },
            };
        }

        public IReadOnlyList<WebhookQueueStats> Build() => [.. _stats.Values.OrderBy(s => s.Source, StringComparer.Ordinal).ThenBy(s => s.Kind)];

        private static DateTimeOffset? Min(DateTimeOffset? a, DateTimeOffset b) => a is { } x && x < b ? x : b;
    }
}
