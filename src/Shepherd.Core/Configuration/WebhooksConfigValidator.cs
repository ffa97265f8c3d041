namespace Shepherd.Configuration;

using Shepherd.Webhooks;

/// <summary>
/// Checks the <c>webhooks</c> section (sources, secrets, headers, rules and their templates, delivery), reporting
/// every problem with its key path like <see cref="ConfigValidator"/>, which calls it once the model names are known.
/// </summary>
public static class WebhooksConfigValidator
{
    /// <param name="config">The bound configuration.</param>
    /// <param name="modelNames">Every model name and alias (case-insensitive).</param>
    /// <param name="problems">Receives the problems.</param>
    public static void Validate(ShepherdConfig config, IReadOnlyDictionary<string, string> modelNames, List<ConfigProblem> problems)
    {
        var webhooks = config.Webhooks;
        CheckRange(webhooks.Workers, 0, 1024, "webhooks.workers", problems);
        CheckRange(webhooks.LeaseS, 1, 86_400, "webhooks.lease_s", problems);
        CheckRange(webhooks.RetentionDays, 0, 36_500, "webhooks.retention_days", problems);
        CheckRange(webhooks.Retry.MaxAttempts, 1, 100, "webhooks.retry.max_attempts", problems);
        CheckRange(webhooks.Retry.BaseMs, 1, 3_600_000, "webhooks.retry.base_ms", problems);
        CheckRange(webhooks.Retry.MaxMs, 1, 86_400_000, "webhooks.retry.max_ms", problems);
        if (webhooks.Retry.MaxMs < webhooks.Retry.BaseMs)
        {
            problems.Add(new ConfigProblem("webhooks.retry.max_ms", $"{webhooks.Retry.MaxMs} is smaller than base_ms {webhooks.Retry.BaseMs}"));
        }

        var targets = new HashSet<string>(modelNames.Keys, StringComparer.OrdinalIgnoreCase);
        foreach (var router in config.Routers)
        {
            targets.Add(router.Name);
        }

        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < webhooks.Sources.Count; i++)
        {
            ValidateSource(webhooks.Sources[i], $"webhooks.sources[{i}]", config.Server.MaxBodyBytes, targets, names, problems);
        }
    }

    private static void ValidateSource(
        WebhookSourceConfig source,
        string path,
        long serverMaxBody,
        HashSet<string> models,
        Dictionary<string, string> names,
        List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(source.Name))
        {
            problems.Add(new ConfigProblem($"{path}.name", "is required"));
        }
        else
        {
            if (source.Name.Length > 64 || !source.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"'{source.Name}' must be at most 64 letters, digits, '.', '_' or '-' (it is a URL path segment)"));
            }

            if (!names.TryAdd(source.Name, path))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"duplicate source name '{source.Name}' (also {names[source.Name]}; names are case-insensitive)"));
            }
        }

        if (source.Secrets.Count == 0)
        {
            problems.Add(new ConfigProblem($"{path}.secrets", "no secret is set: every request would be refused (an unset ${VAR:-} counts as none)"));
        }

        for (var s = 0; s < source.Secrets.Count; s++)
        {
            if (source.Secrets[s].Length < 16)
            {
                problems.Add(new ConfigProblem($"{path}.secrets[{s}]", "is shorter than 16 characters: easy to guess", IsWarning: true));
            }
        }

        CheckHeader(source.SignatureHeader, $"{path}.signature_header", required: true, problems);
        CheckHeader(source.TimestampHeader, $"{path}.timestamp_header", required: false, problems);
        CheckHeader(source.IdHeader, $"{path}.id_header", required: false, problems);
        CheckRange(source.ToleranceS, 1, 86_400, $"{path}.tolerance_s", problems);
        CheckField(source.IdField, $"{path}.id_field", problems);
        CheckField(source.TypeField, $"{path}.type_field", problems);
        if (source.MaxBodyBytes < 2)
        {
            problems.Add(new ConfigProblem($"{path}.max_body_bytes", "must be at least 2"));
        }
        else if (source.MaxBodyBytes > serverMaxBody)
        {
            problems.Add(new ConfigProblem($"{path}.max_body_bytes", $"{source.MaxBodyBytes} is larger than server.max_body_bytes ({serverMaxBody}), which refuses such bodies first"));
        }

        if (source.Key is { } key && (key.Length == 0 || key.Any(char.IsWhiteSpace)))
        {
            problems.Add(new ConfigProblem($"{path}.key", "must be a virtual key without white space"));
        }
        else if (source.Key is null)
        {
            problems.Add(new ConfigProblem($"{path}.key", "not set: processing runs under the master key, with no limits or budget", IsWarning: true));
        }

        if (source.Rules.Count == 0)
        {
            problems.Add(new ConfigProblem($"{path}.rules", "no rules: every event is stored as skipped", IsWarning: true));
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        int? catchAll = null;
        for (var r = 0; r < source.Rules.Count; r++)
        {
            var rule = source.Rules[r];
            var at = $"{path}.rules[{r}]";
            if (string.IsNullOrWhiteSpace(rule.On))
            {
                problems.Add(new ConfigProblem($"{at}.on", "is required (an event type, a prefix such as agent.*, or * for every type)"));
            }
            else if (rule.On.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)) || rule.On.IndexOf('*', StringComparison.Ordinal) is var star && star >= 0 && star != rule.On.Length - 1)
            {
                problems.Add(new ConfigProblem($"{at}.on", $"'{rule.On}' must be an event type, a prefix ending in * (agent.*), or *"));
            }
            else
            {
                if (!seen.TryAdd(rule.On, r))
                {
                    problems.Add(new ConfigProblem($"{at}.on", $"'{rule.On}' is already matched by rules[{seen[rule.On]}]: this rule is never used"));
                }

                if (catchAll is { } all)
                {
                    problems.Add(new ConfigProblem($"{at}.on", $"rules[{all}] matches every event type ('*'), so this rule is never used: the catch-all must be last"));
                }

                if (rule.On == "*")
                {
                    catchAll ??= r;
                }
            }

            ValidateRule(rule, at, models, problems);
        }

        if (source.Deliver is { } deliver)
        {
            if (!Uri.TryCreate(deliver.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                problems.Add(new ConfigProblem($"{path}.deliver.url", $"'{deliver.Url}' is not an http(s) URL"));
            }

            if (string.IsNullOrEmpty(deliver.Secret))
            {
                problems.Add(new ConfigProblem($"{path}.deliver.secret", "is required: deliveries are signed"));
            }

            CheckRange(deliver.TimeoutMs, 1, 600_000, $"{path}.deliver.timeout_ms", problems);
        }
    }

    private static void ValidateRule(WebhookRuleConfig rule, string at, HashSet<string> models, List<ConfigProblem> problems)
    {
        if (rule.Action == WebhookRuleConfig.SkipAction)
        {
            if (rule.Model is not null || rule.System is not null || rule.User is not null || rule.Temperature is not null || rule.MaxTokens is not null)
            {
                problems.Add(new ConfigProblem(at, "a skip rule takes no model, system, user, temperature or max_tokens"));
            }

            return;
        }

        if (rule.Action != WebhookRuleConfig.ProcessAction)
        {
            problems.Add(new ConfigProblem($"{at}.action", $"'{rule.Action}' must be '{WebhookRuleConfig.ProcessAction}' or '{WebhookRuleConfig.SkipAction}'"));
            return;
        }

        if (string.IsNullOrWhiteSpace(rule.Model))
        {
            problems.Add(new ConfigProblem($"{at}.model", "is required (or set action: skip)"));
        }
        else if (!models.Contains(rule.Model))
        {
            var suggestion = ConfigBinder.Suggest(rule.Model, models);
            problems.Add(new ConfigProblem($"{at}.model", $"unknown model '{rule.Model}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}"));
        }

        foreach (var (template, key) in new[] { (rule.System, "system"), (rule.User, "user") })
        {
            if (template is not null && WebhookTemplate.TryParse(template, out var error) is null)
            {
                problems.Add(new ConfigProblem($"{at}.{key}", error!));
            }
        }

        if (rule.Temperature is < 0 or > 2)
        {
            problems.Add(new ConfigProblem($"{at}.temperature", "must be between 0 and 2"));
        }

        if (rule.MaxTokens is { } maxTokens)
        {
            CheckRange(maxTokens, 1, 10_000_000, $"{at}.max_tokens", problems);
        }
    }

    private static void CheckField(string field, string path, List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(field))
        {
            problems.Add(new ConfigProblem(path, "is required (a dotted JSON path such as data.id)"));
        }
        else if (!JsonPath.TryParse(field, out var parsed, out var error))
        {
            problems.Add(new ConfigProblem(path, error!));
        }
        else if (parsed!.IsRoot)
        {
            problems.Add(new ConfigProblem(path, "must name a field, not the whole event"));
        }
    }

    private static void CheckHeader(string? header, string path, bool required, List<ConfigProblem> problems)
    {
        if (header is null)
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(header))
        {
            problems.Add(new ConfigProblem(path, required ? "is required" : "must not be empty"));
        }
        else if (header.Any(c => c <= ' ' || c > '~' || c is ':' or '(' or ')' or ',' or '/' or ';' or '<' or '=' or '>' or '?' or '@' or '[' or '\\' or ']' or '{' or '}' or '"'))
        {
            problems.Add(new ConfigProblem(path, $"'{header}' is not a valid header name"));
        }
    }

    private static void CheckRange(int value, int min, int max, string path, List<ConfigProblem> problems)
    {
        if (value < min || value > max)
        {
            problems.Add(new ConfigProblem(path, $"must be between {min} and {max}"));
        }
    }
}
