namespace Shepherd.Configuration;

/// <summary>
/// Checks the virtual models (<c>routers</c>) and the per-model <c>context</c> settings, reporting every problem with
/// its key path, like <see cref="ConfigValidator"/> (which calls it once the model names are known).
/// </summary>
public static class RoutingConfigValidator
{
    /// <summary>The values a <c>response_format</c> condition may name (what the request parser accepts).</summary>
    public static readonly IReadOnlyList<string> ResponseFormats = ["text", "json_object", "json_schema"];

    /// <param name="config">The bound configuration.</param>
    /// <param name="modelNames">Every model name and alias (case-insensitive) with the key path that declared it.</param>
    /// <param name="problems">Receives the problems.</param>
    public static void Validate(ShepherdConfig config, IReadOnlyDictionary<string, string> modelNames, List<ConfigProblem> problems)
    {
        for (var i = 0; i < config.Models.Count; i++)
        {
            if (config.Models[i].Context is { } context)
            {
                ValidateContext(config.Models[i], context, $"models[{i}].context", problems);
            }
        }

        var routerNames = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < config.Routers.Count; i++)
        {
            ValidateRouter(config.Routers[i], $"routers[{i}]", modelNames, routerNames, problems);
        }
    }

    private static void ValidateContext(ModelConfig model, ContextConfig context, string path, List<ConfigProblem> problems)
    {
        if (context.Overflow is not (ContextConfig.Reject or ContextConfig.Truncate))
        {
            problems.Add(new ConfigProblem($"{path}.overflow", $"'{context.Overflow}' must be '{ContextConfig.Truncate}' or '{ContextConfig.Reject}'"));
        }

        if (context.ReservedOutput is < 0 or > 10_000_000)
        {
            problems.Add(new ConfigProblem($"{path}.reserved_output", "must be between 0 and 10000000"));
        }
        else if (model.ContextWindow is { } window and > 0 && context.ReservedOutput >= window)
        {
            problems.Add(new ConfigProblem($"{path}.reserved_output", $"{context.ReservedOutput} leaves no room for the prompt in context_window {window}"));
        }

        if (model.ContextWindow is null)
        {
            problems.Add(new ConfigProblem(path, "has no effect without context_window", IsWarning: true));
        }
    }

    private static void ValidateRouter(
        RouterConfig router,
        string path,
        IReadOnlyDictionary<string, string> modelNames,
        Dictionary<string, string> routerNames,
        List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(router.Name))
        {
            problems.Add(new ConfigProblem($"{path}.name", "is required"));
        }
        else
        {
            if (router.Name.Length > 256 || router.Name.Any(char.IsControl))
            {
                problems.Add(new ConfigProblem($"{path}.name", "must be at most 256 printable characters"));
            }

            if (modelNames.TryGetValue(router.Name, out var model))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"'{router.Name}' is already used by {model} (names and aliases are case-insensitive)"));
            }
            else if (!routerNames.TryAdd(router.Name, $"{path}.name"))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"'{router.Name}' is already used by {routerNames[router.Name]} (names are case-insensitive)"));
            }
        }

        if (router.Rules.Count == 0)
        {
            problems.Add(new ConfigProblem($"{path}.rules", "at least one rule is required (the last one with default: true)"));
            return;
        }

        var ruleNames = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var firstDefault = -1;
        for (var r = 0; r < router.Rules.Count; r++)
        {
            var rule = router.Rules[r];
            var at = $"{path}.rules[{r}]";
            if (string.IsNullOrWhiteSpace(rule.Name))
            {
                problems.Add(new ConfigProblem($"{at}.name", "is required"));
            }
            else if (rule.Name.Any(ch => char.IsControl(ch) || ch > '~' || ch == ','))
            {
                // The name travels in the x-shepherd-route-rule response header.
                problems.Add(new ConfigProblem($"{at}.name", $"'{rule.Name}' may only contain printable ASCII characters other than ','"));
            }
            else if (!ruleNames.TryAdd(rule.Name, r))
            {
                problems.Add(new ConfigProblem($"{at}.name", $"duplicate rule name '{rule.Name}' (also rules[{ruleNames[rule.Name]}])"));
            }

            ValidateTarget(rule.Model, $"{at}.model", modelNames, routerNames, problems);

            if (rule.Default)
            {
                if (firstDefault >= 0)
                {
                    problems.Add(new ConfigProblem($"{at}.default", $"only one rule may be the default (also rules[{firstDefault}])"));
                }
                else
                {
                    firstDefault = r;
                    if (r != router.Rules.Count - 1)
                    {
                        problems.Add(new ConfigProblem($"{at}.default", "the default rule must be the last: the rules after it would never be checked"));
                    }
                }

                if (rule.When is not null)
                {
                    problems.Add(new ConfigProblem($"{at}.when", "the default rule takes no conditions (it matches every request)"));
                }
            }
            else if (rule.When is null || IsEmpty(rule.When))
            {
                problems.Add(new ConfigProblem($"{at}.when", "is required: a rule without conditions matches every request (make it the default rule instead)"));
            }
            else
            {
                ValidateConditions(rule.When, $"{at}.when", problems);
            }
        }

        if (firstDefault < 0)
        {
            problems.Add(new ConfigProblem($"{path}.rules", "no default rule: the last rule needs default: true"));
        }
    }

    private static void ValidateTarget(
        string model,
        string path,
        IReadOnlyDictionary<string, string> modelNames,
        Dictionary<string, string> routerNames,
        List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            problems.Add(new ConfigProblem(path, "is required"));
        }
        else if (!modelNames.ContainsKey(model))
        {
            if (routerNames.ContainsKey(model))
            {
                problems.Add(new ConfigProblem(path, $"'{model}' is a router: a rule must name a configured model or alias"));
                return;
            }

            var suggestion = ConfigBinder.Suggest(model, modelNames.Keys);
            problems.Add(new ConfigProblem(path, $"unknown model '{model}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}"));
        }
    }

    private static bool IsEmpty(RouteConditionConfig when) =>
        when.MinPromptTokens is null && when.MaxPromptTokens is null && when.HasImages is null && when.HasTools is null &&
        when.ResponseFormat is null && when.Keywords is null && when.Tags is null && when.Priority is null && when.MaxLatencyBudgetMs is null;

    private static void ValidateConditions(RouteConditionConfig when, string path, List<ConfigProblem> problems)
    {
        if (when.MinPromptTokens is < 0)
        {
            problems.Add(new ConfigProblem($"{path}.min_prompt_tokens", "must not be negative"));
        }

        if (when.MaxPromptTokens is < 0)
        {
            problems.Add(new ConfigProblem($"{path}.max_prompt_tokens", "must not be negative"));
        }

        if (when.MinPromptTokens is { } min and >= 0 && when.MaxPromptTokens is { } max and >= 0 && min > max)
        {
            problems.Add(new ConfigProblem($"{path}.min_prompt_tokens", $"{min} is larger than max_prompt_tokens {max}: the rule can never match"));
        }

        if (when.MaxLatencyBudgetMs is < 0)
        {
            problems.Add(new ConfigProblem($"{path}.max_latency_budget_ms", "must not be negative"));
        }

        if (when.ResponseFormat is { } formats)
        {
            if (formats.Count == 0)
            {
                problems.Add(new ConfigProblem($"{path}.response_format", $"must name at least one format ({string.Join(", ", ResponseFormats)})"));
            }

            for (var k = 0; k < formats.Count; k++)
            {
                if (!ResponseFormats.Contains(formats[k]))
                {
                    problems.Add(new ConfigProblem($"{path}.response_format[{k}]", $"'{formats[k]}' is not a response format (expected {string.Join(", ", ResponseFormats)})"));
                }
            }
        }

        if (when.Keywords is { } keywords)
        {
            if (keywords.Count == 0)
            {
                problems.Add(new ConfigProblem($"{path}.keywords", "must hold at least one keyword"));
            }

            for (var k = 0; k < keywords.Count; k++)
            {
                if (string.IsNullOrWhiteSpace(keywords[k]))
                {
                    problems.Add(new ConfigProblem($"{path}.keywords[{k}]", "must not be empty"));
                }
            }
        }

        if (when.Tags is { } tags)
        {
            if (tags.Count == 0)
            {
                problems.Add(new ConfigProblem($"{path}.tags", "must hold at least one tag (key: value)"));
            }

            foreach (var (key, value) in tags)
            {
                if (!IsValidTag(key))
                {
                    problems.Add(new ConfigProblem($"{path}.tags.{key}", "a tag key must be 1 to 64 characters without ',', '=' or control characters"));
                }

                if (string.IsNullOrWhiteSpace(value) || !IsValidTagValue(value))
                {
                    problems.Add(new ConfigProblem($"{path}.tags.{key}", "the value must be 1 to 512 characters without ',' or control characters"));
                }
            }

            if (when.Priority is not null && tags.Keys.Any(k => string.Equals(k, "priority", StringComparison.OrdinalIgnoreCase)))
            {
                problems.Add(new ConfigProblem($"{path}.priority", "is shorthand for tags.priority: give one of them"));
            }
        }

        if (when.Priority is { } priority && (string.IsNullOrWhiteSpace(priority) || !IsValidTagValue(priority)))
        {
            problems.Add(new ConfigProblem($"{path}.priority", "must be 1 to 512 characters without ',' or control characters"));
        }
    }

    // Tags also arrive in a header as k=v,k=v, and in metadata (keys up to 64, values up to 512 characters).
    private static bool IsValidTag(string key) =>
        key.Trim().Length is > 0 and <= 64 && !key.Any(ch => char.IsControl(ch) || ch is ',' or '=');

    private static bool IsValidTagValue(string value) =>
        value.Trim().Length is > 0 and <= 512 && !value.Any(ch => char.IsControl(ch) || ch == ',');
}
