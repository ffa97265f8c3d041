namespace Shepherd.Testing;

using System.Collections.Concurrent;

/// <summary>
/// What a fake upstream does for the next requests: answers are taken from a queue (the last one repeats when
/// the queue runs dry), or picked by a function of the attempt number.
/// </summary>
public sealed class FaultPlan
{
    private readonly ConcurrentQueue<Fault> _queue = new();
    private Fault _default = Fault.None;
    private int _count;

    /// <summary>Decides the fault by request number (1-based); overrides the queue when set.</summary>
    public Func<int, Fault>? Selector { get; set; }

    public FaultPlan Then(Fault fault)
    {
        _queue.Enqueue(fault);
        return this;
    }

    public FaultPlan Always(Fault fault)
    {
        _default = fault;
        return this;
    }

    /// <summary>
    /// Picks a fault at random but reproducibly: request <c>n</c> always gets the same answer for the same seed,
    /// whatever the order in which concurrent requests arrive. Each fault has its probability; the rest answer normally.
    /// </summary>
    public FaultPlan Randomly(int seed, params (double Probability, Fault Fault)[] faults)
    {
        Selector = n =>
        {
            var u = Uniform(seed, n);
            foreach (var (probability, fault) in faults)
            {
                if (u < probability)
                {
                    return fault;
                }

                u -= probability;
            }

            return Fault.None;
        };
        return this;
    }

    /// <summary>Answers normally again: no selector, an empty queue, no default fault.</summary>
    public FaultPlan Clear()
    {
        Selector = null;
        _queue.Clear();
        _default = Fault.None;
        return this;
    }

    /// <summary>How many requests asked this plan for their fault.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>A uniform value in [0, 1) from (seed, n): SplitMix64, stable across runs and platforms.</summary>
    public static double Uniform(int seed, int n)
    {
        var z = unchecked(((ulong)(uint)seed << 32) + (ulong)(uint)n + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    public Fault Next()
    {
        var n = Interlocked.Increment(ref _count);
        if (Selector is { } selector)
        {
            return selector(n);
        }

        return _queue.TryDequeue(out var fault) ? fault : _default;
    }
}

/// <summary>One injected behaviour. <see cref="None"/> answers normally.</summary>
public sealed record Fault
{
    public static readonly Fault None = new();

    /// <summary>Answer with this status (and <see cref="Body"/>) instead of a normal answer.</summary>
    public int? Status { get; init; }

    public string? Body { get; init; }

    public string ContentType { get; init; } = "application/json";

    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    /// <summary>Wait this long before sending anything (headers included).</summary>
    public TimeSpan DelayBeforeHeaders { get; init; }

    /// <summary>For streams: wait this long after the headers before the first event.</summary>
    public TimeSpan DelayBeforeFirstEvent { get; init; }

    /// <summary>For streams: wait this long between events.</summary>
    public TimeSpan DelayBetweenEvents { get; init; }

    /// <summary>For streams: abort the connection after this many events.</summary>
    public int? DropAfterEvents { get; init; }

    /// <summary>
    /// For streams with <see cref="DropAfterEvents"/>: drop only once this task completes, so a test can make sure the
    /// events before the drop reached the gateway (a reset connection may discard bytes still on their way).
    /// </summary>
    public Task? DropWhen { get; init; }

    /// <summary>For streams: stop sending (but keep the connection open) after this many events.</summary>
    public int? StallAfterEvents { get; init; }

    /// <summary>For streams with <see cref="StallAfterEvents"/>: send the rest once this task completes (without it, never).</summary>
    public Task? StallUntil { get; init; }

    /// <summary>Abort the connection without any answer.</summary>
    public bool DropConnection { get; init; }

    /// <summary>Answer only once this task completes (a test holds requests in flight and releases them).</summary>
    public Task? HoldUntil { get; init; }

    /// <summary>For streams: send this as the first event's data instead of the role chunk (e.g. malformed JSON).</summary>
    public string? FirstEventData { get; init; }

    public static Fault WithStatus(int status, string? body = null, params (string Name, string Value)[] headers) =>
        new() { Status = status, Body = body, Headers = headers.ToDictionary(h => h.Name, h => h.Value) };
}
