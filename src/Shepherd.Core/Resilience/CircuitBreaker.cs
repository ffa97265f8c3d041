namespace Shepherd.Resilience;

using Shepherd.Configuration;

public enum BreakerState : byte
{
    Closed,
    Open,
    HalfOpen,
}

/// <summary>What a breaker looks like from outside (health page, admin API).</summary>
public readonly record struct BreakerSnapshot(BreakerState State, int ConsecutiveFailures, int WindowRequests, int WindowFailures, DateTimeOffset? OpenUntil);

/// <summary>
/// The circuit breaker of one deployment or upstream key. Closed: everything passes. It opens after
/// <c>consecutive_failures</c> failures in a row, or when the failure rate over the window reaches
/// <c>failure_rate</c> (with at least <c>min_requests</c>). Open: nothing passes for <c>cooldown_s</c>. Then
/// half-open: one probe passes; its success closes the breaker, its failure opens it again.
/// </summary>
/// <remarks>An interface so the state can live in Redis and be shared by every instance.</remarks>
public interface ICircuitBreaker
{
    /// <summary>May a request go through now? Half-open admits exactly one probe at a time.</summary>
    bool TryPass(DateTimeOffset now, out bool isProbe);

    /// <summary>Whether a request would be let through, without taking the half-open probe slot.</summary>
    bool IsAvailable(DateTimeOffset now);

    void OnSuccess(DateTimeOffset now, bool wasProbe);

    void OnFailure(DateTimeOffset now, bool wasProbe);

    /// <summary>A probe that ended without a verdict (cancelled): free the slot.</summary>
    void OnAbandoned(bool wasProbe);

    BreakerSnapshot Snapshot(DateTimeOffset now);
}

/// <summary>The in-memory breaker: one lock, one-second buckets for the failure rate.</summary>
public sealed class CircuitBreaker(BreakerConfig settings) : ICircuitBreaker
{
    private readonly object _gate = new();
    private readonly long[] _bucketSecond = new long[Math.Max(1, settings.WindowS)];
    private readonly int[] _bucketRequests = new int[Math.Max(1, settings.WindowS)];
    private readonly int[] _bucketFailures = new int[Math.Max(1, settings.WindowS)];
    private volatile BreakerState _state;
    private int _consecutive;
    private long _openUntilTicks;
    private volatile bool _probeInFlight;

    /// <summary>The state as last set (an open breaker whose cooldown is over still reads Open until a request asks).</summary>
    public BreakerState State => _state;

    /// <summary>Failures in a row so far (no lock: a hint for callers that avoid work on the success path).</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutive);

    /// <summary>Opens the breaker until <paramref name="until"/> because another instance opened it (shared breakers).</summary>
    /// <remarks>A later opening already in place wins; an <paramref name="until"/> in the past leaves it ready for a probe.</remarks>
    public void ForceOpen(DateTimeOffset until)
    {
        lock (_gate)
        {
            if (_state == BreakerState.Open && _openUntilTicks >= until.UtcTicks)
            {
                return;
            }

            _openUntilTicks = until.UtcTicks;
            _state = BreakerState.Open;
        }
    }

    /// <summary>Closes the breaker because another instance's probe succeeded (shared breakers).</summary>
    public void ForceClose()
    {
        lock (_gate)
        {
            if (_state != BreakerState.Closed)
            {
                _probeInFlight = false;
                Close();
            }
        }
    }

    public bool TryPass(DateTimeOffset now, out bool isProbe)
    {
        isProbe = false;
        if (_state == BreakerState.Closed)
        {
            return true;
        }

        lock (_gate)
        {
            switch (_state)
            {
                case BreakerState.Closed:
                    return true;
                case BreakerState.Open when now.UtcTicks < _openUntilTicks:
                    return false;
                default:
                    // Cooldown over (or already half-open): one probe at a time.
                    _state = BreakerState.HalfOpen;
                    if (_probeInFlight)
                    {
                        return false;
                    }

                    _probeInFlight = true;
                    isProbe = true;
                    return true;
            }
        }
    }

    public bool IsAvailable(DateTimeOffset now)
    {
        var state = _state;
        return state == BreakerState.Closed ||
               (state == BreakerState.Open && now.UtcTicks >= Volatile.Read(ref _openUntilTicks)) ||
               (state == BreakerState.HalfOpen && !_probeInFlight);
    }

    public void OnSuccess(DateTimeOffset now, bool wasProbe)
    {
        lock (_gate)
        {
            Count(now, failed: false);
            _consecutive = 0;
            if (wasProbe || _state == BreakerState.HalfOpen)
            {
                _probeInFlight = false;
                Close();
            }
        }
    }

    public void OnFailure(DateTimeOffset now, bool wasProbe)
    {
        lock (_gate)
        {
            var (requests, failures) = Count(now, failed: true);
            _consecutive++;
            if (wasProbe || _state == BreakerState.HalfOpen)
            {
                _probeInFlight = false;
                Open(now);
                return;
            }

            if (_state == BreakerState.Closed &&
                (_consecutive >= settings.ConsecutiveFailures ||
                 (requests >= settings.MinRequests && failures >= settings.FailureRate * requests)))
            {
                Open(now);
            }
        }
    }

    public void OnAbandoned(bool wasProbe)
    {
        if (!wasProbe)
        {
            return;
        }

        lock (_gate)
        {
            _probeInFlight = false;
        }
    }

    public BreakerSnapshot Snapshot(DateTimeOffset now)
    {
        lock (_gate)
        {
            var (requests, failures) = Totals(now.UtcTicks / TimeSpan.TicksPerSecond);
            var state = _state == BreakerState.Open && now.UtcTicks >= _openUntilTicks ? BreakerState.HalfOpen : _state;
            return new BreakerSnapshot(state, _consecutive, requests, failures, _state == BreakerState.Open ? new DateTimeOffset(_openUntilTicks, TimeSpan.Zero) : null);
        }
    }

    private void Open(DateTimeOffset now)
    {
        _openUntilTicks = now.UtcTicks + TimeSpan.FromSeconds(settings.CooldownS).Ticks;
        _state = BreakerState.Open;
    }

    private void Close()
    {
        _state = BreakerState.Closed;
        _consecutive = 0;
        Array.Clear(_bucketRequests);
        Array.Clear(_bucketFailures);
    }

    private (int Requests, int Failures) Count(DateTimeOffset now, bool failed)
    {
        var second = now.UtcTicks / TimeSpan.TicksPerSecond;
        var slot = (int)(second % _bucketSecond.Length);
        if (_bucketSecond[slot] != second)
        {
            _bucketSecond[slot] = second;
            _bucketRequests[slot] = 0;
            _bucketFailures[slot] = 0;
        }

        _bucketRequests[slot]++;
        if (failed)
        {
            _bucketFailures[slot]++;
        }

        return Totals(second);
    }

    private (int Requests, int Failures) Totals(long second)
    {
        int requests = 0, failures = 0;
        for (var i = 0; i < _bucketSecond.Length; i++)
        {
            if (second - _bucketSecond[i] < _bucketSecond.Length)
            {
                requests += _bucketRequests[i];
                failures += _bucketFailures[i];
            }
        }

        return (requests, failures);
    }
}
