namespace Shepherd.Resilience;

using System.Collections.Concurrent;
using Shepherd.Configuration;

/// <summary>Where breakers live: in memory for one instance; Redis when several instances must agree.</summary>
public interface IBreakerStore
{
    /// <summary>The breaker with this id (<c>deployment:provider/model</c> or <c>key:provider#2</c>), created on first use.</summary>
    ICircuitBreaker Get(string id);

    IEnumerable<KeyValuePair<string, ICircuitBreaker>> All { get; }
}

public sealed class InMemoryBreakerStore(BreakerConfig settings) : IBreakerStore
{
    private readonly ConcurrentDictionary<string, ICircuitBreaker> _breakers = new(StringComparer.Ordinal);

    public ICircuitBreaker Get(string id) => _breakers.GetOrAdd(id, _ => new CircuitBreaker(settings));

    public IEnumerable<KeyValuePair<string, ICircuitBreaker>> All => _breakers;
}
