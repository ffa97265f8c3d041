namespace Shepherd.Resilience;

using Shepherd.Configuration;

/// <summary>
/// Caps retries at a share of first attempts over a sliding window (plus a small floor per second), so that
/// during an outage the gateway adds at most that much load to a struggling upstream instead of multiplying it.
/// </summary>
public sealed class RetryBudget(RetryBudgetConfig settings)
{
    private readonly object _gate = new();
    private readonly long[] _second = new long[Math.Max(1, settings.WindowS)];
    private readonly int[] _requests = new int[Math.Max(1, settings.WindowS)];
    private readonly int[] _retries = new int[Math.Max(1, settings.WindowS)];

    /// <summary>Counts a first attempt (it earns <c>ratio</c> of a retry).</summary>
    public void OnRequest(DateTimeOffset now)
    {
        lock (_gate)
        {
            _requests[Slot(now)]++;
        }
    }

    /// <summary>Takes one retry from the budget, or says there is none left.</summary>
    public bool TryRetry(DateTimeOffset now)
    {
        lock (_gate)
        {
            var slot = Slot(now);
            var second = now.UtcTicks / TimeSpan.TicksPerSecond;
            int requests = 0, retries = 0;
            for (var i = 0; i < _second.Length; i++)
            {
                if (second - _second[i] < _second.Length)
                {
                    requests += _requests[i];
                    retries += _retries[i];
                }
            }

            var allowed = (settings.Ratio * requests) + (settings.MinPerSecond * _second.Length);
            if (retries + 1 > allowed)
            {
                return false;
            }

            _retries[slot]++;
            return true;
        }
    }

    private int Slot(DateTimeOffset now)
    {
        var second = now.UtcTicks / TimeSpan.TicksPerSecond;
        var slot = (int)(second % _second.Length);
        if (_second[slot] != second)
        {
            _second[slot] = second;
            _requests[slot] = 0;
            _retries[slot] = 0;
        }

        return slot;
    }
}
