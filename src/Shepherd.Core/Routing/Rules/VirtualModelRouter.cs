namespace Shepherd.Routing.Rules;

using System.Collections.Frozen;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;

/// <summary>
/// Resolves virtual model names (the <c>routers</c> section) to configured models, per request, by ordered rules.
/// Built once from a validated configuration; lookups are case-insensitive, like model names and aliases.
/// </summary>
public sealed class VirtualModelRouter
{
    private readonly FrozenDictionary<string, VirtualModel> _byName;
    private readonly TokenEstimator _estimator;

    public VirtualModelRouter(IReadOnlyList<RouterConfig> routers, ModelCatalog catalog, TokenEstimator estimator, TimeProvider? time = null)
    {
        _estimator = estimator;
        var created = (time ?? TimeProvider.System).GetUtcNow().ToUnixTimeSeconds();
        var models = new List<VirtualModel>(routers.Count);
        foreach (var router in routers)
        {
            var rules = new RouteRule[router.Rules.Count];
            for (var i = 0; i < rules.Length; i++)
            {
                var rule = router.Rules[i];
                if (!catalog.TryResolve(rule.Model, out var target))
                {
                    throw new InvalidOperationException($"Router '{router.Name}' rule '{rule.Name}' names the unknown model '{rule.Model}' (the configuration was not validated).");
                }

                rules[i] = new RouteRule(rule.Name, i, target, rule.Default, RouteCondition.Compile(rule.Default ? null : rule.When));
            }

            if (rules.Length == 0 || !rules[^1].IsDefault)
            {
                throw new InvalidOperationException($"Router '{router.Name}' has no default rule last (the configuration was not validated).");
            }

            models.Add(new VirtualModel(router.Name, rules, created));
        }

        Models = models;
        _byName = models.ToFrozenDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The virtual models in configuration order.</summary>
    public IReadOnlyList<VirtualModel> Models { get; }

    /// <summary>The virtual model names (for key access patterns).</summary>
    public IEnumerable<string> Names => Models.Select(m => m.Name);

    public bool IsVirtual(string name) => _byName.ContainsKey(name);

    public bool TryGet(string name, out VirtualModel model) => _byName.TryGetValue(name, out model!);

    /// <summary>Resolves <paramref name="name"/> when it is a virtual model.</summary>
    /// <returns>False when <paramref name="name"/> is not a virtual model (then <paramref name="decision"/> is empty).</returns>
    public bool TryRoute(string name, ChatRequest request, RequestHints hints, out RouteDecision decision)
    {
        if (!_byName.TryGetValue(name, out var model))
        {
            decision = default;
            return false;
        }

        decision = Route(model, request, hints);
        return true;
    }

    public RouteDecision Route(VirtualModel model, ChatRequest request, RequestHints hints)
    {
        var features = new RequestFeatures(request, hints, _estimator);
        return new RouteDecision(model, model.Select(features), features);
    }
}
