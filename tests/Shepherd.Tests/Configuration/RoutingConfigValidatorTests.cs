namespace Shepherd.Tests.Configuration;

using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>Every rule for <c>routers</c> and <c>models[].context</c>, each with its exact "path: message" line.</summary>
public sealed class RoutingConfigValidatorTests
{
    private const string Models = """
        providers: [ { name: sim, type: simulated } ]
        models:
          - name: big
            aliases: [ large ]
            context_window: 100000
            deployments: [ { provider: sim } ]
          - name: small
            deployments: [ { provider: sim } ]
        """;

    /// <summary>The models above and one router with the given rules (YAML flow items, one per line).</summary>
    private static string Router(params string[] rules) =>
        Models + "\nrouters:\n  - name: auto\n    rules:\n" + string.Concat(rules.Select(r => $"      - {r}\n"));

    private const string DefaultRule = "{ name: default, default: true, model: small }";

    [Fact]
    public void Validate_ValidRouter_NoProblems()
    {
        var config = AssertValid(Router(
            "{ name: a, when: { min_prompt_tokens: 10, max_prompt_tokens: 10 }, model: big }",
            "{ name: b, when: { has_tools: false, has_images: true, response_format: [ text ] }, model: large }",
            "{ name: c, when: { keywords: [ x ], tags: { team: a, env: prod }, max_latency_budget_ms: 0 }, model: BIG }",
            "{ name: d, when: { priority: high }, model: small }",
            DefaultRule));

        Assert.Equal(5, config.Routers[0].Rules.Count);
        Assert.True(config.Routers[0].Rules[4].Default);
    }

    [Theory]
    [InlineData("{ name: r, when: { has_tools: true }, model: smal }", "routers[0].rules[0].model: unknown model 'smal' (did you mean 'small'?)")]
    [InlineData("{ name: r, when: { has_tools: true }, model: nothing-like-it }", "routers[0].rules[0].model: unknown model 'nothing-like-it'")]
    [InlineData("{ name: r, when: { has_tools: true } }", "routers[0].rules[0].model: is required")]
    [InlineData("{ when: { has_tools: true }, model: big }", "routers[0].rules[0].name: is required")]
    [InlineData("{ name: \"a,b\", when: { has_tools: true }, model: big }", "routers[0].rules[0].name: 'a,b' may only contain printable ASCII characters other than ','")]
    [InlineData("{ name: r, model: big }", "routers[0].rules[0].when: is required: a rule without conditions matches every request (make it the default rule instead)")]
    [InlineData("{ name: r, when: {}, model: big }", "routers[0].rules[0].when: is required: a rule without conditions matches every request (make it the default rule instead)")]
    [InlineData("{ name: r, when: { keywords: [] }, model: big }", "routers[0].rules[0].when.keywords: must hold at least one keyword")]
    [InlineData("{ name: r, when: { keywords: [ a, \" \" ] }, model: big }", "routers[0].rules[0].when.keywords[1]: must not be empty")]
    [InlineData("{ name: r, when: { response_format: [ xml ] }, model: big }", "routers[0].rules[0].when.response_format[0]: 'xml' is not a response format (expected text, json_object, json_schema)")]
    [InlineData("{ name: r, when: { response_format: [] }, model: big }", "routers[0].rules[0].when.response_format: must name at least one format (text, json_object, json_schema)")]
    [InlineData("{ name: r, when: { min_prompt_tokens: -1 }, model: big }", "routers[0].rules[0].when.min_prompt_tokens: must not be negative")]
    [InlineData("{ name: r, when: { max_prompt_tokens: -1 }, model: big }", "routers[0].rules[0].when.max_prompt_tokens: must not be negative")]
    [InlineData("{ name: r, when: { min_prompt_tokens: 5, max_prompt_tokens: 4 }, model: big }", "routers[0].rules[0].when.min_prompt_tokens: 5 is larger than max_prompt_tokens 4: the rule can never match")]
    [InlineData("{ name: r, when: { max_latency_budget_ms: -1 }, model: big }", "routers[0].rules[0].when.max_latency_budget_ms: must not be negative")]
    [InlineData("{ name: r, when: { tags: {} }, model: big }", "routers[0].rules[0].when.tags: must hold at least one tag (key: value)")]
    [InlineData("{ name: r, when: { tags: { team: \"a,b\" } }, model: big }", "routers[0].rules[0].when.tags.team: the value must be 1 to 512 characters without ',' or control characters")]
    [InlineData("{ name: r, when: { tags: { \"a=b\": c } }, model: big }", "routers[0].rules[0].when.tags.a=b: a tag key must be 1 to 64 characters without ',', '=' or control characters")]
    [InlineData("{ name: r, when: { priority: high, tags: { Priority: low } }, model: big }", "routers[0].rules[0].when.priority: is shorthand for tags.priority: give one of them")]
    [InlineData("{ name: r, when: { priority: \" \" }, model: big }", "routers[0].rules[0].when.priority: must be 1 to 512 characters without ',' or control characters")]
    public void Validate_BadRule_Reported(string rule, string expected)
    {
        AssertErrors(Router(rule, DefaultRule), expected);
    }

    [Theory]
    [InlineData("{ name: r, when: { has_tools: maybe }, model: big }", "routers[0].rules[0].when.has_tools: expected true or false, but got 'maybe'")]
    [InlineData("{ name: r, when: { has_tool: true }, model: big }", "routers[0].rules[0].when.has_tool: unknown key (did you mean 'has_tools'?)")]
    [InlineData("{ name: r, if: { has_tools: true }, model: big }", "routers[0].rules[0].if: unknown key")]
    public void Bind_UnknownOrMistypedRuleKey_Reported(string rule, string expected)
    {
        // The rule is then left without a condition, which is said too.
        AssertErrors(
            Router(rule, DefaultRule),
            expected,
            "routers[0].rules[0].when: is required: a rule without conditions matches every request (make it the default rule instead)");
    }

    [Fact]
    public void Validate_NoDefaultRule_Reported()
    {
        AssertErrors(Router("{ name: a, when: { has_tools: true }, model: big }"), "routers[0].rules: no default rule: the last rule needs default: true");
    }

    [Fact]
    public void Validate_NoRules_Reported()
    {
        AssertErrors(Models + "\nrouters: [ { name: auto } ]", "routers[0].rules: at least one rule is required (the last one with default: true)");
    }

    [Fact]
    public void Validate_DefaultNotLastAndDuplicated_BothReported()
    {
        AssertErrors(
            Router(DefaultRule, "{ name: a, when: { has_tools: true }, model: big }", "{ name: b, default: true, model: big }"),
            "routers[0].rules[0].default: the default rule must be the last: the rules after it would never be checked",
            "routers[0].rules[2].default: only one rule may be the default (also rules[0])");
    }

    [Fact]
    public void Validate_DefaultWithConditions_Reported()
    {
        AssertErrors(Router("{ name: d, default: true, when: { has_tools: true }, model: big }"), "routers[0].rules[0].when: the default rule takes no conditions (it matches every request)");
    }

    [Fact]
    public void Validate_DuplicateRuleName_Reported()
    {
        AssertErrors(
            Router("{ name: a, when: { has_tools: true }, model: big }", "{ name: A, when: { has_images: true }, model: big }", DefaultRule),
            "routers[0].rules[1].name: duplicate rule name 'A' (also rules[0])");
    }

    [Theory]
    [InlineData("BIG", "routers[0].name: 'BIG' is already used by models[0].name (names and aliases are case-insensitive)")]
    [InlineData("large", "routers[0].name: 'large' is already used by models[0].aliases[0] (names and aliases are case-insensitive)")]
    public void Validate_RouterNameClashesWithModelOrAlias_Reported(string name, string expected)
    {
        AssertErrors(Models + $"\nrouters: [ {{ name: {name}, rules: [ {DefaultRule} ] }} ]", expected);
    }

    [Fact]
    public void Validate_TwoRoutersSameNameAndOneTargetingTheOther_Reported()
    {
        AssertErrors(
            Models + $"""

            routers:
              - {"{"} name: auto, rules: [ {DefaultRule} ] {"}"}
              - {"{"} name: Auto, rules: [ {DefaultRule} ] {"}"}
              - {"{"} name: meta, rules: [ {"{"} name: d, default: true, model: auto {"}"} ] {"}"}
              - {"{"} rules: [ {DefaultRule} ] {"}"}
            """,
            "routers[1].name: 'Auto' is already used by routers[0].name (names are case-insensitive)",
            "routers[2].rules[0].model: 'auto' is a router: a rule must name a configured model or alias",
            "routers[3].name: is required");
    }

    [Fact]
    public void Validate_EveryProblemAtOnce()
    {
        var result = Load(Router(
            "{ name: a, when: { keywords: [] }, model: nope }",
            "{ name: a, when: { response_format: [ yaml ] }, model: big }"));

        Assert.Equal(
            [
                "routers[0].rules[0].model: unknown model 'nope'",
                "routers[0].rules[0].when.keywords: must hold at least one keyword",
                "routers[0].rules[1].name: duplicate rule name 'a' (also rules[0])",
                "routers[0].rules[1].when.response_format[0]: 'yaml' is not a response format (expected text, json_object, json_schema)",
                "routers[0].rules: no default rule: the last rule needs default: true",
            ],
            Errors(result));
    }

    [Theory]
    [InlineData("context: { overflow: drop }", "models[0].context.overflow: 'drop' must be 'truncate' or 'reject'")]
    [InlineData("context: { reserved_output: -1 }", "models[0].context.reserved_output: must be between 0 and 10000000")]
    [InlineData("context: { reserved_output: 100000 }", "models[0].context.reserved_output: 100000 leaves no room for the prompt in context_window 100000")]
    public void Validate_BadContext_Reported(string line, string expected)
    {
        AssertErrors(Models.Replace("context_window: 100000", "context_window: 100000\n    " + line, StringComparison.Ordinal), expected);
    }

    [Fact]
    public void Validate_ContextWithoutWindow_Warning()
    {
        var result = Load(Models.Replace("  - name: small", "  - name: small\n    context: { overflow: truncate }", StringComparison.Ordinal));

        Assert.True(result.IsValid);
        Assert.Equal(["models[1].context: has no effect without context_window"], Warnings(result));
    }

    [Fact]
    public void Bind_ContextDefaults_RejectAnd4096()
    {
        var config = AssertValid(Models.Replace("context_window: 100000", "context_window: 100000\n    context: {}", StringComparison.Ordinal));

        Assert.Equal("reject", config.Models[0].Context!.Overflow);
        Assert.Equal(4096, config.Models[0].Context!.ReservedOutput);
        Assert.Null(config.Models[1].Context);
    }
}
