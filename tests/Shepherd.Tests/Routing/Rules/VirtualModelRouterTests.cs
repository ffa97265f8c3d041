namespace Shepherd.Tests.Routing.Rules;

using Shepherd.Routing.Rules;
using static Shepherd.Tests.Routing.Rules.RoutingFixtures;

/// <summary>Rule matching: the first matching rule wins, conditions AND, tags from metadata and header, explanations.</summary>
public sealed class VirtualModelRouterTests
{
    private static readonly Lazy<VirtualModelRouter> Auto = new(() => Build(AutoConfig).Router);

    private static RouteDecision Route(string body, string? tags = null, string? budget = null, string name = "auto", VirtualModelRouter? router = null)
    {
        Assert.Null(RequestHints.TryParse(tags, budget, out var hints));
        Assert.True((router ?? Auto.Value).TryRoute(name, Parse(body), hints, out var decision));
        return decision;
    }

    public static TheoryData<string, string, string, string?, string?> Rules => RuleTable();

    [Theory]
    [MemberData(nameof(Rules))]
    public void TryRoute_EachRulesRequest_GoesToItsModel(string rule, string model, string body, string? tags, string? budget)
    {
        var decision = Route(body, tags, budget);

        Assert.Equal(rule, decision.RuleName);
        Assert.Equal(model, decision.Model.Name);
        Assert.Equal("auto", decision.Router.Name);
    }

    [Fact]
    public void TryRoute_NameIsNotAVirtualModel_False()
    {
        Assert.False(Auto.Value.TryRoute("gpt-4.1", Parse(UserBody("hi")), default, out _));
        Assert.False(Auto.Value.IsVirtual("deepseek"));
    }

    [Fact]
    public void TryRoute_NameInAnotherCase_Resolved()
    {
        Assert.Equal("default", Route(UserBody("hi"), name: "AUTO").RuleName);
    }

    [Fact]
    public void TryRoute_NoSizeRuleReached_PromptNotCounted()
    {
        var router = Build(AutoConfig.Replace("min_prompt_tokens: 100000", "has_images: false, has_tools: true", StringComparison.Ordinal)).Router;

        var decision = Route(UserBody("Tell me about sheep."), router: router);

        Assert.Equal("default", decision.RuleName);
        Assert.Null(decision.Features.PromptTokensIfCounted);
    }

    [Fact]
    public void TryRoute_SizeRuleReached_PromptCountedOnceAndReusable()
    {
        var decision = Route(UserBody("Tell me about sheep."));

        Assert.Equal(Shepherd.Accounting.TokenEstimator.Default.EstimatePrompt(decision.Features.Request), decision.Features.PromptTokensIfCounted);
    }

    [Fact]
    public void TryRoute_KeywordOnlyInAnEarlierUserMessage_DoesNotMatch()
    {
        var body = """{"model":"auto","messages":[{"role":"user","content":"debug this"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"thanks"},{"type":"text","text":"bye"}]}]}""";

        Assert.Equal("default", Route(body).RuleName);
    }

    [Fact]
    public void TryRoute_KeywordInATextPartOfTheLastUserMessage_Matches()
    {
        var body = """{"model":"auto","messages":[{"role":"user","content":"hello"},{"role":"user","content":[{"type":"text","text":"please"},{"type":"text","text":"Refactor\u00A0this"}]}]}""";

        Assert.Equal("code", Route(body).RuleName);
    }

    [Fact]
    public void TryRoute_HeaderTagOverridesMetadata()
    {
        var body = UserBody("Is this spam?", ""","metadata":{"task_type":"classify"}""");

        Assert.Equal("classify", Route(body).RuleName);
        Assert.Equal("default", Route(body, tags: "task_type=summarize").RuleName);
    }

    [Theory]
    [InlineData("800", "fast")]
    [InlineData("801", "default")]
    [InlineData("0", "fast")]
    [InlineData(null, "default")]
    public void TryRoute_LatencyBudget_AtMostTheRuleMatches(string? budget, string rule)
    {
        Assert.Equal(rule, Route(UserBody("Say hi."), budget: budget).RuleName);
    }

    [Fact]
    public void TryRoute_ConditionsAreAnded_AllMustHold()
    {
        var router = Build(AutoConfig.Replace("when: { has_tools: true }", "when: { has_tools: true, tags: { team: search }, max_prompt_tokens: 5000 }", StringComparison.Ordinal)).Router;
        var tools = ""","tools":[{"type":"function","function":{"name":"f"}}]""";

        Assert.Equal("tools", Route(UserBody("x", tools), tags: "team=search", router: router).RuleName);
        Assert.Equal("default", Route(UserBody("x", tools), router: router).RuleName);
        Assert.Equal("default", Route(UserBody("x"), tags: "team=search", router: router).RuleName);
        Assert.Equal("default", Route(UserBody(string.Concat(Enumerable.Repeat("lorem ", 6000)), tools), tags: "team=search", router: router).RuleName);
    }

    [Fact]
    public void TryRoute_PriorityShorthandAndHasToolsFalse_Match()
    {
        var router = Build(AutoConfig.Replace("when: { has_images: true }", "when: { priority: high, has_tools: false }", StringComparison.Ordinal)).Router;

        Assert.Equal("vision", Route(UserBody("Urgent!", ""","metadata":{"priority":"HIGH"}"""), router: router).RuleName);
        Assert.Equal("tools", Route(UserBody("Urgent!", ""","metadata":{"priority":"high"},"tools":[{"type":"function","function":{"name":"f"}}]"""), router: router).RuleName);
    }

    [Fact]
    public void TryRoute_EscapedMetadata_Matches()
    {
        Assert.Equal("classify", Route(UserBody("x", ""","metadata":{"task\u005ftype":"cl\u0061ssify"}""")).RuleName);
    }

    [Fact]
    public void Explain_SaysWhyEarlierRulesFailedAndWhyTheChosenOneMatched()
    {
        var decision = Route(UserBody("Weather in Paris?", ""","tools":[{"type":"function","function":{"name":"get_weather"}}]"""));
        var tokens = decision.Features.PromptTokens;

        Assert.Equal(
            $"auto -> gpt-4.1 by rule 'tools': long-context: no (prompt ~{tokens} tokens < min_prompt_tokens 100000); vision: no (no images); tools: yes (offers 1 tool)",
            decision.Explain());
    }

    [Fact]
    public void Checks_TagRule_NamesTheTagValueAndSource()
    {
        var decision = Route(UserBody("Summarise this."), tags: "task_type=summarize", budget: "100");

        var checks = decision.Checks();
        Assert.Equal(["long-context", "vision", "tools", "json", "code", "classify", "fast"], checks.Select(c => c.Rule.Name));
        Assert.Equal("header tag task_type=summarize, not classify", checks[5].Reason);
        Assert.Equal("none of 'stack trace', 'debug', 'refactor' in the last user message", checks[4].Reason);
        Assert.Equal("response_format not set, not json_schema or json_object", checks[3].Reason);
        Assert.True(checks[6].Matched);
        Assert.Equal("latency budget 100 ms <= 800 ms", checks[6].Reason);
    }

    [Fact]
    public void Checks_DefaultRule_SaysSo()
    {
        var checks = Route(UserBody("hi")).Checks();

        Assert.Equal(8, checks.Count);
        Assert.Equal("no tag task_type", checks[5].Reason);
        Assert.Equal("no latency budget (x-shepherd-latency-budget-ms)", checks[6].Reason);
        Assert.Equal(new RuleCheck(checks[7].Rule, true, "default rule"), checks[7]);
    }

    [Fact]
    public void Select_FlagTagAndLatencyRules_AllocateNothing()
    {
        var router = Build(AutoConfig
            .Replace("when: { min_prompt_tokens: 100000 }", "when: { has_images: true, tags: { team: x } }", StringComparison.Ordinal)
            .Replace("when: { keywords: [ \"stack trace\", \"debug\", \"refactor\" ] }", "when: { priority: high }", StringComparison.Ordinal)).Router;
        Assert.True(router.TryGet("auto", out var auto));
        var request = Parse(UserBody("hi", ""","metadata":{"team":"search","task_type":"summarize"}"""));
        RequestHints.TryParse("env=prod, team=search", "5000", out var hints);
        var warm = new RequestFeatures(request, hints, Shepherd.Accounting.TokenEstimator.Default);
        Assert.Equal("default", auto.Select(warm).Name);
        var features = new RequestFeatures(request, hints, Shepherd.Accounting.TokenEstimator.Default);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var rule = auto.Select(features);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal("default", rule.Name);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Select_OnceFeaturesAreCounted_AllocatesNothing()
    {
        Assert.True(Auto.Value.TryGet("auto", out var auto));
        var features = new RequestFeatures(Parse(UserBody("Tell me about sheep.", ""","metadata":{"task_type":"summarize"}""")), default, Shepherd.Accounting.TokenEstimator.Default);
        Assert.Equal("default", auto.Select(features).Name);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            auto.Select(features);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("1.5")]
    [InlineData("99999999999")]
    public void RequestHints_MalformedLatencyBudget_Error(string value)
    {
        Assert.NotNull(RequestHints.TryParse(null, value, out var hints));
        Assert.Null(hints.LatencyBudgetMs);
    }

    [Theory]
    [InlineData("a=1,b=2", "b", "2")]
    [InlineData(" a = 1 , A=3", "a", "3")]
    [InlineData("novalue, =x, a=", "a", "")]
    public void RequestHints_Tags_ParsedLastWins(string header, string key, string value)
    {
        RequestHints.TryParse(header, null, out var hints);

        Assert.True(hints.TryGetTag(key, out var found));
        Assert.Equal(value, found.ToString());
        Assert.False(hints.TryGetTag("novalue", out _));
    }
}
