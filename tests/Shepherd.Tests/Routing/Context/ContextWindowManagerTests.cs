namespace Shepherd.Tests.Routing.Context;

using System.Text.Json;
using System.Text.Json.Nodes;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Routing;
using Shepherd.Routing.Context;
using static Shepherd.Tests.Routing.Rules.RoutingFixtures;

/// <summary>Fitting prompts to a context window: reject, or truncate the oldest turns and keep what must stay.</summary>
public sealed class ContextWindowManagerTests
{
    private const string Config = """
        providers: [ { name: sim, type: simulated } ]
        models:
          - name: trunc
            context_window: 1200
            context: { overflow: truncate, reserved_output: 200 }
            deployments: [ { provider: sim } ]
          - name: strict
            context_window: 1200
            context: { overflow: reject, reserved_output: 200 }
            deployments: [ { provider: sim } ]
          - name: unchecked
            context_window: 1200
            deployments: [ { provider: sim } ]
        """;

    private static readonly Lazy<Shepherd.Routing.ModelCatalog> Catalog = new(() => Build(Config).Catalog);

    private static readonly ContextWindowManager Manager = new(TokenEstimator.Default);

    private static CatalogModel Model(string name)
    {
        Assert.True(Catalog.Value.TryResolve(name, out var model));
        return model;
    }

    /// <summary>About <paramref name="tokens"/> tokens of text, tagged so a test can tell messages apart.</summary>
    private static string Text(string tag, int tokens) => tag + string.Concat(Enumerable.Repeat(" lorem", tokens - 1));

    private static string Msg(string role, string content) => $$"""{"role":"{{role}}","content":{{JsonSerializer.Serialize(content)}}}""";

    private static ChatRequest Request(params string[] messages) =>
        Parse($$"""{"model":"trunc","temperature":0.5,"x_custom":{"keep":[1,2]},"messages":[{{string.Join(",", messages)}}],"max_tokens":50}""");

    private static string[] Tags(ChatRequest request)
    {
        var messages = JsonNode.Parse(request.MessagesRange.Slice(request.Body).ToArray())!.AsArray();
        return messages.Select(m => m!["content"]?.GetValue<string>()?.Split(' ')[0] ?? $"{m!["role"]}-call").ToArray();
    }

    [Fact]
    public void Apply_NoContextSettings_NotCheckedAndNothingCounted()
    {
        var request = Request(Msg("user", Text("u", 5000)));

        var result = Manager.Apply(request, Model("unchecked"));

        Assert.Equal(ContextStatus.NotChecked, result.Status);
        Assert.Same(request, result.Request);
        Assert.Equal("not checked (the model has no context settings)", result.Describe(Model("unchecked")));
    }

    [Fact]
    public void Apply_Fits_SameRequest()
    {
        var request = Request(Msg("system", "Be brief."), Msg("user", Text("u", 100)));

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Fits, result.Status);
        Assert.Same(request, result.Request);
        Assert.Equal(1000, result.Limit);
        Assert.Equal(TokenEstimator.Default.EstimatePrompt(request), result.PromptTokens);
    }

    [Fact]
    public void Apply_RejectMode_400ContextLengthExceeded()
    {
        var result = Manager.Apply(Request(Msg("user", Text("u", 1100))), Model("strict"));

        Assert.Equal(ContextStatus.Rejected, result.Status);
        Assert.Equal(400, result.Error!.Status);
        Assert.Equal("context_length_exceeded", result.Error.Code);
        Assert.Equal("messages", result.Error.Param);
        Assert.Equal("invalid_request_error", result.Error.Type);
        Assert.Contains("maximum context length is 1200 tokens, of which 200 are reserved for the output", result.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_KnownEstimate_Used()
    {
        var request = Request(Msg("user", "short"));

        Assert.Equal(ContextStatus.Rejected, Manager.Apply(request, Model("strict"), knownPromptTokens: 5000).Status);
    }

    [Fact]
    public void Apply_Truncate_DropsOldestKeepsSystemMessagesAndNewest()
    {
        var request = Request(
            Msg("system", Text("sys", 50)),
            Msg("user", Text("u1", 300)),
            Msg("assistant", Text("a1", 300)),
            Msg("developer", Text("dev", 50)),
            Msg("user", Text("u2", 400)),
            Msg("assistant", Text("a2", 100)),
            Msg("user", Text("u3", 100)));

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Truncated, result.Status);
        Assert.Equal(["sys", "dev", "u2", "a2", "u3"], Tags(result.Request));
        Assert.Equal(2, result.DroppedMessages);
        var after = TokenEstimator.Default.EstimatePrompt(result.Request);
        Assert.Equal(after, result.TokensAfter);
        Assert.True(after <= 1000, $"{after} tokens left");
        Assert.True(result.PromptTokens > 1000);
        Assert.Equal(5, result.Request.MessageCount);
    }

    [Fact]
    public void Apply_Truncate_OtherFieldsUnchangedAndValidated()
    {
        var request = Request(Msg("user", Text("u1", 900)), Msg("assistant", "ok"), Msg("user", Text("u2", 200)));

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Truncated, result.Status);
        var body = JsonNode.Parse(result.Request.Body.ToArray())!;
        Assert.Equal(0.5, body["temperature"]!.GetValue<double>());
        Assert.Equal("""{"keep":[1,2]}""", body["x_custom"]!.ToJsonString());
        Assert.Equal(50, result.Request.MaxTokens);
        Assert.Equal("trunc", result.Request.Model);
        Assert.Equal(["ok", "u2"], Tags(result.Request));
    }

    [Fact]
    public void Apply_Truncate_ToolCallDroppedWithItsResults()
    {
        var call = """{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}]}""";
        var request = Request(
            Msg("system", "sys"),
            Msg("user", Text("u1", 200)),
            call,
            """{"role":"tool","tool_call_id":"call_1","content":"r1 """ + string.Concat(Enumerable.Repeat("lorem ", 300)) + "\"}",
            """{"role":"tool","tool_call_id":"call_2","content":"r2 """ + string.Concat(Enumerable.Repeat("lorem ", 300)) + "\"}",
            Msg("assistant", Text("a1", 100)),
            Msg("user", Text("u2", 300)));

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Truncated, result.Status);

        // u1 alone is not enough: the call goes, and both its results with it (never a tool message without its call).
        Assert.Equal(["sys", "a1", "u2"], Tags(result.Request));
        Assert.Equal(4, result.DroppedMessages);
    }

    [Fact]
    public void Apply_Truncate_NewestToolRoundAfterTheLastUserMessageKept()
    {
        var request = Request(
            Msg("user", Text("u1", 400)),
            """{"role":"assistant","tool_calls":[{"id":"old","type":"function","function":{"name":"f","arguments":"{}"}}]}""",
            """{"role":"tool","tool_call_id":"old","content":"old """ + string.Concat(Enumerable.Repeat("lorem ", 400)) + "\"}",
            """{"role":"assistant","tool_calls":[{"id":"new","type":"function","function":{"name":"f","arguments":"{}"}}]}""",
            """{"role":"tool","tool_call_id":"new","content":"new """ + string.Concat(Enumerable.Repeat("lorem ", 400)) + "\"}");

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Truncated, result.Status);
        Assert.Equal(["u1", "assistant-call", "new"], Tags(result.Request));
        var parsed = JsonNode.Parse(result.Request.MessagesRange.Slice(result.Request.Body).ToArray())!.AsArray();
        Assert.Equal("new", parsed[1]!["tool_calls"]![0]!["id"]!.GetValue<string>());
    }

    [Fact]
    public void Apply_Truncate_LastUserMessageAloneTooLong_Rejected()
    {
        var request = Request(Msg("system", "sys"), Msg("user", Text("u1", 100)), Msg("user", Text("u2", 1100)));

        var result = Manager.Apply(request, Model("trunc"));

        Assert.Equal(ContextStatus.Rejected, result.Status);
        Assert.Equal("context_length_exceeded", result.Error!.Code);
        Assert.Equal("messages", result.Error.Param);
        Assert.Contains("even after dropping 1 older message(s)", result.Error.Message, StringComparison.Ordinal);
        Assert.Same(request, result.Request);
    }

    [Fact]
    public void Apply_Truncate_SystemMessagesTooLong_Rejected()
    {
        var request = Request(Msg("system", Text("sys", 1100)), Msg("user", "hi"));

        Assert.Equal(ContextStatus.Rejected, Manager.Apply(request, Model("trunc")).Status);
    }

    [Fact]
    public void Describe_Truncated_SaysHowMuchWasDropped()
    {
        var result = Manager.Apply(Request(Msg("user", Text("u1", 900)), Msg("user", Text("u2", 200))), Model("trunc"));

        Assert.Matches(@"^prompt ~\d+ tokens exceeds 1000 \(context_window 1200 - reserved_output 200\): truncated, 1 oldest message\(s\) dropped, ~\d+ tokens left$", result.Describe(Model("trunc")));
    }
}
