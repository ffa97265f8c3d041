namespace Shepherd.Accounting;

using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Keys;
using Shepherd.Limits;

/// <summary>
/// Persists what settled requests spent, behind the request path: deltas are queued in memory and written in
/// batches (one transaction each). A failed write is retried with the same batch; shutdown flushes what is queued.
/// </summary>
/// <remarks>The in-memory counters are the truth while the process runs; the store is how they survive a restart.
/// A crash loses at most the last batch interval (≈250 ms) of spend counters.</remarks>
public sealed partial class SpendLedger(ISpendStore store, ILogger<SpendLedger> logger) : BackgroundService, ISpendRecorder
{
    private const int BatchSize = 512;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly Channel<SpendDelta> _queue = Channel.CreateUnbounded<SpendDelta>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<SpendDelta> _batch = new(BatchSize);
    private long _pending;

    /// <summary>Deltas queued and not yet written.</summary>
    public long Pending => Interlocked.Read(ref _pending);

    public void Record(SpendDelta delta)
    {
        Interlocked.Increment(ref _pending);
        _queue.Writer.TryWrite(delta);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                await WriteAvailableAsync(stoppingToken);
                await Task.Delay(Interval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Writes everything queued now (used at shutdown and by tests).</summary>
    public Task FlushAsync(CancellationToken cancellationToken) => WriteAvailableAsync(cancellationToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await WriteAvailableAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The shutdown timeout won; what is still queued is lost (and was logged as failing).
        }
    }

    private readonly SemaphoreSlim _writing = new(1, 1);

    private async Task WriteAvailableAsync(CancellationToken cancellationToken)
    {
        await _writing.WaitAsync(CancellationToken.None);
        try
        {
            while (true)
            {
                while (_batch.Count < BatchSize && _queue.Reader.TryRead(out var delta))
                {
                    _batch.Add(delta);
                }

                if (_batch.Count == 0)
                {
                    return;
                }

                try
                {
                    await store.ApplyAsync(_batch, CancellationToken.None);
                    Interlocked.Add(ref _pending, -_batch.Count);
                    _batch.Clear();
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing {Count} spend record(s) failed; retrying")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);
}
