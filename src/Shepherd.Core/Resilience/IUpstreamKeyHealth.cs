namespace Shepherd.Resilience;

using Shepherd.Routing;

/// <summary>
/// Shares which upstream keys are out (refused with 401/403) between instances: a breaker store that implements it
/// (Redis) is told of every key of every provider, and of every change this instance makes.
/// </summary>
public interface IUpstreamKeyHealth
{
    void Register(UpstreamKey key);

    /// <summary>This instance took <paramref name="key"/> out (<paramref name="deadSince"/>) or re-admitted it (null).</summary>
    void Changed(UpstreamKey key, DateTimeOffset? deadSince);
}
