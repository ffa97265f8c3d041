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
/// cannot be written, and every spill and drop is counted. Shutdown flushes the queue.
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
    private readonly string _spillPath;
    private long _written;
    private long _spilled;
    private long _dropped;
    private long _replayed;
    private int _queued;
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

    /// <summary>Records written to the store (replays included).</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Records that went to the spill file (queue full or store unavailable).</summary>
    public long Spilled => Interlocked.Read(ref _spilled);

    /// <summary>Records lost because even the spill file could not be written.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

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
            Interlocked.Increment(ref _queued);
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
                SpillOverflow();
                await ReplayAsync(stoppingToken);
                await PurgeAsync(stoppingToken);

                // Wait for work, at most one interval (then the housekeeping above runs again); take what is there.
                using (var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
                {
                    wait.CancelAfter(interval);
                    try
                    {
                        await _queue.Reader.WaitToReadAsync(wait.Token);
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                    {
                        continue;
                    }
                }

                Drain(batch);
                if (batch.Count > 0)
                {
                    await WriteOrSpillAsync(batch, stoppingToken);
                    batch.Clear();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await FlushAsync(cancellationToken);
    }

    /// <summary>Writes (or spills) everything queued now, and replays the spill file if the store answers (used at shutdown and by tests).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        SpillOverflow();
        var batch = new List<UsageRecord>(_settings.BatchSize);
        while (true)
        {
            Drain(batch);
            if (batch.Count == 0)
            {
                break;
            }

            await WriteOrSpillAsync(batch, cancellationToken);
            batch.Clear();
        }

        await ReplayAsync(cancellationToken);
    }

    private void Drain(List<UsageRecord> batch)
    {
        while (batch.Count < _settings.BatchSize && _queue.Reader.TryRead(out var record))
        {
            Interlocked.Decrement(ref _queued);
            batch.Add(record);
        }
    }

    private async Task WriteOrSpillAsync(List<UsageRecord> batch, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromMilliseconds(_settings.WriteTimeoutMs));
            await _store.WriteAsync(batch, timeout.Token);
            Interlocked.Add(ref _written, batch.Count);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogStoreUnavailable(_logger, batch.Count, ex.GetType().Name);
            Spill(batch);
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

                using var file = new FileStream(_spillPath, FileMode.Append, FileAccess.Write, FileShare.Read, 65536, FileOptions.None);
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

    /// <summary>Writes the spill file back into the store, then removes it; stops at the first failure and tries again later.</summary>
    private async Task ReplayAsync(CancellationToken cancellationToken)
    {
        string replaying;
        lock (_spillGate)
        {
            if (!File.Exists(_spillPath))
            {
                return;
            }

            // Move it aside, so records spilled meanwhile go to a fresh file.
            replaying = _spillPath + ".replay";
            if (!File.Exists(replaying))
            {
                File.Move(_spillPath, replaying);
            }
        }

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
                    // A torn last line (a crash mid-append) is skipped; every complete line was synced.
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
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store is still unavailable: the file stays and is replayed later (what was written is skipped then).
            LogReplayFailed(_logger, ex.GetType().Name);
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
        await _store.WriteAsync(batch, timeout.Token);
        Interlocked.Add(ref _written, batch.Count);
        Interlocked.Add(ref _replayed, batch.Count);
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
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogReplayFailed(_logger, ex.GetType().Name);
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

    [LoggerMessage(EventId = 55, Level = LogLevel.Information, Message = "Purged {Count} usage record(s) older than {Days} days (daily rollups kept)")]
    private static partial void LogPurged(ILogger logger, int count, int days);
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(UsageRecord))]
internal sealed partial class UsageJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
