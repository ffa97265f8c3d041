namespace Shepherd.Routing;

using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers;

/// <summary>
/// The cancellation of one attempt: the client's abort, a hedging race decided elsewhere, and the request's deadline
/// (<c>routing.deadline_ms</c>), which bounds the attempt until it is committed (a whole answer, or a stream up to its
/// first content) together with any shorter timeout the attempt sets. Timers run on the gateway's clock (a linked
/// source would time them by the system clock, unlike every other wait of the executor).
/// </summary>
internal sealed class AttemptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _deadline;
    private readonly CancellationToken _clientToken;
    private readonly CancellationToken _raceToken;
    private readonly CancellationTokenRegistration _client;
    private readonly CancellationTokenRegistration _race;

    public AttemptCancellation(TimeProvider time, DateTimeOffset deadline, CancellationToken client, CancellationToken race = default)
    {
        _time = time;
        _deadline = deadline;
        _clientToken = client;
        _raceToken = race;
        _source = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _client = client.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source);
        _race = race.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source);
        CancelAfter(deadline - time.GetUtcNow());
    }

    public CancellationToken Token => _source.Token;

    public bool IsCancellationRequested => _source.IsCancellationRequested;

    /// <summary>Cancelled because the request's deadline passed (not by the client or a race).</summary>
    public bool DeadlinePassed =>
        _source.IsCancellationRequested && !_clientToken.IsCancellationRequested && !_raceToken.IsCancellationRequested && _time.GetUtcNow() >= _deadline;

    /// <summary>
    /// Cancels after <paramref name="delay"/> on the gateway's clock, or at the deadline if that comes first;
    /// <see cref="Timeout.InfiniteTimeSpan"/> stops the timer (the attempt is committed: the deadline no longer applies).
    /// </summary>
    public void CancelAfter(TimeSpan delay)
    {
        if (delay != Timeout.InfiniteTimeSpan)
        {
            var left = _deadline - _time.GetUtcNow();
            delay = left < delay ? left : delay;
            delay = delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
        }

        _source.CancelAfter(delay);
    }

    /// <summary>What the client is told when the deadline ended an attempt.</summary>
    public static UpstreamFailure DeadlineFailure(string provider) =>
        new(FailureClass.Timeout, 0, $"The request's deadline (routing.deadline_ms) passed before the upstream provider '{provider}' answered.", "server_error", "timeout");

    public void Dispose()
    {
        // Registrations first: disposing one waits for a callback under way, so none can touch a disposed source.
        _client.Dispose();
        _race.Dispose();
        _source.Dispose();
    }
}

/// <summary>What differs between a non-streamed and a streamed attempt: how it is sent, and who releases the slot.</summary>
internal abstract class AttemptKind<T>
    where T : class
{
    /// <summary>The result keeps the deployment's slot until it ends (a stream), rather than until it arrives.</summary>
    public abstract bool HoldsSlot { get; }

    /// <param name="deployment">Where to send.</param>
    /// <param name="call">What to send, with which key.</param>
    /// <param name="attempt">This attempt's cancellation (client, hedging race; owned by the result when it holds the slot).</param>
    /// <param name="onEnd">For results that hold the slot: called once when they end, with the failure if they failed.</param>
    /// <param name="client">The client's cancellation alone.</param>
    public abstract ValueTask<UpstreamOutcome<T>> SendAsync(CatalogDeployment deployment, UpstreamCall call, AttemptCancellation attempt, Action<UpstreamFailure?> onEnd, CancellationToken client);

    /// <summary>Releases a result nobody will use (a hedging loser that still succeeded).</summary>
    public abstract void Discard(T value);
}

internal sealed class CompletionKind : AttemptKind<ChatCompletion>
{
    public static readonly CompletionKind Instance = new();

    public override bool HoldsSlot => false;

    public override ValueTask<UpstreamOutcome<ChatCompletion>> SendAsync(CatalogDeployment deployment, UpstreamCall call, AttemptCancellation attempt, Action<UpstreamFailure?> onEnd, CancellationToken client) =>
        deployment.Provider.CompleteAsync(call, attempt.Token);

    public override void Discard(ChatCompletion value) => value.Dispose();
}

/// <summary>
/// Opens the stream and reads it up to its first content chunk within the provider's first-byte timeout: until then a
/// failure is an ordinary failed attempt (and the executor fails over); after it, the stream is committed.
/// </summary>
internal sealed class StreamKind : AttemptKind<ChatStream>
{
    public static readonly StreamKind Instance = new();

    public override bool HoldsSlot => true;

    public override async ValueTask<UpstreamOutcome<ChatStream>> SendAsync(CatalogDeployment deployment, UpstreamCall call, AttemptCancellation attempt, Action<UpstreamFailure?> onEnd, CancellationToken client)
    {
        attempt.CancelAfter(deployment.Handle.FirstByteTimeout);
        ChatStream? stream = null;
        try
        {
            var opened = await deployment.Provider.StreamAsync(call, attempt.Token).ConfigureAwait(false);
            if (!opened.IsSuccess)
            {
                return opened;
            }

            stream = opened.Value!;
            var prelude = new List<(byte[] Json, bool UsageOnly, Usage? Usage)>(2);
            while (true)
            {
                if (!await stream.MoveNextAsync().ConfigureAwait(false))
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    return new UpstreamFailure(FailureClass.Transient, 0, $"The upstream provider '{deployment.Handle.Name}' ended the stream before any content.", "server_error", "bad_upstream_response");
                }

                var current = stream.Current;
                if (current.Kind == StreamEventKind.Error)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    return current.Failure!;
                }

                if (current.HasContent)
                {
                    break;
                }

                prelude.Add((current.Json.ToArray(), current.IsUsageOnly, current.Usage));
            }

            // Committed: from here on only the idle timeout of the adapter applies.
            attempt.CancelAfter(Timeout.InfiniteTimeSpan);
            var committed = new ExecutedStream(stream, prelude, attempt, onEnd);
            stream = null;
            return UpstreamOutcome<ChatStream>.Success(committed);
        }
        catch (OperationCanceledException) when (!client.IsCancellationRequested)
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            return attempt.DeadlinePassed
                ? AttemptCancellation.DeadlineFailure(deployment.Handle.Name)
                : new UpstreamFailure(FailureClass.Timeout, 0, $"The upstream provider '{deployment.Handle.Name}' sent no first token in time.", "server_error", "timeout");
        }
        catch
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    public override void Discard(ChatStream value) => _ = value.DisposeAsync().AsTask();
}
