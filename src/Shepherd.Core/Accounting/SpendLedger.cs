namespace Shepherd.Accounting;

using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Keys;
using Shepherd.Limits;

/// <summary>
/// Persists what keys spent, behind the request path. Settlement only adds to a key's in-memory counters; every
/// 250 ms the ledger takes each key's unsaved spend and writes one row per key in one transaction — so the write
/// load follows the number of active keys, not the request rate. A failed write is retried; shutdown flushes.
/// </summary>
/// <remarks>The in-memory counters are the truth while the process runs; the store is how they survive a restart.
/// A crash loses at most the last interval (≈250 ms) of spend counters.</remarks>
public sealed partial class SpendLedger(ISpendStore store, KeyRegistry registry, ILogger<SpendLedger> logger) : BackgroundService, ISpendRecorder
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentQueue<SpendDelta> _spilled = new();
    private readonly List<SpendDelta> _batch = [];
    private readonly SemaphoreSlim _writing = new(1, 1);

    /// <summary>Takes the rest of an ended day (rare: once per key per day).</summary>
    public void Record(SpendDelta delta) => _spilled.Enqueue(delta);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await FlushAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The shutdown timeout won; what is unsaved is lost (and was logged as failing).
        }
    }

    /// <summary>Saves everything unsaved now (also used by tests).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _writing.WaitAsync(cancellationToken);
        try
        {
            while (_spilled.TryDequeue(out var delta))
            {
                _batch.Add(delta);
            }

            foreach (var key in registry.All)
            {
                if (key.Runtime.TakeUnsaved(out var day, out var spend, out var credit))
                {
                    _batch.Add(new SpendDelta(key.Id, day, spend, credit));
                }
            }

            while (_batch.Count > 0)
            {
                try
                {
                    await store.ApplyAsync(_batch, CancellationToken.None);
                    _batch.Clear();
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The batch stays and is written with the next one; nothing is lost while the process lives.
                    LogWriteFailed(logger, ex, _batch.Count);
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                }
            }
        }
        finally
        {
            _writing.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Saving the spend of {Count} key(s) failed; retrying")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);
}
