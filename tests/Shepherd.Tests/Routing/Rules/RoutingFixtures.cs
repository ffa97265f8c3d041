namespace Shepherd.Tests.Routing.Rules;

using System.Text;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers;
using Shepherd.Routing;
using Shepherd.Routing.Rules;
using Shepherd.Tests.Configuration;

/// <summary>The auto-routing example of the issue over simulated providers, and one request per rule.</summary>
internal static class RoutingFixtures
{
    public const string AutoConfig = """
        providers:
          - name: sim
            type: simulated
            simulated: { completion_tokens: 3 }
        models:
          - name: gpt-4.1
            deployments: [ { provider: sim } ]
          - name: claude-sonnet-4.5
            deployments: [ { provider: sim } ]
          - name: gemini-2.5-flash
            deployments: [ { provider: sim } ]
          - name: deepseek-v3.2
            aliases: [ deepseek ]
            deployments: [ { provider: sim } ]
        routers:
          - name: auto
            rules:
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
                model: deepseek
        """;

    /// <summary>About 100,000 tokens: "lorem " is one o200k token.</summary>
    public static readonly string LongText = string.Concat(Enumerable.Repeat("lorem ", 100_000));

    public static string UserBody(string text, string extra = "") =>
        $$"""{"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":{{System.Text.Json.JsonSerializer.Serialize(text)}}}]{{extra}}}""";

    /// <summary>Rule name, expected model, request body, x-shepherd-tags, x-shepherd-latency-budget-ms.</summary>
    public static TheoryData<string, string, string, string?, string?> RuleTable() => new()
    {
        { "long-context", "gemini-2.5-flash", UserBody(LongText), null, null },
        { "vision", "gpt-4.1", """{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}""", null, null },
        { "tools", "gpt-4.1", UserBody("Weather in Paris?", ""","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]"""), null, null },
        { "json", "gpt-4.1", UserBody("List three colours.", ""","response_format":{"type":"json_object"}"""), null, null },
        { "code", "claude-sonnet-4.5", UserBody("Here is a STACK TRACE from production, what broke?"), null, null },
        { "classify", "deepseek-v3.2", UserBody("Is this spam?", ""","metadata":{"task_type":"classify"}"""), null, null },
        { "classify", "deepseek-v3.2", UserBody("Is this spam?"), "team=search, task_type=Classify", null },
        { "fast", "gemini-2.5-flash", UserBody("Say hi."), null, "500" },
        { "default", "deepseek-v3.2", UserBody("Tell me about sheep."), null, null },
    };

    public static ChatRequest Parse(string body)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(body), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    public static (ModelCatalog Catalog, VirtualModelRouter Router) Build(string yaml)
    {
        var config = ConfigTestHelpers.AssertValid(yaml);
        var providers = config.Providers.ToDictionary(
            p => p.Name,
            p => new ProviderHandle(ProviderFactory.Create(p, TimeProvider.System), new UpstreamKeyRing(p.ApiKeys)),
            StringComparer.OrdinalIgnoreCase);
        var catalog = new ModelCatalog(config, providers, TimeProvider.System);
        return (catalog, new VirtualModelRouter(config.Routers, catalog, TokenEstimator.Default));
    }
}
