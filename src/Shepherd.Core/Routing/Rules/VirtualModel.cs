namespace Shepherd.Routing.Rules;

/// <summary>A compiled routing rule: its conditions (ANDed, cheapest first) and the model it picks.</summary>
public sealed class RouteRule
{
    private readonly RouteCondition[] _conditions;

    internal RouteRule(string name, int index, CatalogModel target, bool isDefault, RouteCondition[] conditions)
    {
        Name = name;
        Index = index;
        Target = target;
        IsDefault = isDefault;
        _conditions = conditions;
    }

    public string Name { get; }

    /// <summary>Position in the router's rule list (0-based).</summary>
    public int Index { get; }

    public CatalogModel Target { get; }

    public bool IsDefault { get; }

    public IReadOnlyList<RouteCondition> Conditions => _conditions;

    /// <summary>Every condition holds (the default rule has none, so it always matches).</summary>
    public bool Matches(RequestFeatures features)
    {
        foreach (var condition in _conditions)
        {
            if (!condition.Matches(features))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether the rule matches and why: every condition when it does, the first that fails when it does not.</summary>
    public RuleCheck Check(RequestFeatures features)
    {
        if (IsDefault)
        {
            return new RuleCheck(this, true, "default rule");
        }

        foreach (var condition in _conditions)
        {
            if (!condition.Matches(features))
            {
                return new RuleCheck(this, false, condition.Explain(features, matched: false));
            }
        }

        return new RuleCheck(this, true, string.Join(", ", _conditions.Select(c => c.Explain(features, matched: true))));
    }
}

/// <summary>One rule as checked for a request: matched or not, and the reason.</summary>
public readonly record struct RuleCheck(RouteRule Rule, bool Matched, string Reason);

/// <summary>A virtual model: a client-visible name whose requests go to the model of the first matching rule.</summary>
public sealed class VirtualModel
{
    private readonly RouteRule[] _rules;

    internal VirtualModel(string name, RouteRule[] rules, long created)
    {
        Name = name;
        _rules = rules;
        Created = created;
    }

    public string Name { get; }

    public IReadOnlyList<RouteRule> Rules => _rules;

    /// <summary>Unix seconds shown as <c>created</c> in <c>/v1/models</c>.</summary>
    public long Created { get; }

    /// <summary>The first rule that matches; the default rule (last) matches everything.</summary>
    public RouteRule Select(RequestFeatures features)
    {
        var rules = _rules;
        for (var i = 0; i < rules.Length - 1; i++)
        {
            if (rules[i].Matches(features))
            {
                return rules[i];
            }
        }

        return rules[^1];
    }
}
