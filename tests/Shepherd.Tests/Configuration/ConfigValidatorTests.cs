namespace Shepherd.Tests.Configuration;

using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>Every semantic rule of the validator, each with its exact "path: message" line.</summary>
public sealed class ConfigValidatorTests
{
    /// <summary>A configuration with one provider of the given settings and one model using it.</summary>
    private static string WithProvider(string provider) => $"""
        providers:
          - {provider}
        models:
          - name: m
            deployments: [ {"{"} provider: p {"}"} ]
        """;

    /// <summary>A configuration with the simulated provider 'sim' and one model of the given settings.</summary>
    private static string WithModel(string model) => $"""
        providers: [ {"{"} name: sim, type: simulated {"}"} ]
        models:
          - {model}
        """;

    [Theory]
    [InlineData("listen: ftp://127.0.0.1:21", "listen: 'ftp://127.0.0.1:21' is not an http(s) URL such as http://127.0.0.1:8080")]
    [InlineData("listen: 127.0.0.1:8080", "listen: '127.0.0.1:8080' is not an http(s) URL such as http://127.0.0.1:8080")]
    [InlineData("listen: \"http://127.0.0.1:1;nonsense\"", "listen: 'nonsense' is not an http(s) URL such as http://127.0.0.1:8080")]
    [InlineData("listen: \"\"", "listen: must not be empty (e.g. http://127.0.0.1:8080)")]
    [InlineData("listen: \" ; \"", "listen: must not be empty (e.g. http://127.0.0.1:8080)")]
    [InlineData("server: { max_body_bytes: 1000 }", "server.max_body_bytes: must be between 1024 and 1073741824")]
    [InlineData("server: { max_body_bytes: 2147483648 }", "server.max_body_bytes: must be between 1024 and 1073741824")]
    [InlineData("server: { drain_timeout_s: -1 }", "server.drain_timeout_s: must be between 0 and 3600")]
    [InlineData("server: { trusted_proxies: [ 10.0.0.0/8, not-an-ip ] }", "server.trusted_proxies[1]: 'not-an-ip' is not an IP address or CIDR")]
    [InlineData("logging: { level: verbose }", "logging.level: unknown level 'verbose' (expected trace, debug, information, warning, error, critical or none)")]
    [InlineData("logging: { format: xml }", "logging.format: unknown format 'xml' (expected text or json)")]
    public void Validate_ServerAndLoggingRules_Reported(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
    }

    [Theory]
    [InlineData("listen: http://0.0.0.0:80")]
    [InlineData("listen: \"http://127.0.0.1:1;https://[::1]:2\"")]
    [InlineData("listen: http://*:8080")]
    [InlineData("listen: http://+:8080")]
    [InlineData("logging: { level: WARNING }")]
    [InlineData("logging: { level: info }")]
    [InlineData("server: { trusted_proxies: [ \"::1\", \"fd00::/8\" ], drain_timeout_s: 0 }")]
    public void Validate_AcceptedServerSettings_Valid(string line)
    {
        AssertValid(Minimal + "\n" + line);
    }

    [Theory]
    [InlineData("{ type: simulated }", "providers[0].name: is required")]
    [InlineData("{ name: \"my provider\", type: simulated }", "providers[0].name: 'my provider' may only contain letters, digits, '.', '_' and '-'")]
    [InlineData("{ name: p }", "providers[0].type: is required (one of openai, anthropic, gemini, simulated)")]
    [InlineData("{ name: p, type: opneai, base_url: \"https://x\" }", "providers[0].type: unknown provider type 'opneai' (expected one of openai, anthropic, gemini, simulated; did you mean 'openai'?)")]
    [InlineData("{ name: p, type: bedrock }", "providers[0].type: unknown provider type 'bedrock' (expected one of openai, anthropic, gemini, simulated)")]
    [InlineData("{ name: p, type: openai }", "providers[0].base_url: is required for an openai provider (e.g. https://api.openai.com/v1)")]
    [InlineData("{ name: p, type: anthropic, api_keys: [ k ], base_url: \"ftp://x\" }", "providers[0].base_url: 'ftp://x' is not an http(s) URL")]
    [InlineData("{ name: p, type: gemini, api_keys: [ k ], base_url: \"not a url\" }", "providers[0].base_url: 'not a url' is not an http(s) URL")]
    [InlineData("{ name: p, type: simulated, base_url: \"http://x\" }", "providers[0].base_url: a simulated provider has no base_url")]
    [InlineData("{ name: p, type: simulated, simulated: { time_to_first_token_ms: -1 } }", "providers[0].simulated.time_to_first_token_ms: must be between 0 and 600000")]
    [InlineData("{ name: p, type: simulated, simulated: { tokens_per_second: -5 } }", "providers[0].simulated.tokens_per_second: must be between 0 (instant) and 1000000")]
    [InlineData("{ name: p, type: simulated, simulated: { response_tokens: 0 } }", "providers[0].simulated.response_tokens: must be between 1 and 100000")]
    [InlineData("{ name: p, type: simulated, simulated: { prompt_tokens: -1 } }", "providers[0].simulated: fixed token counts must not be negative")]
    [InlineData("{ name: p, type: simulated, simulated: { completion_tokens: -1 } }", "providers[0].simulated: fixed token counts must not be negative")]
    [InlineData("{ name: p, type: anthropic, api_keys: [ k ], simulated: { response_tokens: 5 } }", "providers[0].simulated: only a provider of type 'simulated' takes simulated settings")]
    [InlineData("{ name: p, type: anthropic, api_keys: [ \"sk-ant-1 sk-ant-2\" ] }", "providers[0].api_keys[0]: contains white space")]
    [InlineData("{ name: p, type: openai, base_url: \"https://x\", developer_role: drop }", "providers[0].developer_role: 'drop' must be 'keep' or 'system'")]
    [InlineData("{ name: p, type: simulated, timeouts: { connect_ms: 0 } }", "providers[0].timeouts.connect_ms: must be between 1 and 600000")]
    [InlineData("{ name: p, type: simulated, timeouts: { first_byte_ms: 3600001 } }", "providers[0].timeouts.first_byte_ms: must be between 1 and 3600000")]
    [InlineData("{ name: p, type: simulated, timeouts: { idle_ms: -1 } }", "providers[0].timeouts.idle_ms: must be between 1 and 3600000")]
    [InlineData("{ name: p, type: simulated, connections: { max_per_server: -1 } }", "providers[0].connections.max_per_server: must be between 0 and 100000")]
    [InlineData("{ name: p, type: simulated, connections: { lifetime_s: 0 } }", "providers[0].connections.lifetime_s: must be between 1 and 86400")]
    [InlineData("{ name: p, type: simulated, connections: { idle_timeout_s: 86401 } }", "providers[0].connections.idle_timeout_s: must be between 1 and 86400")]
    [InlineData("{ name: p, type: simulated, headers: { \"Bad Header\": x } }", "providers[0].headers.Bad Header: is not a valid header name")]
    [InlineData("{ name: p, type: simulated, headers: { Content-Length: \"5\" } }", "providers[0].headers.Content-Length: is set by the gateway itself and cannot be configured")]
    [InlineData("{ name: p, type: simulated, headers: { X-Token: \"a\\r\\nInjected: yes\" } }", "providers[0].headers.X-Token: the value must not contain control characters (line breaks included)")]
    public void Validate_ProviderRules_Reported(string provider, string expected)
    {
        var result = Load(WithProvider(provider));
        Assert.Contains(expected, Errors(result));
    }

    [Theory]
    [InlineData("{ name: p, type: anthropic }", "providers[0].api_keys: no API key is set: requests to this provider will fail")]
    [InlineData("{ name: p, type: gemini }", "providers[0].api_keys: no API key is set: requests to this provider will fail")]
    public void Validate_KeylessProvider_Warning(string provider, string expected)
    {
        var result = Load(WithProvider(provider));
        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Contains(expected, Warnings(result));
    }

    [Fact]
    public void Validate_DuplicateProviderNames_CaseInsensitive()
    {
        AssertErrors(
            """
            providers:
              - { name: sim, type: simulated }
              - { name: SIM, type: simulated }
            models:
              - { name: m, deployments: [ { provider: sim } ] }
            """,
            "providers[1].name: duplicate provider name 'SIM' (also providers[0])");
    }

    [Fact]
    public void Validate_MalformedProviderName_NotReportedAgainWhereItIsUsed()
    {
        AssertErrors(
            """
            providers:
              - { name: "my sim", type: simulated }
            models:
              - { name: m, deployments: [ { provider: "my sim" } ] }
            """,
            "providers[0].name: 'my sim' may only contain letters, digits, '.', '_' and '-'");
    }

    [Theory]
    [InlineData("{ deployments: [ { provider: sim } ] }", "models[0].name: is required")]
    [InlineData("{ name: \"bad\\u0007name\", deployments: [ { provider: sim } ] }", "models[0].name: must be at most 256 printable characters")]
    [InlineData("{ name: m, aliases: [ \" \" ], deployments: [ { provider: sim } ] }", "models[0].aliases[0]: must not be empty")]
    [InlineData("{ name: m, aliases: [ M ], deployments: [ { provider: sim } ] }", "models[0].aliases[0]: 'M' is already used by models[0].name (names and aliases are case-insensitive)")]
    [InlineData("{ name: m, context_window: 0, deployments: [ { provider: sim } ] }", "models[0].context_window: must be positive")]
    [InlineData("{ name: m, max_output_tokens: -1, deployments: [ { provider: sim } ] }", "models[0].max_output_tokens: must be positive")]
    [InlineData("{ name: m, context_window: 100, max_output_tokens: 200, deployments: [ { provider: sim } ] }", "models[0].max_output_tokens: 200 is larger than context_window 100")]
    [InlineData("{ name: m, price: { input: -1 }, deployments: [ { provider: sim } ] }", "models[0].price.input: must not be negative")]
    [InlineData("{ name: m, price: { output: -1 }, deployments: [ { provider: sim } ] }", "models[0].price.output: must not be negative")]
    [InlineData("{ name: m, price: { cached_input: -1 }, deployments: [ { provider: sim } ] }", "models[0].price.cached_input: must not be negative")]
    [InlineData("{ name: m, price: { cache_write: -1 }, deployments: [ { provider: sim } ] }", "models[0].price.cache_write: must not be negative")]
    [InlineData("{ name: m, price: { reasoning: -0.5 }, deployments: [ { provider: sim } ] }", "models[0].price.reasoning: must not be negative")]
    [InlineData("{ name: m }", "models[0].deployments: at least one deployment is required")]
    [InlineData("{ name: m, deployments: [] }", "models[0].deployments: at least one deployment is required")]
    [InlineData("{ name: m, deployments: [ { model: x } ] }", "models[0].deployments[0].provider: is required")]
    [InlineData("{ name: m, deployments: [ { provider: sim, model: \"\" } ] }", "models[0].deployments[0].model: must not be empty")]
    [InlineData("{ name: m, deployments: [ { provider: sim }, { provider: nowhere } ] }", "models[0].deployments[1].provider: unknown provider 'nowhere'")]
    public void Validate_ModelRules_Reported(string model, string expected)
    {
        AssertErrors(WithModel(model), expected);
    }

    [Fact]
    public void Validate_ModelNameOver256Characters_Reported()
    {
        AssertErrors(WithModel($"{{ name: {new string('m', 257)}, deployments: [ {{ provider: sim }} ] }}"), "models[0].name: must be at most 256 printable characters");
    }

    [Fact]
    public void Validate_NameUsedByTwoModels_SecondReported()
    {
        AssertErrors(
            """
            providers: [ { name: sim, type: simulated } ]
            models:
              - { name: fast, aliases: [ quick ], deployments: [ { provider: sim } ] }
              - { name: Quick, deployments: [ { provider: sim } ] }
            """,
            "models[1].name: 'Quick' is already used by models[0].aliases[0] (names and aliases are case-insensitive)");
    }

    [Fact]
    public void Validate_UnknownDeploymentProvider_ExactLineWithSuggestion()
    {
        AssertErrors(
            """
            providers:
              - { name: openai, type: openai, base_url: "https://api.openai.com/v1" }
              - { name: anthropic, type: anthropic, api_keys: [ k ] }
            models:
              - { name: a, deployments: [ { provider: openai } ] }
              - { name: b, deployments: [ { provider: anthropic } ] }
              - { name: c, deployments: [ { provider: opena1 } ] }
            """,
            "models[2].deployments[0].provider: unknown provider 'opena1' (did you mean 'openai'?)");
    }

    [Fact]
    public void Validate_DeploymentProviderDifferentCase_Accepted()
    {
        AssertValid(WithModel("{ name: m, deployments: [ { provider: SIM } ] }"));
    }

    [Fact]
    public void Validate_NoModels_WarningOnly()
    {
        var result = Load("providers: [ { name: sim, type: simulated } ]");
        Assert.True(result.IsValid);
        Assert.Equal(["models: no models are configured: every chat request will get 404"], Warnings(result));
    }
}
