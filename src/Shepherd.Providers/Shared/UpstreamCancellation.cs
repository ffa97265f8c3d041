namespace Shepherd.Providers.Shared;

/// <summary>
/// The cancellation of one upstream exchange: the client's abort, plus a timer that is first the
/// first-byte deadline and then, once bytes flow, an idle deadline reset on every read.
/// </summary>
/// <remarks>One source per exchange instead of a new timer per read (as YARP's activity token does).
/// <see cref="TimedOut"/> tells a timeout from a client disconnect.</remarks>
public sealed class UpstreamCancellation : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationToken _client;
    private readonly CancellationTokenRegistration _registration;
    private TimeSpan _idle;

    public UpstreamCancellation(CancellationToken client, TimeSpan firstByte, TimeSpan idle, TimeProvider time)
    {
        _client = client;
        _idle = idle;
        _source = new CancellationTokenSource(firstByte, time);
        _registration = client.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source);
    }

    public CancellationToken Token => _source.Token;

    /// <summary>The timer fired (and not the client).</summary>
    public bool TimedOut => _source.IsCancellationRequested && !_client.IsCancellationRequested;

    public bool ClientGone => _client.IsCancellationRequested;

    /// <summary>Switches to the idle deadline and restarts it; called after every successful read.</summary>
    public void Touch()
    {
        if (!_source.IsCancellationRequested)
        {
            _source.CancelAfter(_idle);
        }
    }

    /// <summary>Restarts the timer with another span (e.g. a first-byte wait inside a stream).</summary>
    public void Restart(TimeSpan span, TimeSpan? nextIdle = null)
    {
        if (nextIdle is { } idle)
        {
            _idle = idle;
        }

        if (!_source.IsCancellationRequested)
        {
            _source.CancelAfter(span);
        }
    }

    public void Cancel() => _source.Cancel();

    public void Dispose()
    {
        _registration.Dispose();
        _source.Dispose();
    }
}
