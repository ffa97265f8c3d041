namespace Shepherd.Tests.Configuration;

using Shepherd.Configuration;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>Binding YAML to the configuration records: unknown keys, wrong types, duplicates, all with key paths.</summary>
public sealed class ConfigBinderTests
{
    [Theory]
    [InlineData("BaseUrl", "base_url")]
    [InlineData("MaxBodyBytes", "max_body_bytes")]
    [InlineData("TimeToFirstTokenMs", "time_to_first_token_ms")]
    [InlineData("Http2", "http2")]
    [InlineData("DrainTimeoutS", "drain_timeout_s")]
    [InlineData("Name", "name")]
    public void ToSnakeCase_PropertyNames_BecomeKeys(string property, string key)
    {
        Assert.Equal(key, ConfigBinder.ToSnakeCase(property));
    }

    [Fact]
    public void Bind_FullConfiguration_EveryKeyBound()
    {
        var config = AssertValid("""
            listen: http://0.0.0.0:9000
            master_key: sk-master
            server:
              max_body_bytes: 2048
              drain_timeout_s: 5
              trusted_proxies: [ 10.0.0.0/8, 127.0.0.1 ]
            logging:
              level: debug
              requests: false
              bodies: true
              format: json
            providers:
              - name: oai
                type: openai
                base_url: https://api.openai.com/v1
                api_keys: [ sk-1, sk-2 ]
                timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 3000 }
                connections: { max_per_server: 10, lifetime_s: 60, idle_timeout_s: 30, http2: false }
                headers: { OpenAI-Organization: org-1 }
                developer_role: keep
              - name: claude
                type: anthropic
                api_keys: [ sk-ant-1 ]
                anthropic_version: 2023-06-01
              - name: sim
                type: simulated
                simulated: { time_to_first_token_ms: 5, tokens_per_second: 100.5, response_tokens: 7, prompt_tokens: 3, completion_tokens: 4 }
            models:
              - name: gpt-4.1
                aliases: [ gpt4, best ]
                context_window: 1000000
                max_output_tokens: 32768
                price: { input: 2, output: 8, cached_input: 0.5, cache_write: 2.5, reasoning: 8 }
                owned_by: openai
                deployments:
                  - { provider: oai, model: gpt-4.1-2025-04-14 }
                  - { provider: claude }
            """);

        Assert.Equal("http://0.0.0.0:9000", config.Listen);
        Assert.Equal("sk-master", config.MasterKey);
        Assert.Equal(2048, config.Server.MaxBodyBytes);
        Assert.Equal(5, config.Server.DrainTimeoutS);
        Assert.Equal(["10.0.0.0/8", "127.0.0.1"], config.Server.TrustedProxies);
        Assert.Equal("debug", config.Logging.Level);
        Assert.False(config.Logging.Requests);
        Assert.True(config.Logging.Bodies);
        Assert.Equal("json", config.Logging.Format);

        var oai = config.Providers[0];
        Assert.Equal(["sk-1", "sk-2"], oai.ApiKeys);
        Assert.Equal(new TimeoutsConfig { ConnectMs = 1000, FirstByteMs = 2000, IdleMs = 3000 }, oai.Timeouts);
        Assert.Equal(new ConnectionsConfig { MaxPerServer = 10, LifetimeS = 60, IdleTimeoutS = 30, Http2 = false }, oai.Connections);
        Assert.Equal("org-1", oai.Headers["OpenAI-Organization"]);
        Assert.Equal("keep", oai.DeveloperRole);
        Assert.Equal("2023-06-01", config.Providers[1].AnthropicVersion);
        Assert.Equal(new SimulatedConfig { TimeToFirstTokenMs = 5, TokensPerSecond = 100.5, ResponseTokens = 7, PromptTokens = 3, CompletionTokens = 4 }, config.Providers[2].Simulated);

        var model = config.Models[0];
        Assert.Equal(["gpt4", "best"], model.Aliases);
        Assert.Equal(1_000_000, model.ContextWindow);
        Assert.Equal(32768, model.MaxOutputTokens);
        Assert.Equal(new PriceConfig { Input = 2, Output = 8, CachedInput = 0.5m, CacheWrite = 2.5m, Reasoning = 8 }, model.Price);
        Assert.Equal("openai", model.OwnedBy);
        Assert.Equal("gpt-4.1-2025-04-14", model.Deployments[0].Model);
        Assert.Null(model.Deployments[1].Model);
    }

    [Fact]
    public void Bind_EmptyDocument_Defaults()
    {
        var result = Load("");
        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Equal(ShepherdConfig.DefaultListen, result.Config!.Listen);
        Assert.Equal(10 * 1024 * 1024, result.Config.Server.MaxBodyBytes);
        Assert.Contains("models: no models are configured: every chat request will get 404", Warnings(result));
    }

    [Fact]
    public void Bind_NullValues_KeepDefaults()
    {
        var config = AssertValid(Minimal + """

            server:
              max_body_bytes: ~
            logging: null
            """);
        Assert.Equal(10 * 1024 * 1024, config.Server.MaxBodyBytes);
        Assert.Equal("information", config.Logging.Level);
    }

    [Theory]
    [InlineData("modles: []", "modles: unknown key (did you mean 'models'?)")]
    [InlineData("masterkey: x", "masterkey: unknown key (did you mean 'master_key'?)")]
    [InlineData("server: { max_body_byte: 2048 }", "server.max_body_byte: unknown key (did you mean 'max_body_bytes'?)")]
    [InlineData("logging: { levle: debug }", "logging.levle: unknown key (did you mean 'level'?)")]
    [InlineData("totally_unrelated_key: 1", "totally_unrelated_key: unknown key")]
    public void Bind_UnknownTopLevelOrSectionKey_ErrorWithSuggestion(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
    }

    [Theory]
    [InlineData("base_ur: https://x", "providers[0].base_ur: unknown key (did you mean 'base_url'?)")]
    [InlineData("api_key: [ k ]", "providers[0].api_key: unknown key (did you mean 'api_keys'?)")]
    [InlineData("timeouts: { conect_ms: 5 }", "providers[0].timeouts.conect_ms: unknown key (did you mean 'connect_ms'?)")]
    [InlineData("connections: { http_2: true }", "providers[0].connections.http_2: unknown key (did you mean 'http2'?)")]
    [InlineData("simulated: { response_token: 5 }", "providers[0].simulated.response_token: unknown key (did you mean 'response_tokens'?)")]
    public void Bind_UnknownProviderKeyAtAnyDepth_ErrorWithSuggestion(string line, string expected)
    {
        AssertErrors($"""
            providers:
              - name: sim
                type: simulated
                {line}
            models:
              - name: m
                deployments: [ {"{"} provider: sim {"}"} ]
            """, expected);
    }

    [Theory]
    [InlineData("alias: [ x ]", "models[0].alias: unknown key (did you mean 'aliases'?)")]
    [InlineData("price: { inptu: 1 }", "models[0].price.inptu: unknown key (did you mean 'input'?)")]
    [InlineData("context_size: 5", "models[0].context_size: unknown key")]
    public void Bind_UnknownModelKey_ErrorWithSuggestion(string line, string expected)
    {
        AssertErrors($"""
            providers: [ {"{"} name: sim, type: simulated {"}"} ]
            models:
              - name: m
                {line}
                deployments: [ {"{"} provider: sim {"}"} ]
            """, expected);
    }

    [Fact]
    public void Bind_UnknownDeploymentKey_ErrorWithSuggestion()
    {
        AssertErrors("""
            providers: [ { name: sim, type: simulated } ]
            models:
              - name: m
                deployments:
                  - provider: sim
                  - { provider: sim, modle: x }
            """, "models[0].deployments[1].modle: unknown key (did you mean 'model'?)");
    }

    [Theory]
    [InlineData("server: { max_body_bytes: lots }", "server.max_body_bytes: expected a whole number, but got 'lots'")]
    [InlineData("server: { max_body_bytes: 1.5 }", "server.max_body_bytes: expected a whole number, but got '1.5'")]
    [InlineData("server: { max_body_bytes: 99999999999999999999 }", "server.max_body_bytes: expected a whole number, but got '99999999999999999999'")]
    [InlineData("logging: { requests: yes }", "logging.requests: expected true or false, but got 'yes'")]
    [InlineData("logging: { level: [ debug ] }", "logging.level: expected a string, but got a list")]
    [InlineData("server: big", "server: expected a mapping (key: value pairs), but got 'big'")]
    [InlineData("server: [ 1 ]", "server: expected a mapping (key: value pairs), but got a list")]
    [InlineData("server: { trusted_proxies: 10.0.0.1 }", "server.trusted_proxies: expected a list, but got '10.0.0.1'")]
    [InlineData("listen: { url: x }", "listen: expected a string, but got a mapping")]
    public void Bind_WrongType_ErrorWithPath(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
    }

    [Theory]
    [InlineData("max_body_bytes: 2048", "max_body_bytes: unknown key (did you mean 'server.max_body_bytes'?)")]
    [InlineData("level: debug", "level: unknown key (did you mean 'logging.level'?)")]
    public void Bind_KeyOneLevelTooHigh_SuggestsWhereItBelongs(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
    }

    [Fact]
    public void Bind_KeyOutOfPlaceInAProvider_SuggestsTheSection()
    {
        AssertErrors(
            """
            providers:
              - { name: sim, type: simulated, idle_ms: 5 }
            models:
              - { name: m, deployments: [ { provider: sim } ] }
            """,
            "providers[0].idle_ms: unknown key (did you mean 'timeouts.idle_ms'?)");
    }

    [Theory]
    [InlineData("master_key: [ sk-secret-value-1 ]", "master_key: expected a string, but got a list")]
    [InlineData("master_key: { key: sk-secret-value-1 }", "master_key: expected a string, but got a mapping")]
    public void Bind_SecretKeysWithWrongShape_ReportedWithoutTheValue(string line, string expected)
    {
        AssertErrors(Minimal.Replace("master_key: sk-test\n", "", StringComparison.Ordinal) + "\n" + line, expected);
    }

    [Fact]
    public void Bind_SecretValuesInWrongPlace_NeverEchoed()
    {
        var result = Load("""
            providers:
              - name: oai
                type: openai
                base_url: https://api.openai.com/v1
                api_keys: sk-live-SECRET-0123456789abcdef
                headers: sk-live-SECRET-in-headers
              - name: oai2
                type: openai
                base_url: https://api.openai.com/v1
                api_keys: [ [ sk-live-SECRET-nested ] ]
            models:
              - { name: m, deployments: [ { provider: oai } ] }
            """);

        var errors = Errors(result);
        Assert.Equal(
            [
                "providers[0].api_keys: expected a list, but got a value (not shown: it may be a secret)",
                "providers[0].headers: expected a mapping, but got a value (not shown: it may be a secret)",
                "providers[1].api_keys[0]: expected a string, but got a list",
            ],
            errors);
        Assert.DoesNotContain(errors, e => e.Contains("SECRET", StringComparison.Ordinal));
    }

    [Fact]
    public void Bind_WrongTypesInsideLists_ErrorWithIndexedPath()
    {
        AssertErrors("""
            providers:
              - name: sim
                type: simulated
                simulated: { tokens_per_second: fast }
                headers: [ a ]
              - just-a-string
            models:
              - name: m
                aliases: [ { x: 1 } ]
                context_window: 1e3
                price: { input: cheap }
                deployments: [ { provider: sim } ]
            """,
            "providers[0].simulated.tokens_per_second: expected a number, but got 'fast'",
            "providers[0].headers: expected a mapping, but got a list",
            "providers[1]: expected a mapping (key: value pairs), but got 'just-a-string'",
            "models[0].aliases[0]: expected a string, but got a mapping",
            "models[0].context_window: expected a whole number, but got '1e3'",
            "models[0].price.input: expected a number, but got 'cheap'");
    }

    [Fact]
    public void Bind_DuplicateTopLevelKey_ReportedWithTheOtherProblems()
    {
        var result = Load("""
            listen: http://127.0.0.1:1
            listen: http://127.0.0.1:2
            modles: []
            """);
        var errors = Errors(result);
        Assert.Contains("listen: duplicate key", errors);
        Assert.Contains("modles: unknown key (did you mean 'models'?)", errors);
    }

    [Fact]
    public void Bind_DuplicateNestedKeys_EachReported()
    {
        var result = Load("""
            providers:
              - name: sim
                type: simulated
                name: sim2
            models:
              - name: m
                deployments: [ { provider: sim, provider: other } ]
            server:
              max_body_bytes: 2048
              max_body_bytes: 4096
            """);
        var errors = Errors(result);
        Assert.Contains("providers[0].name: duplicate key", errors);
        Assert.Contains("models[0].deployments[0].provider: duplicate key", errors);
        Assert.Contains("server.max_body_bytes: duplicate key", errors);
    }

    [Fact]
    public void Bind_DuplicateHeaderName_Reported()
    {
        var result = Load("""
            providers:
              - name: oai
                type: openai
                base_url: https://api.openai.com/v1
                headers: { X-A: "1", X-A: "2" }
            """);
        Assert.Contains("providers[0].headers.X-A: duplicate key", Errors(result));
    }

    [Fact]
    public void Bind_QuotedNumbersAndBooleans_Accepted()
    {
        var config = AssertValid(Minimal + """

            server: { max_body_bytes: "4096" }
            logging: { requests: "False" }
            """);
        Assert.Equal(4096, config.Server.MaxBodyBytes);
        Assert.False(config.Logging.Requests);
    }

    [Fact]
    public void KeysOf_ProviderConfig_AreTheSnakeCaseProperties()
    {
        Assert.Equal(
            ["anthropic_version", "api_keys", "base_url", "connections", "developer_role", "headers", "name", "simulated", "timeouts", "type"],
            ConfigBinder.KeysOf(typeof(ProviderConfig)).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("modles", "models")]
    [InlineData("MODELS", "models")]
    [InlineData("xyz", null)]
    [InlineData("provider", "providers")]
    public void Suggest_CloseKey_Found(string key, string? expected)
    {
        Assert.Equal(expected, ConfigBinder.Suggest(key, ConfigBinder.KeysOf(typeof(ShepherdConfig))));
    }
}
