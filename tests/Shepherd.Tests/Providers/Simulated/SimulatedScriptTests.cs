namespace Shepherd.Tests.Providers.Simulated;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers.Simulated;

public sealed class SimulatedScriptTests
{
    private static readonly SimulatedConfig Config = new() { ResponseTokens = 24 };

    internal static ChatRequest Parse(string json)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    private static SimulatedScript.Plan Single(string json, SimulatedConfig? config = null) =>
        SimulatedScript.Build(Parse(json), "sim", config ?? Config).Choices.Single();

    private static string Text(SimulatedScript.Plan plan) => string.Concat(plan.Tokens);

    private const string Tools = """
        "tools":[
          {"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}},
          {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string","enum":["UTC","CET"]}}}}}
        ]
        """;

    private const string ToolTurn = """
        "messages":[
          {"role":"user","content":"weather?"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
          {"role":"tool","tool_call_id":"call_1","content":"18C"}]
        """;

    [Fact]
    public void Build_SameRequest_SameAnswer()
    {
        const string json = """{"model":"m","messages":[{"role":"user","content":"Tell me something"}]}""";

        var first = Single(json);
        var second = Single(json);

        Assert.Equal(first.Tokens, second.Tokens);
        Assert.Equal(24, first.Tokens.Count);
        Assert.Equal("stop", first.FinishReason);
        Assert.EndsWith(".", Text(first), StringComparison.Ordinal);
    }

    [Fact]
    public void Build_DifferentUserText_DifferentAnswer()
    {
        var a = Single("""{"model":"m","messages":[{"role":"user","content":"one"}]}""");
        var b = Single("""{"model":"m","messages":[{"role":"user","content":"two"}]}""");

        Assert.NotEqual(Text(a), Text(b));
    }

    [Theory]
    [InlineData("max_tokens")]
    [InlineData("max_completion_tokens")]
    public void Build_OutputLimitBelowAnswer_TruncatedWithFinishLength(string field)
    {
        var plan = Single($$"""{"model":"m","{{field}}":5,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(5, plan.Tokens.Count);
        Assert.Equal(5, plan.CompletionTokens);
        Assert.Equal("length", plan.FinishReason);
    }

    [Fact]
    public void Build_OutputLimitAboveAnswer_FinishStop()
    {
        var plan = Single("""{"model":"m","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(24, plan.Tokens.Count);
        Assert.Equal("stop", plan.FinishReason);
    }

    [Fact]
    public void Build_StopSequence_TextEndsBeforeItWithFinishStop()
    {
        const string messages = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
        var full = Text(Single($$"""{"model":"m",{{messages}}}"""));
        var stop = full.Substring(full.Length / 2, 4);
        var at = full.IndexOf(stop, StringComparison.Ordinal);

        var plan = Single($$"""{"model":"m","stop":["zzzz-never",{{JsonSerializer.Serialize(stop)}}],{{messages}}}""");

        Assert.Equal(full[..at], Text(plan));
        Assert.DoesNotContain(stop, Text(plan), StringComparison.Ordinal);
        Assert.Equal("stop", plan.FinishReason);
        Assert.Equal(plan.Tokens.Count, plan.CompletionTokens);
    }

    [Fact]
    public void Build_StopSequenceThatNeverOccurs_AnswerUnchanged()
    {
        var plan = Single("""{"model":"m","stop":"@@@","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(24, plan.Tokens.Count);
        Assert.Equal("stop", plan.FinishReason);
    }

    [Fact]
    public void Build_ToolsOnUserTurnAuto_CallsToolNamedInTextWithSchemaArguments()
    {
        var plan = Single("""{"model":"m",""" + Tools + ""","messages":[{"role":"user","content":"What is the get_time now?"}]}""");

        var call = Assert.Single(plan.ToolCalls);
        Assert.Equal("get_time", call.Name);
        Assert.Equal("tool_calls", plan.FinishReason);
        Assert.Empty(plan.Tokens);
        Assert.StartsWith("call_", call.Id, StringComparison.Ordinal);
        using var arguments = JsonDocument.Parse(call.Arguments);
        Assert.Contains(arguments.RootElement.GetProperty("zone").GetString(), new[] { "UTC", "CET" });
    }

    [Fact]
    public void Build_ToolsOnUserTurnAuto_FirstToolWhenNoneNamed()
    {
        var plan = Single("""{"model":"m",""" + Tools + ""","messages":[{"role":"user","content":"Hello"}]}""");

        var call = Assert.Single(plan.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        using var arguments = JsonDocument.Parse(call.Arguments);
        Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("city").ValueKind);
        Assert.False(arguments.RootElement.TryGetProperty("days", out _)); // only the required properties
    }

    [Fact]
    public void Build_ToolsAfterToolResultAuto_AnswersWithText()
    {
        var plan = Single("""{"model":"m",""" + Tools + "," + ToolTurn + "}");

        Assert.Empty(plan.ToolCalls);
        Assert.NotEmpty(plan.Tokens);
        Assert.Equal("stop", plan.FinishReason);
    }

    [Fact]
    public void Build_ToolChoiceRequiredAfterToolResult_StillCallsATool()
    {
        var plan = Single("""{"model":"m","tool_choice":"required",""" + Tools + "," + ToolTurn + "}");

        Assert.Single(plan.ToolCalls);
    }

    [Fact]
    public void Build_NamedToolChoice_CallsThatTool()
    {
        var plan = Single("""{"model":"m",""" + Tools + ""","tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"get_weather please"}]}""");

        Assert.Equal("get_time", Assert.Single(plan.ToolCalls).Name);
    }

    [Fact]
    public void Build_ToolChoiceNone_AnswersWithText()
    {
        var plan = Single("""{"model":"m",""" + Tools + ""","tool_choice":"none","messages":[{"role":"user","content":"get_weather"}]}""");

        Assert.Empty(plan.ToolCalls);
        Assert.NotEmpty(plan.Tokens);
    }

    [Fact]
    public void Build_JsonSchema_AnswerParsesAndFollowsSchema()
    {
        var plan = Single("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{
               "type":"object","additionalProperties":false,"required":["name","age","tags","ok","kind"],
               "properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},
                             "ok":{"type":"boolean"},"kind":{"type":"string","enum":["a","b"]}}}}}}
            """);

        using var answer = JsonDocument.Parse(Text(plan));
        var root = answer.RootElement;
        Assert.Equal(JsonValueKind.String, root.GetProperty("name").ValueKind);
        Assert.Equal(JsonValueKind.Number, root.GetProperty("age").ValueKind);
        Assert.Equal(JsonValueKind.Array, root.GetProperty("tags").ValueKind);
        Assert.Contains(root.GetProperty("ok").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Contains(root.GetProperty("kind").GetString(), new[] { "a", "b" });
        Assert.Equal("stop", plan.FinishReason);
    }

    [Fact]
    public void Build_JsonSchemaWithNonAsciiEnum_PiecesAreWholeCharacters()
    {
        var plan = Single("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","required":["e"],"properties":{"e":{"enum":["😀😀😀😀😀😀😀😀"]}}}}}}
            """);

        foreach (var piece in plan.Tokens)
        {
            Assert.False(char.IsHighSurrogate(piece[^1]), "a piece ends inside a surrogate pair");
        }

        using var answer = JsonDocument.Parse(Text(plan));
        Assert.Equal("😀😀😀😀😀😀😀😀", answer.RootElement.GetProperty("e").GetString());
    }

    [Fact]
    public void Build_JsonSchemaWithOptionalAndNullableTypes_ValuesOfTheNonNullType()
    {
        var plan = Single("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","required":["a","b","c"],"properties":{
               "a":{"anyOf":[{"type":"null"},{"type":"integer"}]},
               "b":{"type":["null","string"]},
               "c":{"oneOf":[{"type":"boolean"},{"type":"string"}]}}}}}}
            """);

        using var answer = JsonDocument.Parse(Text(plan));
        Assert.Equal(JsonValueKind.Number, answer.RootElement.GetProperty("a").ValueKind);
        Assert.Equal(JsonValueKind.String, answer.RootElement.GetProperty("b").ValueKind);
        Assert.Contains(answer.RootElement.GetProperty("c").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
    }

    [Fact]
    public void Build_JsonObject_AnswerParses()
    {
        var plan = Single("""{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"json please"}]}""");

        using var answer = JsonDocument.Parse(Text(plan));
        Assert.Equal(JsonValueKind.Object, answer.RootElement.ValueKind);
    }

    [Fact]
    public void Build_FixedUsageSettings_ReportedAsConfigured()
    {
        var config = new SimulatedConfig { PromptTokens = 1000, CompletionTokens = 7 };

        var (choices, prompt) = SimulatedScript.Build(Parse("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""), "sim", config);

        Assert.Equal(1000, prompt);
        Assert.Equal(7, choices.Single().CompletionTokens);
        Assert.Equal(7, choices.Single().Tokens.Count);
    }

    [Fact]
    public void Build_PromptTokens_CountedLikeTheGatewayEstimate()
    {
        var smallRequest = Parse("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""");
        var largeRequest = Parse($$"""{"model":"m","messages":[{"role":"user","content":"{{string.Join(' ', Enumerable.Range(0, 1000).Select(i => $"word{i}"))}}"}]}""");
        var (_, small) = SimulatedScript.Build(smallRequest, "sim", Config);
        var (_, large) = SimulatedScript.Build(largeRequest, "sim", Config);

        Assert.Equal(Shepherd.Accounting.TokenEstimator.Default.EstimatePrompt(smallRequest), small);
        Assert.Equal(Shepherd.Accounting.TokenEstimator.Default.EstimatePrompt(largeRequest), large);
        Assert.True(large >= 1000, $"prompt tokens {large}");
    }

    [Fact]
    public void Build_N_ThatManyDistinctChoices()
    {
        var (choices, _) = SimulatedScript.Build(Parse("""{"model":"m","n":3,"messages":[{"role":"user","content":"hi"}]}"""), "sim", Config);

        Assert.Equal(3, choices.Count);
        Assert.Equal(3, choices.Select(Text).Distinct().Count());
    }
}
