namespace Shepherd.Routing.Strategies;

using System.Collections.Frozen;
using System.Globalization;

/// <summary>The named strategies, frozen at start-up. An unknown name is a configuration error.</summary>
public static class RoutingStrategies
{
    public const string Default = PriorityStrategy.StrategyName;

    private static readonly FrozenDictionary<string, IRoutingStrategy> ByName = new IRoutingStrategy[]
    {
        new PriorityStrategy(),
        new LeastBusyStrategy(),
        new LatencyStrategy(),
        new CostStrategy(),
    }.ToFrozenDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);

    public static IReadOnlyCollection<string> Names => ByName.Keys;

    public static bool TryGet(string name, out IRoutingStrategy strategy) => ByName.TryGetValue(name, out strategy!);

    public static IRoutingStrategy Get(string name) => ByName[name];

    /// <summary>Insertion sort of <paramref name="order"/> by <paramref name="key"/> (small spans, no allocation).</summary>
    internal static void SortBy(Span<int> order, Span<double> key)
    {
        for (var i = 1; i < order.Length; i++)
        {
            var item = order[i];
            var value = key[i];
            var j = i - 1;
            while (j >= 0 && key[j] > value)
            {
                order[j + 1] = order[j];
                key[j + 1] = key[j];
                j--;
            }

            order[j + 1] = item;
            key[j + 1] = value;
        }
    }

    internal static Span<double> Keys(int length, Span<double> stack) => length <= stack.Length ? stack[..length] : new double[length];

    internal static string Ms(double value) => double.IsNaN(value) ? "not measured yet" : value.ToString("F0", CultureInfo.InvariantCulture) + " ms";
}

/// <summary>A strategy that orders deployments by one number each, lowest first (ties keep their configured order).</summary>
public abstract class KeyedRoutingStrategy : IRoutingStrategy
{
    public abstract string Name { get; }

    public void Order(ReadOnlySpan<DeploymentCandidate> candidates, Span<int> order, Func<double> random)
    {
        var keys = RoutingStrategies.Keys(candidates.Length, stackalloc double[16]);
        for (var i = 0; i < candidates.Length; i++)
        {
            order[i] = i;
            keys[i] = Key(candidates[i], random);
        }

        RoutingStrategies.SortBy(order, keys);
    }

    public abstract string Describe(in DeploymentCandidate candidate);

    /// <summary>The candidate's sort key; <paramref name="random"/> is uniform in [0, 1).</summary>
    protected abstract double Key(in DeploymentCandidate candidate, Func<double> random);
}

/// <summary><c>priority</c>: the lowest priority number first; inside a tier, a weighted random order.</summary>
public sealed class PriorityStrategy : KeyedRoutingStrategy
{
    public const string StrategyName = "priority";

    public override string Name => StrategyName;

    // Efraimidis–Spirakis: -ln(u)/w gives a weighted random permutation; the tier dominates the key.
    protected override double Key(in DeploymentCandidate candidate, Func<double> random) =>
        (candidate.Priority * 1e9) + (-Math.Log(Math.Max(random(), 1e-12)) / Math.Max(1, candidate.Weight));

    public override string Describe(in DeploymentCandidate candidate) => $"priority {candidate.Priority}, weight {candidate.Weight}";
}

/// <summary><c>least-busy</c>: the fewest requests in flight first.</summary>
public sealed class LeastBusyStrategy : KeyedRoutingStrategy
{
    public override string Name => "least-busy";

    protected override double Key(in DeploymentCandidate candidate, Func<double> random) => candidate.InFlight + (random() * 0.5);

    public override string Describe(in DeploymentCandidate candidate) => $"{candidate.InFlight} in flight";
}

/// <summary><c>latency</c>: the lowest moving average of time to first byte first; unmeasured ones first, to measure them.</summary>
public sealed class LatencyStrategy : KeyedRoutingStrategy
{
    public override string Name => "latency";

    protected override double Key(in DeploymentCandidate candidate, Func<double> random) =>
        double.IsNaN(candidate.LatencyMs) ? -1 + random() : candidate.LatencyMs;

    public override string Describe(in DeploymentCandidate candidate) => $"time to first byte {RoutingStrategies.Ms(candidate.LatencyMs)}";
}

/// <summary><c>cost</c>: the cheapest deployment for this request first (its price, else the model's).</summary>
public sealed class CostStrategy : KeyedRoutingStrategy
{
    public override string Name => "cost";

    protected override double Key(in DeploymentCandidate candidate, Func<double> random) =>
        (double)candidate.Cost + (candidate.Priority * 1e-12) + (random() * 1e-15);

    public override string Describe(in DeploymentCandidate candidate) => $"cost ${candidate.Cost.ToString("0.########", CultureInfo.InvariantCulture)}";
}
