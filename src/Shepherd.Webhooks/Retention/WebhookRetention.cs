namespace Shepherd.Webhooks.Retention;

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

/// <summary>
/// Deletes finished events older than <c>webhooks.retention_days</c> (with their jobs, attempts and results) once an
/// hour, in slices, so the queue's tables do not grow for ever. Events with work left or in the dead letters stay.
/// </summary>
/// <remarks>With several instances on one database every instance sweeps; a sweep is idempotent.</remarks>
public sealed partial class WebhookRetention(IWebhookJobStore store, int retentionDays, TimeProvider time, ILogger<WebhookRetention> logger) : BackgroundService
{
    /// <summary>Events deleted per statement: each slice is one short write transaction.</summary>
    public const int Slice = 1000;

    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (retentionDays <= 0)
        {
            return;
        }

        // The store's calls may run synchronously (SQLite): never on the host's start-up thread.
        await Task.Yield();
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogSweepFailed(logger, ex.GetType().Name);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One sweep: every finished event received more than <c>retention_days</c> ago.</summary>
    /// <returns>How many events were deleted.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var before = time.GetUtcNow() - TimeSpan.FromDays(retentionDays);
        var total = 0;
        int deleted;
        do
        {
            deleted = await store.PurgeFinishedAsync(before, Slice, cancellationToken);
            total += deleted;
        }
        while (deleted == Slice);

        if (total > 0)
        {
            LogPurged(logger, total, retentionDays);
        }

        return total;
    }

    [LoggerMessage(EventId = 330, Level = LogLevel.Information, Message = "Deleted {Count} finished webhook event(s) older than {Days} days")]
    private static partial void LogPurged(ILogger logger, int count, int days);

    [LoggerMessage(EventId = 331, Level = LogLevel.Warning, Message = "Webhook retention sweep failed ({Error}); will retry next hour")]
    private static partial void LogSweepFailed(ILogger logger, string error);
}
