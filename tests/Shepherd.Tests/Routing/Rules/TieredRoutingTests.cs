namespace Shepherd.Tests.Routing.Rules;

using Shepherd.Routing.Rules;
using Shepherd.Tests.Configuration;
using static Shepherd.Tests.Routing.Rules.RoutingFixtures;

/// <summary>
/// The budget / balanced / premium / enterprise tiers by task complexity (deepseek-v3.2 → gemini-2.5-flash → gpt-4.1 →
/// claude-sonnet-4.5), as docs/configuration.md shows them: the example loads and routes each kind of task to its tier.
/// </summary>
public sealed class TieredRoutingTests
{
    /// <summary>Verbatim in docs/configuration.md ("Tiers by task complexity").</summary>
    public const string TierExample = """
        providers:
          - name: deepseek
            type: openai
            base_url: https://api.deepseek.com
            api_keys: [ "${DEEPSEEK_API_KEY}" ]
          - name: gemini
            type: gemini
            api_keys: [ "${GEMINI_API_KEY}" ]
          - name: openai
            type: openai
            base_url: https://api.openai.com/v1
            api_keys: [ "${OPENAI_API_KEY}" ]
          - name: anthropic
            type: anthropic
            api_keys: [ "${ANTHROPIC_API_KEY}" ]
        models:
          - name: deepseek-v3.2          # budget: simple tasks
            price: { input: 0.42, output: 0.42 }
            deployments: [ { provider: deepseek, model: deepseek-chat } ]
          - name: gemini-2.5-flash       # balanced: the standard route
            price: { input: 2.50, output: 2.50 }
            deployments: [ { provider: gemini } ]
          - name: gpt-4.1                # premium: complex analysis
            price: { input: 8.00, output: 8.00 }
            deployments: [ { provider: openai } ]
          - name: claude-sonnet-4.5      # enterprise: critical decisions, reasoning
            price: { input: 15.00, output: 15.00 }
            deployments: [ { provider: anthropic, model: claude-sonnet-4-5 } ]
        routers:
          - name: tiered
            rules:
              - name: latency-critical
                when: { max_latency_budget_ms: 300 }
                model: gemini-2.5-flash
              - name: critical
                when: { priority: high }
                model: claude-sonnet-4.5
              - name: error-analysis
                when: { tags: { event_type: error } }
                model: claude-sonnet-4.5
              - name: reasoning
                when: { keywords: [ "begründe", "beweise", "logik", "mathematisch", "prove", "step by step" ] }
                model: claude-sonnet-4.5
              - name: analysis
                when: { tags: { task_type: analyze } }
                model: gpt-4.1
              - name: complex
                when: { keywords: [ "analysiere", "entwickle", "optimiere", "analyze", "optimize" ] }
                model: gpt-4.1
              - name: long-prompt
                when: { min_prompt_tokens: 10000 }
                model: gpt-4.1
              - name: classify
                when: { tags: { task_type: classify } }
                model: deepseek-v3.2
              - name: simple
                when: { keywords: [ "liste", "zusammenfassen", "kategorisieren", "extrahieren", "extract", "summarize" ], max_prompt_tokens: 2000 }
                model: deepseek-v3.2
              - name: balanced
                default: true
                model: gemini-2.5-flash
        """;

    /// <summary>Verbatim in docs/configuration.md ("Virtual models and auto-routing").</summary>
    public const string AutoExample = """
        providers:
          - name: openai
            type: openai
            base_url: https://api.openai.com/v1
            api_keys: [ "${OPENAI_API_KEY}" ]
          - name: anthropic
            type: anthropic
            api_keys: [ "${ANTHROPIC_API_KEY}" ]
          - name: gemini
            type: gemini
            api_keys: [ "${GEMINI_API_KEY}" ]
          - name: deepseek
            type: openai
            base_url: https://api.deepseek.com
            api_keys: [ "${DEEPSEEK_API_KEY}" ]
        models:
          - name: gpt-4.1
            context_window: 1047576
            deployments: [ { provider: openai } ]
          - name: claude-sonnet-4.5
            context_window: 200000
            deployments: [ { provider: anthropic, model: claude-sonnet-4-5 } ]
          - name: gemini-2.5-flash
            context_window: 1048576
            deployments: [ { provider: gemini } ]
          - name: deepseek-v3.2
            context_window: 128000
            deployments: [ { provider: deepseek, model: deepseek-chat } ]
        routers:
          - name: auto                       # the virtual model name clients send
            rules:                           # ordered: the first matching rule wins
              - name: long-context
                when: { min_prompt_tokens: 100000 }
                model: gemini-2.5-flash
              - name: vision
                when: { has_images: true }
                model: gpt-4.1
              - name: tools
                when: { has_tools: true }
                model: gpt-4.1
              - name: json
                when: { response_format: [ json_schema, json_object ] }
                model: gpt-4.1
              - name: code
                when: { keywords: [ "stack trace", "debug", "refactor" ] }
                model: claude-sonnet-4.5
              - name: classify
                when: { tags: { task_type: classify } }
                model: deepseek-v3.2
              - name: fast
                when: { max_latency_budget_ms: 800 }
                model: gemini-2.5-flash
              - name: default
                default: true
                model: deepseek-v3.2
        """;

    private static readonly Lazy<VirtualModelRouter> Router = new(() => Build(TierExample).Router);

    private static string Docs() => File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "configuration.md")).ReplaceLineEndings("\n");

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Shepherd.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Shepherd.slnx not found");
    }

    [Fact]
    public void Docs_ShowTheTierAndAutoExamplesVerbatim()
    {
        var docs = Docs();
        Assert.Contains("```yaml\n" + TierExample.ReplaceLineEndings("\n") + "\n```", docs, StringComparison.Ordinal);
        Assert.Contains("```yaml\n" + AutoExample.ReplaceLineEndings("\n") + "\n```", docs, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoExample_Loads_EveryRuleTargetsItsModel()
    {
        var config = ConfigTestHelpers.AssertValid(AutoExample);
        Assert.Equal(
            ["long-context:gemini-2.5-flash", "vision:gpt-4.1", "tools:gpt-4.1", "json:gpt-4.1", "code:claude-sonnet-4.5", "classify:deepseek-v3.2", "fast:gemini-2.5-flash", "default:deepseek-v3.2"],
            config.Routers.Single().Rules.Select(r => $"{r.Name}:{r.Model}"));
    }

    /// <summary>Expected rule and tier; the request's user text, metadata (JSON members) and tags header.</summary>
    public static TheoryData<string, string, string, string, string?, string?> Tasks() => new()
    {
        // Budget: classification with few classes, short extraction.
        { "classify", "deepseek-v3.2", "Spam or ham: 'You won a prize!'", ""","metadata":{"task_type":"classify","num_classes":"2"}""", null, null },
        { "simple", "deepseek-v3.2", "Extrahieren Sie alle Namen aus diesem Absatz.", "", null, null },
        // Balanced: the standard route, and latency-critical requests.
        { "balanced", "gemini-2.5-flash", "Write a friendly greeting for our newsletter.", "", null, null },
        { "latency-critical", "gemini-2.5-flash", "Autocomplete: 'The quick brown'", "", "priority=high", "250" },
        // Premium: complex analysis, long inputs.
        { "analysis", "gpt-4.1", "Look at these numbers.", ""","metadata":{"task_type":"analyze"}""", null, null },
        { "complex", "gpt-4.1", "Analysiere die Architektur und optimiere sie.", "", null, null },
        { "long-prompt", "gpt-4.1", string.Concat(Enumerable.Repeat("lorem ", 12_000)), "", null, null },
        // Enterprise: critical events and reasoning.
        { "critical", "claude-sonnet-4.5", "Customer escalation.", "", "priority=high", null },
        { "error-analysis", "claude-sonnet-4.5", "NullReferenceException in OrderService.", ""","metadata":{"event_type":"error"}""", null, null },
        { "reasoning", "claude-sonnet-4.5", "Begründe, warum die Summe zweier gerader Zahlen gerade ist.", "", null, null },
        // A long text with a budget keyword is not simple any more.
        { "long-prompt", "gpt-4.1", "Extract the names: " + string.Concat(Enumerable.Repeat("lorem ", 12_000)), "", null, null },
    };

    [Theory]
    [MemberData(nameof(Tasks))]
    public void TierExample_EachTask_GoesToItsTier(string rule, string model, string text, string extra, string? tags, string? budget)
    {
        RequestHints.TryParse(tags, budget, out var hints);

        Assert.True(Router.Value.TryRoute("tiered", Parse(UserBody(text, extra).Replace("\"auto\"", "\"tiered\"", StringComparison.Ordinal)), hints, out var decision));

        Assert.Equal(rule, decision.RuleName);
        Assert.Equal(model, decision.Model.Name);
    }

    [Fact]
    public void TierExample_ShortSimpleTaskBetween2000And10000Tokens_Balanced()
    {
        var text = "Summarize: " + string.Concat(Enumerable.Repeat("lorem ", 5_000));

        Assert.True(Router.Value.TryRoute("tiered", Parse(UserBody(text)), default, out var decision));

        Assert.Equal("balanced", decision.RuleName);
        Assert.Contains("simple: no (prompt ~", decision.Explain(), StringComparison.Ordinal);
    }
}
