namespace Shepherd.Configuration;

using Shepherd.Text;

/// <summary>Checks a bound configuration for every semantic problem (references, ranges, duplicates) at once.</summary>
public static class ConfigValidator
{
    public static void Validate(ShepherdConfig config, List<ConfigProblem> problems)
    {
        ValidateListen(config.Listen, "listen", problems);
        ValidateServer(config.Server, problems);
        ValidateLogging(config.Logging, problems);
        ValidateStorage(config.Storage, problems);
        StateConfigValidator.Validate(config.State, problems);
        ValidateLimits(config.Limits, problems);

        var providerNames = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < config.Providers.Count; i++)
        {
            ValidateProvider(config.Providers[i], $"providers[{i}]", providerNames, i, problems);
        }

        var modelNames = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < config.Models.Count; i++)
        {
            ValidateModel(config.Models[i], $"models[{i}]", providerNames.Keys, modelNames, problems);
        }

        // Fallbacks are checked once every name and alias is known.
        for (var i = 0; i < config.Models.Count; i++)
        {
            var model = config.Models[i];
            for (var f = 0; f < model.Fallbacks.Count; f++)
            {
                var fallback = model.Fallbacks[f];
                var at = $"models[{i}].fallbacks[{f}]";
                if (!modelNames.TryGetValue(fallback, out var owner))
                {
                    var suggestion = ConfigBinder.Suggest(fallback, modelNames.Keys);
                    problems.Add(new ConfigProblem(at, $"unknown model '{fallback}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}"));
                }
                else if (owner.StartsWith($"models[{i}].", StringComparison.Ordinal))
                {
                    problems.Add(new ConfigProblem(at, "a model cannot be its own fallback"));
                }
            }
        }

        ValidateRouting(config.Routing, problems);
        ValidateUsage(config.Usage, problems);
        TelemetryConfigValidator.Validate(config.Telemetry, problems);

        RoutingConfigValidator.Validate(config, modelNames, problems);
        WebhooksConfigValidator.Validate(config, modelNames, problems);

        if (config.Models.Count == 0)
        {
            problems.Add(new ConfigProblem("models", "no models are configured: every chat request will get 404", IsWarning: true));
        }
    }

    private static void ValidateUsage(UsageConfig usage, List<ConfigProblem> problems)
    {
        CheckRange(usage.RetentionDays, 0, 36_500, "usage.retention_days", problems);
        CheckRange(usage.QueueCapacity, 100, 10_000_000, "usage.queue_capacity", problems);
        CheckRange(usage.BatchSize, 1, 100_000, "usage.batch_size", problems);
        CheckRange(usage.FlushIntervalMs, 10, 60_000, "usage.flush_interval_ms", problems);
        CheckRange(usage.WriteTimeoutMs, 100, 600_000, "usage.write_timeout_ms", problems);
        if (usage.SpillPath is { } path && string.IsNullOrWhiteSpace(path))
        {
            problems.Add(new ConfigProblem("usage.spill_path", "must not be empty"));
        }
    }

    private static void ValidateRouting(RoutingConfig routing, List<ConfigProblem> problems)
    {
        CheckRange(routing.MaxAttempts, 1, 20, "routing.max_attempts", problems);
        CheckRange(routing.DeadlineMs, 1, 3_600_000, "routing.deadline_ms", problems);
        CheckRange(routing.BackoffBaseMs, 0, 600_000, "routing.backoff_base_ms", problems);
        CheckRange(routing.BackoffMaxMs, 0, 3_600_000, "routing.backoff_max_ms", problems);
        CheckRange(routing.HealthProbeIntervalS, 0, 86_400, "routing.health_probe_interval_s", problems);
        if (routing.RetryBudget.Ratio is < 0 or > 10 || double.IsNaN(routing.RetryBudget.Ratio))
        {
            problems.Add(new ConfigProblem("routing.retry_budget.ratio", "must be between 0 and 10"));
        }

        CheckRange(routing.RetryBudget.WindowS, 1, 3600, "routing.retry_budget.window_s", problems);
        CheckRange(routing.RetryBudget.MinPerSecond, 0, 100_000, "routing.retry_budget.min_per_second", problems);
        var breaker = routing.Breaker;
        CheckRange(breaker.ConsecutiveFailures, 1, 1_000_000, "routing.breaker.consecutive_failures", problems);
        if (breaker.FailureRate is < 0.01 or > 1 || double.IsNaN(breaker.FailureRate))
        {
            problems.Add(new ConfigProblem("routing.breaker.failure_rate", "must be between 0.01 and 1"));
        }

        CheckRange(breaker.MinRequests, 1, 1_000_000, "routing.breaker.min_requests", problems);
        CheckRange(breaker.WindowS, 1, 3600, "routing.breaker.window_s", problems);
        CheckRange(breaker.CooldownS, 1, 86_400, "routing.breaker.cooldown_s", problems);
    }

    /// <summary>Checks a <c>listen</c> value (or the CLI's <c>--urls</c>): one or more http(s) URLs separated by ';'.</summary>
    public static IReadOnlyList<ConfigProblem> ValidateListen(string listen, string path)
    {
        var problems = new List<ConfigProblem>();
        ValidateListen(listen, path, problems);
        return problems;
    }

    private static void ValidateListen(string listen, string path, List<ConfigProblem> problems)
    {
        // Empty (e.g. an unset ${VAR}) would make Kestrel fall back to its own default port without a word.
        if (string.IsNullOrWhiteSpace(listen) || listen.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Length == 0)
        {
            problems.Add(new ConfigProblem(path, "must not be empty (e.g. http://127.0.0.1:8080)"));
            return;
        }

        foreach (var url in listen.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url.Replace("*", "0.0.0.0", StringComparison.Ordinal).Replace("+", "0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri) ||
                uri.Scheme is not ("http" or "https"))
            {
                problems.Add(new ConfigProblem(path, $"'{url}' is not an http(s) URL such as http://127.0.0.1:8080"));
            }
        }
    }

    private static void ValidateServer(ServerConfig server, List<ConfigProblem> problems)
    {
        if (server.MaxBodyBytes is < 1024 or > 1L << 30)
        {
            problems.Add(new ConfigProblem("server.max_body_bytes", "must be between 1024 and 1073741824"));
        }

        if (server.DrainTimeoutS is < 0 or > 3600)
        {
            problems.Add(new ConfigProblem("server.drain_timeout_s", "must be between 0 and 3600"));
        }

        for (var i = 0; i < server.TrustedProxies.Count; i++)
        {
            if (!System.Net.IPNetwork.TryParse(server.TrustedProxies[i], out _) && !System.Net.IPAddress.TryParse(server.TrustedProxies[i], out _))
            {
                problems.Add(new ConfigProblem($"server.trusted_proxies[{i}]", $"'{server.TrustedProxies[i]}' is not an IP address or CIDR"));
            }
        }
    }

    private static void ValidateStorage(string storage, List<ConfigProblem> problems)
    {
        if (StorageUrl.Problem(storage) is { } problem)
        {
            // Never echo a connection string back: it may hold a password.
            problems.Add(new ConfigProblem("storage",
                StorageUrl.IsPostgres(storage) ? $"not a usable PostgreSQL setting: {problem}"
                : storage.Contains('@', StringComparison.Ordinal) ? $"not a storage URL ({problem})"
                : $"'{storage}' is not a storage URL ({problem})"));
        }
    }

    private static void ValidateLimits(LimitsConfig limits, List<ConfigProblem> problems)
    {
        if (limits.ReserveOutputTokens is < 1 or > 10_000_000)
        {
            problems.Add(new ConfigProblem("limits.reserve_output_tokens", "must be between 1 and 10000000"));
        }

        if (!TryFindTimeZone(limits.TimeZone, out _))
        {
            problems.Add(new ConfigProblem("limits.time_zone", $"unknown time zone '{limits.TimeZone}' (use an IANA id such as UTC or Europe/Berlin)"));
        }
    }

    /// <summary>Resolves a time zone id (IANA or Windows).</summary>
    public static bool TryFindTimeZone(string id, out TimeZoneInfo zone)
    {
        if (string.Equals(id, "UTC", StringComparison.OrdinalIgnoreCase))
        {
            zone = TimeZoneInfo.Utc;
            return true;
        }

        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            return true;
        }
        catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException)
        {
            zone = TimeZoneInfo.Utc;
            return false;
        }
    }

    private static void ValidateLogging(LoggingConfig logging, List<ConfigProblem> problems)
    {
        if (logging.Level.ToLowerInvariant() is not ("trace" or "debug" or "information" or "info" or "warning" or "error" or "critical" or "none"))
        {
            problems.Add(new ConfigProblem("logging.level", $"unknown level '{logging.Level}' (expected trace, debug, information, warning, error, critical or none)"));
        }

        if (logging.Format is not ("text" or "json"))
        {
            problems.Add(new ConfigProblem("logging.format", $"unknown format '{logging.Format}' (expected text or json)"));
        }
    }

    private static void ValidateProvider(ProviderConfig provider, string path, Dictionary<string, int> names, int index, List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(provider.Name))
        {
            problems.Add(new ConfigProblem($"{path}.name", "is required"));
        }
        else
        {
            if (!IsValidName(provider.Name))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"'{provider.Name}' may only contain letters, digits, '.', '_' and '-'"));
            }

            // Registered even when malformed, so deployments that name it are not reported a second time.
            if (!names.TryAdd(provider.Name, index))
            {
                problems.Add(new ConfigProblem($"{path}.name", $"duplicate provider name '{provider.Name}' (also providers[{names[provider.Name]}])"));
            }
        }

        if (string.IsNullOrWhiteSpace(provider.Type))
        {
            problems.Add(new ConfigProblem($"{path}.type", $"is required (one of {string.Join(", ", ProviderTypes.All)})"));
        }
        else if (!ProviderTypes.All.Contains(provider.Type))
        {
            var suggestion = Configuration.ConfigBinder.Suggest(provider.Type, ProviderTypes.All);
            problems.Add(new ConfigProblem(
                $"{path}.type",
                $"unknown provider type '{provider.Type}' (expected one of {string.Join(", ", ProviderTypes.All)}{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")})"));
        }

        if (provider.Type == ProviderTypes.OpenAI && string.IsNullOrWhiteSpace(provider.BaseUrl))
        {
            problems.Add(new ConfigProblem($"{path}.base_url", "is required for an openai provider (e.g. https://api.openai.com/v1)"));
        }

        if (!string.IsNullOrWhiteSpace(provider.BaseUrl) &&
            (!Uri.TryCreate(provider.BaseUrl, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https")))
        {
            problems.Add(new ConfigProblem($"{path}.base_url", $"'{provider.BaseUrl}' is not an http(s) URL"));
        }

        if (provider.Type == ProviderTypes.Simulated)
        {
            if (!string.IsNullOrWhiteSpace(provider.BaseUrl))
            {
                problems.Add(new ConfigProblem($"{path}.base_url", "a simulated provider has no base_url"));
            }

            if (provider.Simulated is { } sim)
            {
                if (sim.TimeToFirstTokenMs is < 0 or > 600_000)
                {
                    problems.Add(new ConfigProblem($"{path}.simulated.time_to_first_token_ms", "must be between 0 and 600000"));
                }

                if (sim.TokensPerSecond is < 0 or > 1_000_000)
                {
                    problems.Add(new ConfigProblem($"{path}.simulated.tokens_per_second", "must be between 0 (instant) and 1000000"));
                }

                if (sim.ResponseTokens is < 1 or > 100_000)
                {
                    problems.Add(new ConfigProblem($"{path}.simulated.response_tokens", "must be between 1 and 100000"));
                }

                if (sim.PromptTokens is < 0 || sim.CompletionTokens is < 0)
                {
                    problems.Add(new ConfigProblem($"{path}.simulated", "fixed token counts must not be negative"));
                }
            }
        }
        else if (provider.Simulated is not null)
        {
            problems.Add(new ConfigProblem($"{path}.simulated", "only a provider of type 'simulated' takes simulated settings"));
        }

        if (provider.Type is ProviderTypes.Anthropic or ProviderTypes.Gemini && provider.ApiKeys.Count == 0)
        {
            problems.Add(new ConfigProblem($"{path}.api_keys", "no API key is set: requests to this provider will fail", IsWarning: true));
        }

        for (var k = 0; k < provider.ApiKeys.Count; k++)
        {
            if (provider.ApiKeys[k].Any(char.IsWhiteSpace))
            {
                problems.Add(new ConfigProblem($"{path}.api_keys[{k}]", "contains white space"));
            }
        }

        if (provider.DeveloperRole is not (null or "keep" or "system"))
        {
            problems.Add(new ConfigProblem($"{path}.developer_role", $"'{provider.DeveloperRole}' must be 'keep' or 'system'"));
        }

        var t = provider.Timeouts;
        CheckRange(t.ConnectMs, 1, 600_000, $"{path}.timeouts.connect_ms", problems);
        CheckRange(t.FirstByteMs, 1, 3_600_000, $"{path}.timeouts.first_byte_ms", problems);
        CheckRange(t.IdleMs, 1, 3_600_000, $"{path}.timeouts.idle_ms", problems);
        var c = provider.Connections;
        CheckRange(c.MaxPerServer, 0, 100_000, $"{path}.connections.max_per_server", problems);
        CheckRange(c.LifetimeS, 1, 86_400, $"{path}.connections.lifetime_s", problems);
        CheckRange(c.IdleTimeoutS, 1, 86_400, $"{path}.connections.idle_timeout_s", problems);

        foreach (var (header, value) in provider.Headers)
        {
            if (string.IsNullOrWhiteSpace(header) || header.Any(ch => ch <= ' ' || ch == ':' || ch > '~'))
            {
                problems.Add(new ConfigProblem($"{path}.headers.{header}", "is not a valid header name"));
            }
            else if (ReservedHeaders.Contains(header))
            {
                problems.Add(new ConfigProblem($"{path}.headers.{header}", "is set by the gateway itself and cannot be configured"));
            }

            // A CR or LF (say, from an environment variable read from a file) would fail every upstream request.
            if (value.Any(ch => char.IsControl(ch) && ch != '\t'))
            {
                problems.Add(new ConfigProblem($"{path}.headers.{header}", "the value must not contain control characters (line breaks included)"));
            }
        }
    }

    /// <summary>Headers that frame the HTTP message; the gateway's HTTP client owns them.</summary>
    private static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer", "Proxy-Connection",
    };

    private static void ValidateModel(
        ModelConfig model,
        string path,
        IEnumerable<string> providers,
        Dictionary<string, string> names,
        List<ConfigProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(model.Name))
        {
            problems.Add(new ConfigProblem($"{path}.name", "is required"));
        }
        else
        {
            AddName(model.Name, $"{path}.name", names, problems);
        }

        for (var a = 0; a < model.Aliases.Count; a++)
        {
            if (string.IsNullOrWhiteSpace(model.Aliases[a]))
            {
                problems.Add(new ConfigProblem($"{path}.aliases[{a}]", "must not be empty"));
                continue;
            }

            AddName(model.Aliases[a], $"{path}.aliases[{a}]", names, problems);
        }

        if (model.ContextWindow is <= 0)
        {
            problems.Add(new ConfigProblem($"{path}.context_window", "must be positive"));
        }

        if (model.MaxOutputTokens is <= 0)
        {
            problems.Add(new ConfigProblem($"{path}.max_output_tokens", "must be positive"));
        }

        if (model.MaxOutputTokens is { } maxOut && model.ContextWindow is { } window && maxOut > window)
        {
            problems.Add(new ConfigProblem($"{path}.max_output_tokens", $"{maxOut} is larger than context_window {window}"));
        }

        for (var h = 0; h < model.PriceHistory.Count; h++)
        {
            var entry = model.PriceHistory[h];
            CheckPrice(entry.Input, $"{path}.price_history[{h}].input", problems);
            CheckPrice(entry.Output, $"{path}.price_history[{h}].output", problems);
            CheckPrice(entry.CachedInput, $"{path}.price_history[{h}].cached_input", problems);
            CheckPrice(entry.CacheWrite, $"{path}.price_history[{h}].cache_write", problems);
            CheckPrice(entry.Reasoning, $"{path}.price_history[{h}].reasoning", problems);
            if (entry.EffectiveFrom is null)
            {
                problems.Add(new ConfigProblem($"{path}.price_history[{h}].effective_from", "is required in a price history entry"));
            }

            CheckEffective(entry.EffectiveFrom, $"{path}.price_history[{h}].effective_from", problems);
        }

        if (model.Price is { EffectiveFrom: { } effective })
        {
            CheckEffective(effective, $"{path}.price.effective_from", problems);
        }

        if (model.Price is { } price)
        {
            CheckPrice(price.Input, $"{path}.price.input", problems);
            CheckPrice(price.Output, $"{path}.price.output", problems);
            CheckPrice(price.CachedInput, $"{path}.price.cached_input", problems);
            CheckPrice(price.CacheWrite, $"{path}.price.cache_write", problems);
            CheckPrice(price.Reasoning, $"{path}.price.reasoning", problems);
        }

        if (model.Deployments.Count == 0)
        {
            problems.Add(new ConfigProblem($"{path}.deployments", "at least one deployment is required"));
        }

        var providerList = providers.ToList();
        for (var d = 0; d < model.Deployments.Count; d++)
        {
            var deployment = model.Deployments[d];
            var at = $"{path}.deployments[{d}]";
            if (string.IsNullOrWhiteSpace(deployment.Provider))
            {
                problems.Add(new ConfigProblem($"{at}.provider", "is required"));
            }
            else if (!providerList.Contains(deployment.Provider, StringComparer.OrdinalIgnoreCase))
            {
                var suggestion = ConfigBinder.Suggest(deployment.Provider, providerList);
                problems.Add(new ConfigProblem($"{at}.provider", $"unknown provider '{deployment.Provider}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}"));
            }

            if (deployment.Model is not null && string.IsNullOrWhiteSpace(deployment.Model))
            {
                problems.Add(new ConfigProblem($"{at}.model", "must not be empty"));
            }

            CheckRange(deployment.Weight, 1, 1_000_000, $"{at}.weight", problems);
            CheckRange(deployment.Priority, 0, 1_000_000, $"{at}.priority", problems);
            if (deployment.MaxConcurrency is { } concurrency)
            {
                CheckRange(concurrency, 1, 1_000_000, $"{at}.max_concurrency", problems);
            }

            CheckRange(deployment.QueueSize, 0, 1_000_000, $"{at}.queue_size", problems);
            CheckRange(deployment.QueueTimeoutMs, 1, 600_000, $"{at}.queue_timeout_ms", problems);
            if (deployment.Rpm is { } rpm)
            {
                CheckRange(rpm, 1, int.MaxValue, $"{at}.rpm", problems);
            }

            if (deployment.Tpm is { } tpm)
            {
                CheckRange(tpm, 1, int.MaxValue, $"{at}.tpm", problems);
            }

            if (deployment.Price is { } deploymentPrice)
            {
                CheckPrice(deploymentPrice.Input, $"{at}.price.input", problems);
                CheckPrice(deploymentPrice.Output, $"{at}.price.output", problems);
                CheckPrice(deploymentPrice.CachedInput, $"{at}.price.cached_input", problems);
                CheckPrice(deploymentPrice.CacheWrite, $"{at}.price.cache_write", problems);
                CheckPrice(deploymentPrice.Reasoning, $"{at}.price.reasoning", problems);
            }
        }

        if (!Routing.Strategies.RoutingStrategies.TryGet(model.Strategy, out _))
        {
            var suggestion = ConfigBinder.Suggest(model.Strategy, Routing.Strategies.RoutingStrategies.Names);
            problems.Add(new ConfigProblem(
                $"{path}.strategy",
                $"unknown strategy '{model.Strategy}' (expected one of {string.Join(", ", Routing.Strategies.RoutingStrategies.Names.Order(StringComparer.Ordinal))}{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")})"));
        }

        if (model.Hedging is { } hedging)
        {
            CheckRange(hedging.DelayMs, 0, 600_000, $"{path}.hedging.delay_ms", problems);
            CheckRange(hedging.MaxAttempts, 1, 10, $"{path}.hedging.max_attempts", problems);
            if (model.Deployments.Count < 2)
            {
                problems.Add(new ConfigProblem($"{path}.hedging", "hedging needs at least two deployments to race", IsWarning: true));
            }
        }
    }

    private static void AddName(string name, string path, Dictionary<string, string> names, List<ConfigProblem> problems)
    {
        if (name.Length > 256 || name.Any(char.IsControl))
        {
            problems.Add(new ConfigProblem(path, "must be at most 256 printable characters"));
        }

        if (!names.TryAdd(name, path))
        {
            problems.Add(new ConfigProblem(path, $"'{name}' is already used by {names[name]} (names and aliases are case-insensitive)"));
        }
    }

    private static void CheckEffective(string? value, string path, List<ConfigProblem> problems)
    {
        if (value is null)
        {
            return;
        }

        try
        {
            Accounting.Pricing.ParseEffective(value);
        }
        catch (FormatException)
        {
            problems.Add(new ConfigProblem(path, $"'{value}' is not a date (2026-12-01) or an ISO 8601 date-time"));
        }
    }

    private static void CheckPrice(decimal? value, string path, List<ConfigProblem> problems)
    {
        if (value is < 0)
        {
            problems.Add(new ConfigProblem(path, "must not be negative"));
        }
    }

    private static void CheckRange(int value, int min, int max, string path, List<ConfigProblem> problems)
    {
        if (value < min || value > max)
        {
            problems.Add(new ConfigProblem(path, $"must be between {min} and {max}"));
        }
    }

    private static bool IsValidName(string name) =>
        name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-');
}
