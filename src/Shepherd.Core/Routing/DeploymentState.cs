namespace Shepherd.Routing;

using Shepherd.Resilience;

/// <summary>
/// The live state of one deployment: its breaker, its bounded concurrency gate, what is in flight, observed time to
/// first token, and the upstream's own RPM/TPM (kept under rather than discovered through 429s).
/// </summary>
public sealed class DeploymentState
{
    private const int LatencySamples = 64;

    private readonly object _latencyGate = new();
    private readonly object _upstreamGate = new();
    private readonly double[] _latencies = new double[LatencySamples];
    private readonly SemaphoreSlim? _slots;
    private readonly int _queueSize;
    private readonly UsageWindow? _requests;
    private readonly UsageWindow? _tokens;
    private int _latencyCount;
    private int _latencyNext;
    private double _ewmaMs = double.NaN;
    private int _inFlight;
    private int _waiting;

    public DeploymentState(ICircuitBreaker breaker, int? maxConcurrency, int queueSize, TimeSpan queueTimeout, int? rpm, int? tpm)
    {
        Breaker = breaker;
        MaxConcurrency = maxConcurrency;
        _slots = maxConcurrency is { } max ? new SemaphoreSlim(max, max) : null;
        _queueSize = queueSize;
        QueueTimeout = queueTimeout;
        _requests = rpm is { } r ? new UsageWindow(r) : null;
        _tokens = tpm is { } t ? new UsageWindow(t) : null;
    }

    public ICircuitBreaker Breaker { get; }

    public int? MaxConcurrency { get; }

    public TimeSpan QueueTimeout { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Moving average of the time to first byte (NaN until observed).</summary>
    public double LatencyMs => Volatile.Read(ref _ewmaMs);

    /// <summary>Takes a concurrency slot, waiting in the bounded queue if needed.</summary>
    /// <param name="time">The clock that times the wait (the gateway's, so tests can move it).</param>
    /// <param name="cancellationToken">The client's cancellation.</param>
    /// <returns>False when the queue is full or the wait timed out: the request should move on.</returns>
    public async ValueTask<bool> EnterAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        if (_slots is null)
        {
            Interlocked.Increment(ref _inFlight);
            return true;
        }

        if (_slots.Wait(0, CancellationToken.None))
        {
            Interlocked.Increment(ref _inFlight);
            return true;
        }

        if (Interlocked.Increment(ref _waiting) > _queueSize)
        {
            Interlocked.Decrement(ref _waiting);
            return false;
        }

        // The queue timeout runs on the gateway's clock, like every other wait.
        using var timeout = new CancellationTokenSource(QueueTimeout, time);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            await _slots.WaitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        Interlocked.Increment(ref _inFlight);
        return true;
    }

    public void Exit()
    {
        Interlocked.Decrement(ref _inFlight);
        _slots?.Release();
    }

    /// <summary>Whether the upstream's own RPM/TPM leave room for a request of <paramref name="tokens"/>, and counts it if so.</summary>
    public bool TryCountUpstream(DateTimeOffset now, long tokens)
    {
        if (_requests is null && _tokens is null)
        {
            return true;
        }

        // Check and count under one lock: concurrent requests must not both take the last room.
        lock (_upstreamGate)
        {
            if (_requests is not null && !_requests.HasRoom(now, 1))
            {
                return false;
            }

            if (_tokens is not null && !_tokens.HasRoom(now, tokens))
            {
                return false;
            }

            _requests?.Add(now, 1);
            _tokens?.Add(now, tokens);
            return true;
        }
    }

    public void RecordFirstByte(TimeSpan elapsed)
    {
        var ms = elapsed.TotalMilliseconds;
        lock (_latencyGate)
        {
            _ewmaMs = double.IsNaN(_ewmaMs) ? ms : (0.8 * _ewmaMs) + (0.2 * ms);
            _latencies[_latencyNext] = ms;
            _latencyNext = (_latencyNext + 1) % LatencySamples;
            _latencyCount = Math.Min(_latencyCount + 1, LatencySamples);
        }
    }

    /// <summary>The 95th percentile of the last 64 times to first byte (null until 8 were seen).</summary>
    public TimeSpan? P95FirstByte()
    {
        double[] copy;
        lock (_latencyGate)
        {
            if (_latencyCount < 8)
            {
                return null;
            }

            copy = _latencies[.._latencyCount];
        }

        Array.Sort(copy);
        return TimeSpan.FromMilliseconds(copy[(int)Math.Ceiling(0.95 * copy.Length) - 1]);
    }

    /// <summary>A one-minute window in one-second buckets. Not thread-safe: used only under <c>_upstreamGate</c>.</summary>
    private sealed class UsageWindow(long limit)
    {
        private readonly long[] _second = new long[60];
        private readonly long[] _amount = new long[60];

        public bool HasRoom(DateTimeOffset now, long amount) => Total(now) + amount <= limit;

        public void Add(DateTimeOffset now, long amount)
        {
            var second = now.UtcTicks / TimeSpan.TicksPerSecond;
            var slot = (int)(second % 60);
            if (_second[slot] != second)
            {
                _second[slot] = second;
                _amount[slot] = 0;
            }

            _amount[slot] += amount;
        }

        private long Total(DateTimeOffset now)
        {
            var second = now.UtcTicks / TimeSpan.TicksPerSecond;
            long total = 0;
            for (var i = 0; i < 60; i++)
            {
                if (second - _second[i] < 60)
                {
                    total += _amount[i];
                }
            }

            return total;
        }
    }
}
