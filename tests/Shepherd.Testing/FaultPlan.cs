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

    /// <summary>For streams: stop sending (but keep the connection open) after this many events.</summary>
    public int? StallAfterEvents { get; init; }

    /// <summary>Abort the connection without any answer.</summary>
    public bool DropConnection { get; init; }

    public static Fault WithStatus(int status, string? body = null, params (string Name, string Value)[] headers) =>
        new() { Status = status, Body = body, Headers = headers.ToDictionary(h => h.Name, h => h.Value) };
}
