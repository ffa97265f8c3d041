namespace Shepherd.Webhooks.Intake;

using System.Threading.Channels;
using Microsoft.Extensions.Logging;

/// <summary>The event could not be stored; nothing was acknowledged, the sender should retry.</summary>
public sealed class WebhookIntakeUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Durable intake with group commit: request handlers hand their event to one writer and wait; the writer takes every
/// event waiting (up to <see cref="MaxBatch"/>), stores them in one fsync'd transaction, and answers each handler.
/// </summary>
/// <remarks>
/// One fsync per batch instead of per event is what lets durable acknowledgement keep up with a burst: while a batch
/// commits, the next one gathers. A handler answers 202 only after its batch committed, so an acknowledged event is on
/// disk. The queue in front is bounded: when it is full the handler answers 503 at once rather than queueing without
/// end. Disposing drains what is queued, so requests still in flight at shutdown get their answer.
/// </remarks>
public sealed partial class WebhookIntake : IAsyncDisposable
{
    public const int MaxBatch = 512;

    private readonly IWebhookJobStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Pending> _queue;
    private readonly Task _writer;
    private Action? _stored;
    private long _storedCount;
    private long _commits;

    public WebhookIntake(IWebhookJobStore store, TimeProvider time, ILogger<WebhookIntake> logger, int capacity = 10_000)
    {
        _store = store;
        _time = time;
        _logger = logger;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Called after each batch that stored something (wakes the workers).</summary>
    public void OnStored(Action stored) => _stored = stored;

    /// <summary>Events stored durably so far.</summary>
    public long Stored => Interlocked.Read(ref _storedCount);

    /// <summary>Batches stored so far (events per batch = <see cref="Stored"/> / this, duplicates aside).</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Stores an event durably.</summary>
    /// <returns>True when stored, false when it was a duplicate (stored before).</returns>
    /// <exception cref="WebhookIntakeUnavailableException">The queue is full or the store failed.</exception>
    public Task<bool> SubmitAsync(WebhookEventDraft draft)
    {
        var pending = new Pending(draft);
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new WebhookIntakeUnavailableException("The webhook queue is full; retry shortly.");
        }

        return pending.Done.Task;
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>(MaxBatch);
        var drafts = new List<WebhookEventDraft>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var pending))
            {
                batch.Add(pending);
                drafts.Add(pending.Draft);
            }

            try
            {
                // Never cancelled: a commit half-way through shutdown would leave handlers without an answer.
                var stored = await _store.EnqueueAsync(drafts, _time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
                Interlocked.Increment(ref _commits);
                var any = false;
                for (var i = 0; i < batch.Count; i++)
                {
                    any |= stored[i];
                    batch[i].Done.TrySetResult(stored[i]);
                }

                if (any)
                {
                    Interlocked.Add(ref _storedCount, stored.Count(s => s));
                    _stored?.Invoke();
                }
            }
            catch (Exception ex)
            {
                LogStoreFailed(_logger, ex, batch.Count);
                var unavailable = new WebhookIntakeUnavailableException("The event could not be stored; retry shortly.", ex);
                foreach (var pending in batch)
                {
                    pending.Done.TrySetException(unavailable);
                }
            }

            batch.Clear();
            drafts.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Error, Message = "Webhook intake: a batch of {Count} event(s) could not be stored; the senders were answered 503")]
    private static partial void LogStoreFailed(ILogger logger, Exception exception, int count);

    private sealed class Pending(WebhookEventDraft draft)
    {
        public WebhookEventDraft Draft { get; } = draft;

        public TaskCompletionSource<bool> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
