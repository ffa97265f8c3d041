namespace Shepherd.Configuration;

/// <summary>
/// A virtual model: a name clients send as <c>model</c> that is resolved, per request, to a configured model by
/// ordered rules (the first rule that matches wins; the last rule is the default).
/// </summary>
public sealed record RouterConfig
{
    /// <summary>The name clients send (case-insensitive); must not clash with a model name or alias.</summary>
    public string Name { get; init; } = "";

    /// <summary>Checked in order; the first match picks the model. Exactly one, the last, is <c>default: true</c>.</summary>
    public List<RouteRuleConfig> Rules { get; init; } = [];
}

/// <summary>One routing rule: conditions and the model they send a request to.</summary>
public sealed record RouteRuleConfig
{
    /// <summary>Shown in <c>x-shepherd-route-rule</c>, logs and <c>shepherd route explain</c>; unique within the router.</summary>
    public string Name { get; init; } = "";

    /// <summary>Conditions, all of which must hold (AND). Not allowed on the default rule.</summary>
    public RouteConditionConfig? When { get; init; }

    /// <summary>The model (name or alias) a matching request goes to.</summary>
    public string Model { get; init; } = "";

    /// <summary>The catch-all rule: required, exactly one, last.</summary>
    public bool Default { get; init; }
}

/// <summary>What a request must look like for a rule to match. Every condition given must hold.</summary>
public sealed record RouteConditionConfig
{
    /// <summary>The estimated prompt (o200k_base tokens, as for limits) is at least this long.</summary>
    public int? MinPromptTokens { get; init; }

    /// <summary>The estimated prompt is at most this long.</summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>The request holds (true) or holds no (false) image parts.</summary>
    public bool? HasImages { get; init; }

    /// <summary>The request offers (true) or offers no (false) tools.</summary>
    public bool? HasTools { get; init; }

    /// <summary><c>response_format.type</c> is one of these (<c>text</c>, <c>json_object</c>, <c>json_schema</c>).</summary>
    public List<string>? ResponseFormat { get; init; }

    /// <summary>At least one of these occurs in the last user message (case-insensitive substring).</summary>
    public List<string>? Keywords { get; init; }

    /// <summary>Every one of these tags has this value (case-insensitive), from the request's <c>metadata</c> or the
    /// <c>x-shepherd-tags</c> header (<c>k=v,k=v</c>; the header wins over metadata).</summary>
    public Dictionary<string, string>? Tags { get; init; }

    /// <summary>Shorthand for <c>tags: { priority: VALUE }</c>.</summary>
    public string? Priority { get; init; }

    /// <summary>The client's <c>x-shepherd-latency-budget-ms</c> header is present and at most this.</summary>
    public int? MaxLatencyBudgetMs { get; init; }
}
