namespace Shepherd.Tests.Configuration;

using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>Every rule for the <c>webhooks</c> section, each with its exact "path: message" line.</summary>
public sealed class WebhooksConfigValidatorTests
{
    private const string Models = """
        providers: [ { name: sim, type: simulated } ]
        models:
          - name: deepseek-v3.2
            aliases: [ deepseek ]
            deployments: [ { provider: sim } ]
        routers:
          - name: auto
            rules: [ { name: d, default: true, model: deepseek } ]
        """;

    private const string Secret = "whsec-0123456789abcdef";

    /// <summary>The models and one source with the given extra keys and rules (YAML flow items, one per line).</summary>
    private static string Source(string extra = "", params string[] rules) =>
        Models + $"\nwebhooks:\n  sources:\n    - name: twill\n      secrets: [ {Secret} ]\n{(extra.StartsWith("key:", StringComparison.Ordinal) ? "" : "      key: sk-shp-0123456789\n")}{(extra.Length == 0 ? "" : "      " + extra + "\n")}      rules:\n" +
        string.Concat((rules.Length == 0 ? ["{ on: agent.completed, model: deepseek }"] : rules).Select(r => $"        - {r}\n"));

    [Fact]
    public void Validate_TheIssueExample_Valid()
    {
        var config = AssertValid(Models + """

            webhooks:
              sources:
                - name: twill
                  secrets: [ "${TWILL_SECRET}", "${TWILL_SECRET_OLD:-}" ]
                  signature_header: x-twill-signature
                  timestamp_header: x-twill-timestamp
                  tolerance_s: 300
                  id_field: id
                  type_field: event_type
                  max_body_bytes: 1048576
                  key: sk-shp-abc
                  rules:
                    - on: agent.completed
                      model: deepseek-v3.2
                      system: "Summarise the following agent result."
                      user: "{{ json data }}"
                      temperature: 0.3
                      max_tokens: 1024
                    - on: agent.failed
                      model: auto
                      system: "Analyse the error and propose fixes."
                      user: "Agent {{ agent_id }}: {{ json data }}"
                    - on: "*"
                      action: skip
                  deliver: { url: "https://example.internal/results", secret: "${RESULT_SECRET}" }
            """, new Dictionary<string, string> { ["TWILL_SECRET"] = "whsec-current-0123456789", ["RESULT_SECRET"] = "whsec-result-0123456789" });

        var source = config.Webhooks.Sources.Single();
        Assert.Equal(["whsec-current-0123456789"], source.Secrets);
        Assert.Equal(3, source.Rules.Count);
        Assert.Equal("skip", source.Rules[2].Action);
        Assert.Equal(4, config.Webhooks.Workers);
        Assert.Equal(60, config.Webhooks.LeaseS);
        Assert.Equal((5, 1000, 300_000), (config.Webhooks.Retry.MaxAttempts, config.Webhooks.Retry.BaseMs, config.Webhooks.Retry.MaxMs));
    }

    [Theory]
    [InlineData("{ on: agent.completed, model: deepsek }", "webhooks.sources[0].rules[0].model: unknown model 'deepsek' (did you mean 'deepseek'?)")]
    [InlineData("{ on: agent.completed }", "webhooks.sources[0].rules[0].model: is required (or set action: skip)")]
    [InlineData("{ model: deepseek }", "webhooks.sources[0].rules[0].on: is required (an event type, a prefix such as agent.*, or * for every type)")]
    [InlineData("{ on: \"a*b\", model: deepseek }", "webhooks.sources[0].rules[0].on: 'a*b' must be an event type, a prefix ending in * (agent.*), or *")]
    [InlineData("{ on: x, action: drop }", "webhooks.sources[0].rules[0].action: 'drop' must be 'process' or 'skip'")]
    [InlineData("{ on: x, action: skip, model: deepseek }", "webhooks.sources[0].rules[0]: a skip rule takes no model, system, user, temperature or max_tokens")]
    [InlineData("{ on: x, model: deepseek, user: \"{{ data\" }", "webhooks.sources[0].rules[0].user: '{{' at position 0 is not closed with '}}'")]
    [InlineData("{ on: x, model: deepseek, system: \"{{ }}\" }", "webhooks.sources[0].rules[0].system: the placeholder at position 0 is empty (use {{ path }}, {{ json path }} or {{ . }})")]
    [InlineData("{ on: x, model: deepseek, user: \"{{ a..b }}\" }", "webhooks.sources[0].rules[0].user: the placeholder at position 0: 'a..b' has an empty segment (paths look like data.items[0].name)")]
    [InlineData("{ on: x, model: deepseek, user: \"{{ items[x] }}\" }", "webhooks.sources[0].rules[0].user: the placeholder at position 0: 'items[x]' has a malformed index (use items[0])")]
    [InlineData("{ on: x, model: deepseek, temperature: 3 }", "webhooks.sources[0].rules[0].temperature: must be between 0 and 2")]
    [InlineData("{ on: x, model: deepseek, max_tokens: 0 }", "webhooks.sources[0].rules[0].max_tokens: must be between 1 and 10000000")]
    public void Validate_BadRule_Reported(string rule, string expected)
    {
        AssertErrors(Source("", rule), expected);
    }

    [Fact]
    public void Validate_CatchAllNotLastAndDuplicateOn_Reported()
    {
        AssertErrors(
            Source("", "{ on: \"*\", action: skip }", "{ on: a, model: deepseek }", "{ on: a, model: auto }"),
            "webhooks.sources[0].rules[1].on: rules[0] matches every event type ('*'), so this rule is never used: the catch-all must be last",
            "webhooks.sources[0].rules[2].on: 'a' is already matched by rules[1]: this rule is never used",
            "webhooks.sources[0].rules[2].on: rules[0] matches every event type ('*'), so this rule is never used: the catch-all must be last");
    }

    [Theory]
    [InlineData("signature_header: \"x sig\"", "webhooks.sources[0].signature_header: 'x sig' is not a valid header name")]
    [InlineData("timestamp_header: \"\"", "webhooks.sources[0].timestamp_header: must not be empty")]
    [InlineData("tolerance_s: 0", "webhooks.sources[0].tolerance_s: must be between 1 and 86400")]
    [InlineData("type_field: \".\"", "webhooks.sources[0].type_field: must name a field, not the whole event")]
    [InlineData("id_field: \"a..b\"", "webhooks.sources[0].id_field: 'a..b' has an empty segment (paths look like data.items[0].name)")]
    [InlineData("max_body_bytes: 20000000", "webhooks.sources[0].max_body_bytes: 20000000 is larger than server.max_body_bytes (10485760), which refuses such bodies first")]
    [InlineData("key: \"sk shp\"", "webhooks.sources[0].key: must be a virtual key without white space")]
    [InlineData("deliver: { url: \"ftp://x\", secret: s }", "webhooks.sources[0].deliver.url: 'ftp://x' is not an http(s) URL")]
    [InlineData("deliver: { url: \"https://x\" }", "webhooks.sources[0].deliver.secret: is required: deliveries are signed")]
    public void Validate_BadSourceSetting_Reported(string extra, string expected)
    {
        AssertErrors(Source(extra), expected);
    }

    [Fact]
    public void Validate_NoSecretDuplicateNameBadName_Reported()
    {
        AssertErrors(
            Models + """

            webhooks:
              workers: 2000
              retry: { base_ms: 5000, max_ms: 1000 }
              sources:
                - { name: twill, secrets: [ "${UNSET:-}" ], key: k, rules: [ { on: x, action: skip } ] }
                - { name: TWILL, secrets: [ whsec-0123456789abcdef ], key: k, rules: [ { on: x, action: skip } ] }
                - { name: "a/b", secrets: [ whsec-0123456789abcdef ], key: k, rules: [ { on: x, action: skip } ] }
            """,
            "webhooks.workers: must be between 0 and 1024",
            "webhooks.retry.max_ms: 1000 is smaller than base_ms 5000",
            "webhooks.sources[0].secrets: no secret is set: every request would be refused (an unset ${VAR:-} counts as none)",
            "webhooks.sources[1].name: duplicate source name 'TWILL' (also webhooks.sources[0]; names are case-insensitive)",
            "webhooks.sources[2].name: 'a/b' must be at most 64 letters, digits, '.', '_' or '-' (it is a URL path segment)");
    }

    [Fact]
    public void Validate_ShortSecretNoKeyNoRules_Warnings()
    {
        var result = Load(Models + "\nwebhooks:\n  sources:\n    - { name: twill, secrets: [ short ] }\n");

        Assert.True(result.IsValid);
        Assert.Equal(
            [
                "webhooks.sources[0].secrets[0]: is shorter than 16 characters: easy to guess",
                "webhooks.sources[0].key: not set: processing runs under the master key, with no limits or budget",
                "webhooks.sources[0].rules: no rules: every event is stored as skipped",
            ],
            Warnings(result));
    }

    [Fact]
    public void Bind_SecretInTheWrongPlace_NotEchoed()
    {
        var result = Load(Models + "\nwebhooks:\n  sources:\n    - { name: twill, secrets: { a: whsec-very-secret-value } }\n");

        Assert.DoesNotContain(Errors(result), e => e.Contains("whsec-very-secret-value", StringComparison.Ordinal));
    }
}
