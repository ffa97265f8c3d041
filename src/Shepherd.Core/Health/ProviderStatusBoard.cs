namespace Shepherd.Health;

using Shepherd.Errors;

/// <summary>The last known state of each upstream, for <c>/health/ready</c>. Reported, never turned into unreadiness.</summary>
public sealed class ProviderStatusBoard
{
    private readonly Dictionary<string, ProviderStatus> _byName;
    private readonly TimeProvider _time;

    public ProviderStatusBoard(IEnumerable<(string Name, string Type)> providers, TimeProvider time)
    {
        _time = time;
        _byName = providers.ToDictionary(p => p.Name, p => new ProviderStatus(p.Name, p.Type), StringComparer.OrdinalIgnoreCase);
    }

    public IEnumerable<ProviderStatus> All => _byName.Values;

    public void RecordSuccess(string provider, int status)
    {
        if (_byName.TryGetValue(provider, out var s))
        {
            s.RecordSuccess(status, _time.GetUtcNow());
        }
    }

    public void RecordFailure(string provider, UpstreamFailure failure)
    {
        if (_byName.TryGetValue(provider, out var s))
        {
            s.RecordFailure(failure, _time.GetUtcNow());
        }
    }
}

/// <summary>One provider's last outcome. Written with plain stores: a slightly stale read is fine for a status page.</summary>
public sealed class ProviderStatus(string name, string type)
{
    private long _requests;
    private long _failures;
    private int _consecutiveFailures;

    public string Name { get; } = name;

    public string Type { get; } = type;

    public int LastStatus { get; private set; }

    public string? LastError { get; private set; }

    public FailureClass? LastFailureClass { get; private set; }

    public DateTimeOffset? LastSuccessAt { get; private set; }

    public DateTimeOffset? LastFailureAt { get; private set; }

    public long Requests => Interlocked.Read(ref _requests);

    public long Failures => Interlocked.Read(ref _failures);

    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary><c>unknown</c> before any call, <c>ok</c> after a success, <c>failing</c> after a failure.</summary>
    public string State => LastSuccessAt is null && LastFailureAt is null
        ? "unknown"
        : ConsecutiveFailures == 0 ? "ok" : "failing";

    internal void RecordSuccess(int status, DateTimeOffset now)
    {
        Interlocked.Increment(ref _requests);
        Volatile.Write(ref _consecutiveFailures, 0);
        LastStatus = status;
        LastSuccessAt = now;
    }

    internal void RecordFailure(UpstreamFailure failure, DateTimeOffset now)
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Increment(ref _failures);
        Interlocked.Increment(ref _consecutiveFailures);
        LastStatus = failure.UpstreamStatus;
        LastFailureClass = failure.Class;
        LastError = failure.Message.Length > 200 ? failure.Message[..200] : failure.Message;
        LastFailureAt = now;
    }
}
