namespace Shepherd.Resilience;

/// <summary>Exponential backoff with full jitter (AWS architecture blog), never shorter than the upstream's retry-after.</summary>
public static class Backoff
{
    /// <param name="retry">1 for the first retry.</param>
    /// <param name="baseDelay">The first retry's ceiling.</param>
    /// <param name="maxDelay">The ceiling of any delay.</param>
    /// <param name="retryAfter">What the upstream asked for, if anything.</param>
    /// <param name="random">A uniform value in [0, 1).</param>
    public static TimeSpan Delay(int retry, TimeSpan baseDelay, TimeSpan maxDelay, TimeSpan? retryAfter, double random)
    {
        var ceiling = Math.Min(maxDelay.TotalMilliseconds, baseDelay.TotalMilliseconds * Math.Pow(2, Math.Max(0, retry - 1)));
        var jittered = TimeSpan.FromMilliseconds(ceiling * random);
        return retryAfter is { } asked && asked > jittered ? asked : jittered;
    }
}
