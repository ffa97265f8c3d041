namespace Shepherd.Routing.Rules;

using System.Text;

/// <summary>How a virtual model was resolved for one request: the model, the rule, and (on demand) why.</summary>
public readonly struct RouteDecision
{
    internal RouteDecision(VirtualModel router, RouteRule rule, RequestFeatures features)
    {
        Router = router;
        Rule = rule;
        Features = features;
    }

    public VirtualModel Router { get; }

    public RouteRule Rule { get; }

    /// <summary>The model the request goes to.</summary>
    public CatalogModel Model => Rule.Target;

    public string RuleName => Rule.Name;

    /// <summary>What the rules looked at (the prompt estimate, when one was counted, can be reused).</summary>
    public RequestFeatures Features { get; }

    /// <summary>Every rule checked, in order, up to and including the one that matched.</summary>
    public IReadOnlyList<RuleCheck> Checks()
    {
        var checks = new List<RuleCheck>(Rule.Index + 1);
        for (var i = 0; i <= Rule.Index; i++)
        {
            checks.Add(Router.Rules[i].Check(Features));
        }

        return checks;
    }

    /// <summary>The decision in one line (logged by the gateway and printed by <c>shepherd route explain</c>).</summary>
    /// <example><c>auto -> gpt-4.1 by rule 'tools': long-context: no (prompt ~25 tokens &lt; min_prompt_tokens 100000); vision: no (no images); tools: yes (offers 1 tool)</c></example>
    public string Explain()
    {
        var text = new StringBuilder();
        text.Append(Router.Name).Append(" -> ").Append(Model.Name).Append(" by rule '").Append(Rule.Name).Append("': ");
        var first = true;
        foreach (var check in Checks())
        {
            if (!first)
            {
                text.Append("; ");
            }

            first = false;
            text.Append(check.Rule.Name).Append(check.Matched ? ": yes (" : ": no (").Append(check.Reason).Append(')');
        }

        return text.ToString();
    }

    public override string ToString() => Explain();
}
