namespace Shepherd.Tests.Configuration;

using Shepherd.Configuration;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary><c>${VAR}</c>, <c>${VAR:-default}</c> and the <c>$${</c> escape, alone and through the loader.</summary>
public sealed class EnvironmentInterpolatorTests
{
    private static readonly Dictionary<string, string> Environment = new(StringComparer.Ordinal)
    {
        ["HOST"] = "api.example.com",
        ["PORT"] = "8443",
        ["EMPTY"] = "",
        ["WITH_SPECIALS"] = "a: b # not a comment, {x} [y]",
    };

    private static string Expand(string value, out List<string> unset, out string? error)
    {
        unset = [];
        return new EnvironmentInterpolator(name => Environment.GetValueOrDefault(name)).Expand(value, unset, out error);
    }

    [Theory]
    [InlineData("plain text", "plain text")]
    [InlineData("${HOST}", "api.example.com")]
    [InlineData("https://${HOST}:${PORT}/v1", "https://api.example.com:8443/v1")]
    [InlineData("${ HOST }", "api.example.com")]
    [InlineData("${MISSING:-fallback}", "fallback")]
    [InlineData("${MISSING:-}", "")]
    [InlineData("${MISSING:-with spaces and :- inside}", "with spaces and :- inside")]
    [InlineData("${HOST:-unused}", "api.example.com")]
    [InlineData("${EMPTY:-used when empty}", "used when empty")]
    [InlineData("$${HOST}", "${HOST}")]
    [InlineData("cost: $5 and $$ and $", "cost: $5 and $$ and $")]
    [InlineData("$${HOST} is ${HOST}", "${HOST} is api.example.com")]
    [InlineData("${WITH_SPECIALS}", "a: b # not a comment, {x} [y]")]
    public void Expand_References_Resolved(string value, string expected)
    {
        Assert.Equal(expected, Expand(value, out var unset, out var error));
        Assert.Null(error);
        Assert.Empty(unset);
    }

    [Fact]
    public void Expand_UnsetWithoutDefault_EmptyAndReported()
    {
        Assert.Equal("key=", Expand("key=${NOT_SET}", out var unset, out var error));
        Assert.Null(error);
        Assert.Equal(["NOT_SET"], unset);
    }

    [Fact]
    public void Expand_SetButEmptyWithoutDefault_ReportedAsUnset()
    {
        Expand("${EMPTY}", out var unset, out _);
        Assert.Equal(["EMPTY"], unset);
    }

    [Theory]
    [InlineData("${HOST", "unclosed '${' in value")]
    [InlineData("${}", "'${}' is not a valid variable reference")]
    [InlineData("${1ABC}", "'${1ABC}' is not a valid variable reference")]
    [InlineData("${A-B}", "'${A-B}' is not a valid variable reference")]
    [InlineData("${A:=x}", "'${A:=x}' is not a valid variable reference")]
    public void Expand_BrokenSyntax_Error(string value, string expected)
    {
        Expand(value, out _, out var error);
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Load_VariablesInEveryKindOfValue_Interpolated()
    {
        var config = AssertValid("""
            listen: http://127.0.0.1:${PORT}
            master_key: ${MASTER}
            server: { max_body_bytes: "${BODY_LIMIT:-2048}" }
            logging: { requests: "${LOG_REQUESTS:-false}" }
            providers:
              - name: oai
                type: openai
                base_url: https://${HOST}/v1
                api_keys: [ "${KEY_1}", "${KEY_2:-}" ]
                headers: { X-Literal: "$${NOT_EXPANDED}" }
            models:
              - name: m
                deployments: [ { provider: oai } ]
            """,
            new Dictionary<string, string> { ["PORT"] = "9999", ["MASTER"] = "sk-m", ["HOST"] = "h.example", ["KEY_1"] = "sk-1" });

        Assert.Equal("http://127.0.0.1:9999", config.Listen);
        Assert.Equal("sk-m", config.MasterKey);
        Assert.Equal(2048, config.Server.MaxBodyBytes);
        Assert.False(config.Logging.Requests);
        Assert.Equal("https://h.example/v1", config.Providers[0].BaseUrl);
        Assert.Equal(["sk-1"], config.Providers[0].ApiKeys);
        Assert.Equal("${NOT_EXPANDED}", config.Providers[0].Headers["X-Literal"]);
    }

    [Fact]
    public void Load_UnsetVariable_WarningNamingItOnce()
    {
        var result = Load("""
            master_key: ${SHEPHERD_MASTER_KEY}
            providers:
              - { name: oai, type: openai, base_url: "https://api.openai.com/v1", api_keys: [ "${OPENAI_API_KEY}" ] }
              - { name: oai2, type: openai, base_url: "https://api.openai.com/v1", api_keys: [ "${OPENAI_API_KEY}" ] }
            models:
              - { name: m, deployments: [ { provider: oai } ] }
            """);

        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Equal(
            [
                "environment variable OPENAI_API_KEY is not set (used without a default)",
                "environment variable SHEPHERD_MASTER_KEY is not set (used without a default)",
            ],
            Warnings(result));
    }

    [Fact]
    public void Load_VariableHoldingANonNumber_TypeErrorShowsTheExpandedValue()
    {
        var result = Load(Minimal + "\nserver: { max_body_bytes: \"${LIMIT}\" }", new Dictionary<string, string> { ["LIMIT"] = "ten megabytes" });
        Assert.Equal(["server.max_body_bytes: expected a whole number, but got 'ten megabytes'"], Errors(result));
    }

    [Fact]
    public void Load_BrokenReference_ErrorWithPath()
    {
        var result = Load(Minimal + "\nlisten: http://${HOST");
        Assert.Equal(["listen: unclosed '${' in value"], Errors(result));
    }

    [Fact]
    public void Load_ValueFromEnvironmentIsNotParsedAsYaml()
    {
        var config = AssertValid(Minimal.Replace("master_key: sk-test", "master_key: ${SPECIAL}", StringComparison.Ordinal), new Dictionary<string, string> { ["SPECIAL"] = "sk-x: [1] #y" });
        Assert.Equal("sk-x: [1] #y", config.MasterKey);
    }
}
