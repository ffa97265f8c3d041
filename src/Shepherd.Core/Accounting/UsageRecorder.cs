namespace Shepherd.Accounting;

using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Configuration;

/// <summary>
/// Takes one usage record per request off the request path and writes them to the usage store in batches.
/// </summary>
/// <remarks>
/// <see cref="Write"/> only enqueues (a bounded channel); a background loop inserts batches in one transaction each.
/// When the queue is full, or a batch cannot be written (the store is down, locked or slow), the records are appended
/// to a local spill file (JSON lines, fsync'd) and replayed once the store answers again; the store skips records it
/// already holds (by request id), so a replay never doubles anything. Nothing is dropped unless even the spill file
/// cannot be written, and every spill and drop is counted. Shutdown flushes the queue. One gate serialises the
/// writer loop and <see cref="FlushAsync"/>: the queue has a single reader, and the spill file one replayer.
/// </remarks>
public sealed partial class UsageRecorder : BackgroundService, IUsageSink
{
    private readonly IUsageStore _store;
    private readonly UsageConfig _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<UsageRecord> _queue;
    private readonly ConcurrentQueue<UsageRecord> _overflow = new();
    private readonly object _spillGate = new();
    private readonly SemaphoreSlim _work = new(1, 1);
    private readonly string _spillPath;
    private long _written;
    private long _spilled;
    private long _dropped;
    private long _replayed;
    private int _queued;
    private TaskCompletionSource _batchFull = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopped;
    private DateTimeOffset _nextPurge;

    public UsageRecorder(IUsageStore store, UsageConfig settings, string spillPath, TimeProvider time, ILogger<UsageRecorder> logger)
    {
        _store = store;
        _settings = settings;
        _time = time;
        _logger = logger;
        _spillPath = spillPath;
        _queue = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(settings.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Records the store took as new (replays included; records it already held are not counted).</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Records that went to the spill file (queue full or store unavailable).</summary>
    public long Spilled => Interlocked.Read(ref _spilled);

    /// <summary>Records lost because even the spill file could not be written.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Spilled records the store took as new on replay.</summary>
    public long Replayed => Interlocked.Read(ref _replayed);

    /// <summary>Records waiting in memory.</summary>
    public int Queued => Volatile.Read(ref _queued) + _overflow.Count;

    public string SpillPath => _spillPath;

    public void Write(UsageRecord record)
    {
        if (!_settings.Enabled)
        {
            return;
        }

        if (_queue.Writer.TryWrite(record))
        {
            if (Interlocked.Increment(ref _queued) >= _settings.BatchSize)
            {
                Volatile.Read(ref _batchFull).TrySetResult();
            }

            return;
        }

        if (_stopped)
        {
            // After the final flush (a request that ended after the recorder stopped): straight to the spill file.
            Spill([record]);
            return;
        }

        // Full: never block the request; the writer loop spills these first.
        _overflow.Enqueue(record);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<UsageRecord>(_settings.BatchSize);
        var interval = TimeSpan.FromMilliseconds(_settings.FlushIntervalMs);
        _nextPurge = _time.GetUtcNow();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                // Each pass starts on the thread pool: a store's answer may complete on a socket thread
                // (server.inline_io), and a pass does file I/O (spill, replay) and SQLite's synchronous calls.
                await Task.Yield();
                await _work.WaitAsync(stoppingToken);
                try
                {
                    SpillOverflow();
                    await ReplayAsync(stoppingToken);
                    await PurgeAsync(stoppingToken);
                    Drain(batch);
                    if (batch.Count > 0)
                    {
                        var full = batch.Count == _settings.BatchSize;
                        await WriteOrSpillAsync(batch, stoppingToken);
                        batch.Clear();
                        if (full)
                        {
                            continue; // more may be waiting: no pause between full batches
                        }
                    }
                }
                finally
                {
                    _work.Release();
                }

                // Wait for work, at most one interval (then the housekeeping above runs again).
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                wait.CancelAfter(interval);
                try
                {
                    await _queue.Reader.WaitToReadAsync(wait.Token);
                    await LingerAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                {
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Lets a batch fill: returns when <c>batch_size</c> records wait, or when <paramref name="deadline"/> fires (the
    /// flush interval). Each write pays for a transaction and its statements; under load, writing every few records
    /// as they trickle in cost more CPU than the inserts themselves. Records are at most one interval late.
    /// </summary>
    private async Task LingerAsync(CancellationToken deadline)
    {
        var full = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _batchFull, full);
        if (Volatile.Read(ref _queued) >= _settings.BatchSize)
        {
            return;
        }

        await full.Task.WaitAsync(deadline);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);

        // Closing the queue first: whatever got in is flushed below, whatever comes later is spilled by Write itself.
        // Not cancelled by the host's shutdown deadline: each write has its own timeout, and what cannot be written is
        // spilled (a cancelled flush would lose the queue).
        _stopped = true;
        _queue.Writer.TryComplete();
        await FlushAsync(CancellationToken.None);
    }

    /// <summary>Writes (or spills) everything queued now, and replays the spill file if the store answers (used at shutdown and by tests).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _work.WaitAsync(cancellationToken);
        try
        {
            SpillOverflow();
            var batch = new List<UsageRecord>(_settings.BatchSize);
            var storeDown = false;
            while (true)
            {
                Drain(batch);
                if (batch.Count == 0)
                {
                    break;
                }

                // Once a write failed, the rest goes straight to the spill file: a flush waits for at most one timeout.
                if (storeDown)
                {
                    Spill(batch);
                }
                else
                {
                    storeDown = !await WriteOrSpillAsync(batch, cancellationToken);
                }

                batch.Clear();
            }

            if (!storeDown)
            {
                await ReplayAsync(cancellationToken);
            }
        }
        finally
        {
            _work.Release();
        }
    }

    private void Drain(List<UsageRecord> batch)
    {
        while (batch.Count < _settings.BatchSize && _queue.Reader.TryRead(out var record))
        {
            Interlocked.Decrement(ref _queued);
            batch.Add(record);
        }
    }

    /// <returns>False when the batch had to be spilled.</returns>
    private async Task<bool> WriteOrSpillAsync(List<UsageRecord> batch, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromMilliseconds(_settings.WriteTimeoutMs));
            var stored = await _store.WriteAsync(batch, timeout.Token);
            Interlocked.Add(ref _written, stored);
            return true;
        }
        catch (Exception ex)
        {
            // Cancelled too (the recorder is stopping): the batch was taken off the queue, so it is spilled, not lost.
            LogStoreUnavailable(_logger, batch.Count, ex.GetType().Name);
            Spill(batch);
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            return false;
        }
    }

    private void SpillOverflow()
    {
        if (_overflow.IsEmpty)
        {
            return;
        }

        var records = new List<UsageRecord>();
        while (_overflow.TryDequeue(out var record))
        {
            records.Add(record);
        }

        LogQueueFull(_logger, records.Count);
        Spill(records);
    }

    /// <summary>Appends records to the spill file and syncs it to disk.</summary>
    private void Spill(IReadOnlyList<UsageRecord> records)
    {
        lock (_spillGate)
        {
            try
            {
                var directory = Path.GetDirectoryName(_spillPath);
                if (!string.IsNullOrEmpty(directory))
                {
                    Directory.CreateDirectory(directory);
                }

                using var file = new FileStream(_spillPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 65536, FileOptions.None);
                if (file.Length > 0)
                {
                    // A torn last line (a crash mid-append) is ended first, or the next record would be glued to it and lost.
                    file.Seek(-1, SeekOrigin.End);
                    if (file.ReadByte() != '\n')
                    {
                        file.WriteByte((byte)'\n');
                    }
                }

                file.Seek(0, SeekOrigin.End);
                var line = new StringBuilder();
                foreach (var record in records)
                {
                    line.Clear();
                    line.Append(JsonSerializer.Serialize(record, UsageJsonContext.Default.UsageRecord)).Append('\n');
                    var bytes = Encoding.UTF8.GetBytes(line.ToString());
                    file.Write(bytes);
                }

                file.Flush(flushToDisk: true);
                Interlocked.Add(ref _spilled, records.Count);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Interlocked.Add(ref _dropped, records.Count);
                LogDropped(_logger, ex, records.Count);
            }
        }
    }

    /// <summary>
    /// Writes spilled records back into the store: first a file a previous replay left (it failed, or the process
    /// stopped in the middle), then the current spill file, moved aside first so records spilled meanwhile go to a
    /// fresh one. Each file is deleted once every record in it is stored; at the first failure it stays, to be
    /// replayed later (what was already written is skipped then).
    /// </summary>
    private async Task ReplayAsync(CancellationToken cancellationToken)
    {
        var replaying = _spillPath + ".replay";
        while (true)
        {
            lock (_spillGate)
            {
                if (!File.Exists(replaying))
                {
                    if (!File.Exists(_spillPath))
                    {
                        return;
                    }

                    File.Move(_spillPath, replaying);
                }
            }

            if (!await ReplayFileAsync(replaying, cancellationToken))
            {
                return;
            }
        }
    }

    private async Task<bool> ReplayFileAsync(string replaying, CancellationToken cancellationToken)
    {
        var batch = new List<UsageRecord>(_settings.BatchSize);
        try
        {
            foreach (var line in File.ReadLines(replaying))
            {
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                UsageRecord? record;
                try
                {
                    record = JsonSerializer.Deserialize(line, UsageJsonContext.Default.UsageRecord);
                }
                catch (JsonException)
                {
                    // A torn line (a crash mid-append) is skipped; every complete line was synced.
                    continue;
                }

                if (record is not null)
                {
                    batch.Add(record);
                }

                if (batch.Count == _settings.BatchSize)
                {
                    await WriteReplayAsync(batch, cancellationToken);
                    batch.Clear();
                }
            }

            await WriteReplayAsync(batch, cancellationToken);
            File.Delete(replaying);
            LogReplayed(_logger, Replayed);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store is still unavailable: the file stays and is replayed later.
            LogReplayFailed(_logger, ex.GetType().Name);
            return false;
        }
    }

    private async Task WriteReplayAsync(List<UsageRecord> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMilliseconds(_settings.WriteTimeoutMs));
        var stored = await _store.WriteAsync(batch, timeout.Token);
        Interlocked.Add(ref _written, stored);
        Interlocked.Add(ref _replayed, stored);
    }

    private async Task PurgeAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (now < _nextPurge || _settings.RetentionDays <= 0)
        {
            return;
        }

        _nextPurge = now + TimeSpan.FromHours(1);
        try
        {
            var purged = await _store.PurgeAsync(now - TimeSpan.FromDays(_settings.RetentionDays), cancellationToken);
            if (purged > 0)
            {
                LogPurged(_logger, purged, _settings.RetentionDays);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogPurgeFailed(_logger, ex.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Warning, Message = "Usage store unavailable ({Error}): {Count} record(s) spilled to the local file, to be replayed")]
    private static partial void LogStoreUnavailable(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 51, Level = LogLevel.Warning, Message = "Usage queue full: {Count} record(s) spilled to the local file")]
    private static partial void LogQueueFull(ILogger logger, int count);

    [LoggerMessage(EventId = 52, Level = LogLevel.Error, Message = "{Count} usage record(s) could not be spilled and are lost")]
    private static partial void LogDropped(ILogger logger, Exception exception, int count);

    [LoggerMessage(EventId = 53, Level = LogLevel.Information, Message = "Spilled usage records replayed into the store ({Total} so far)")]
    private static partial void LogReplayed(ILogger logger, long total);

    [LoggerMessage(EventId = 54, Level = LogLevel.Warning, Message = "Replaying spilled usage records failed ({Error}); will retry")]
    private static partial void LogReplayFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 56, Level = LogLevel.Warning, Message = "Purging old usage records failed ({Error}); will retry")]
    private static partial void LogPurgeFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 55, Level = LogLevel.Information, Message = "Purged {Count} usage record(s) older than {Days} days (daily rollups kept)")]
    private static partial void LogPurged(ILogger logger, int count, int days);
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(UsageRecord))]
internal sealed partial class UsageJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
