namespace Shepherd.Routing.Strategies;

/// <summary>What a strategy knows about one deployment when it orders them.</summary>
/// <param name="Index">Position in the model's deployment list.</param>
/// <param name="Priority">Configured priority (lower first).</param>
/// <param name="Weight">Configured weight within a priority tier.</param>
/// <param name="InFlight">Requests in flight to it now.</param>
/// <param name="LatencyMs">Moving average of its time to first byte (NaN: not yet measured).</param>
/// <param name="Cost">Estimated USD of this request on it (or its price per 1M tokens when no estimate is at hand).</param>
public readonly record struct DeploymentCandidate(int Index, int Priority, int Weight, int InFlight, double LatencyMs, decimal Cost);

/// <summary>
/// Orders a model's healthy deployments for one request, best first. A name plus one method: synchronous,
/// allocation-free (the executor passes stack spans), picked per model by name and validated at start-up.
/// </summary>
public interface IRoutingStrategy
{
    string Name { get; }

    /// <param name="candidates">The deployments that are available now.</param>
    /// <param name="order">Receives the candidate positions (0 … candidates.Length-1), best first.</param>
    /// <param name="random">A source of uniform values in [0, 1) (weighted choice, tie-breaking).</param>
    void Order(ReadOnlySpan<DeploymentCandidate> candidates, Span<int> order, Func<double> random);

    /// <summary>One line on why this order, for <c>route explain</c> and the decision log.</summary>
    string Describe(in DeploymentCandidate candidate);
}
