namespace Shepherd.Tests.Providers.Anthropic;

using System.Text;
using System.Text.Json.Nodes;
using Shepherd.Errors;
using Shepherd.Providers.Anthropic;
using static AnthropicTranscripts;

/// <summary>OpenAI → Anthropic request translation and Anthropic → OpenAI answer translation, against recorded transcripts.</summary>
public sealed class AnthropicMappingTests
{
    [Theory]
    [InlineData("request_system_developer")]
    [InlineData("request_tool_round_trip")]
    [InlineData("request_images")]
    [InlineData("request_merging_clamping")]
    [InlineData("request_json_schema")]
    [InlineData("request_json_object")]
    [InlineData("request_history_tools_undeclared")]
    [InlineData("request_reasoning_effort")]
    public void WriteRequest_RecordedOpenAIRequest_MatchesRecordedAnthropicRequest(string transcript)
    {
        var actual = Translate(Text(transcript + ".openai.json"));
        AssertJsonEqual(Json(transcript + ".anthropic.json"), actual);
    }

    [Fact]
    public void WriteRequest_JsonSchema_ReportsTheAnswerTool()
    {
        Translate(Text("request_json_schema.openai.json"), out var tool);
        Assert.Equal("city_answer", tool);
        Translate("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", out var none);
        Assert.Null(none);
    }

    [Fact]
    public void WriteRequest_NoOutputLimit_UsesTheDeploymentDefault()
    {
        var body = Translate("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", out _, defaultMaxOutputTokens: 1234);
        Assert.Equal(1234, body["max_tokens"]!.GetValue<int>());
        body = Translate("""{"model":"m","max_tokens":50,"max_completion_tokens":70,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(70, body["max_tokens"]!.GetValue<int>());
    }

    [Fact]
    public void WriteRequest_TopPWithoutTemperature_SendsTopP()
    {
        var body = Translate("""{"model":"m","top_p":0.3,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(0.3, body["top_p"]!.GetValue<double>());
        Assert.Null(body["temperature"]);
    }

    [Fact]
    public void WriteRequest_OnlySystemMessages_InsertsAPlaceholderUserTurn()
    {
        var body = Translate("""{"model":"m","messages":[{"role":"system","content":"Say hi."}]}""");
        Assert.Equal("Say hi.", body["system"]!.GetValue<string>());
        var messages = body["messages"]!.AsArray();
        Assert.Single(messages);
        Assert.Equal("user", messages[0]!["role"]!.GetValue<string>());
        Assert.Equal(".", messages[0]!["content"]![0]!["text"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("\"auto\"", """{"type":"auto"}""")]
    [InlineData("\"none\"", """{"type":"none"}""")]
    [InlineData("\"required\"", """{"type":"any"}""")]
    [InlineData("""{"type":"function","function":{"name":"b"}}""", """{"type":"tool","name":"b"}""")]
    [InlineData("""{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[]}}""", """{"type":"any"}""")]
    public void WriteRequest_ToolChoice_MapsToAnthropicChoice(string openAIChoice, string expected)
    {
        var body = Translate($$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{{{openAIChoice}}},
             "tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}
            """);
        AssertJsonEqual(JsonNode.Parse(expected)!, body["tool_choice"]!);
    }

    [Fact]
    public void WriteRequest_ParallelToolCallsFalse_DisablesParallelUseButNotOnNone()
    {
        const string Tools = """"
            "tools":[{"type":"function","function":{"name":"a"}}]
            """";
        var body = Translate($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],{{Tools}},"parallel_tool_calls":false}""");
        AssertJsonEqual(JsonNode.Parse("""{"type":"auto","disable_parallel_tool_use":true}""")!, body["tool_choice"]!);
        body = Translate($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],{{Tools}},"parallel_tool_calls":false,"tool_choice":"none"}""");
        AssertJsonEqual(JsonNode.Parse("""{"type":"none"}""")!, body["tool_choice"]!);
    }

    [Fact]
    public void WriteRequest_JsonSchemaWithClientTools_OffersBothAndRequiresACall()
    {
        var body = Translate("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "tools":[{"type":"function","function":{"name":"lookup"}}],
             "response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"}}}}
            """, out var tool);
        Assert.Equal("answer", tool);
        Assert.Equal(new[] { "lookup", "answer" }, body["tools"]!.AsArray().Select(t => t!["name"]!.GetValue<string>()));
        AssertJsonEqual(JsonNode.Parse("""{"type":"any"}""")!, body["tool_choice"]!);
    }

    [Fact]
    public void WriteRequest_PdfFileData_BecomesADocumentBlock()
    {
        var body = Translate("""
            {"model":"m","messages":[{"role":"user","content":[
              {"type":"text","text":"Summarise."},
              {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQK"}}]}]}
            """);
        AssertJsonEqual(
            JsonNode.Parse("""{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"}}""")!,
            body["messages"]![0]!["content"]![1]!);
    }

    [Fact]
    public void WriteRequest_PlainTextFileData_BecomesATextDocument()
    {
        var body = Translate("""
            {"model":"m","messages":[{"role":"user","content":[
              {"type":"file","file":{"filename":"n.txt","file_data":"data:text/plain;base64,aMOpbGxvCg=="}}]}]}
            """);
        AssertJsonEqual(
            JsonNode.Parse("""{"type":"document","source":{"type":"text","media_type":"text/plain","data":"héllo\n"}}""")!,
            body["messages"]![0]!["content"]![0]!);
    }

    [Theory]
    [InlineData("""[{"type":"input_audio","input_audio":{"data":"UklGR","format":"wav"}}]""", "audio")]
    [InlineData("""[{"type":"file","file":{"file_id":"file-abc"}}]""", "file id")]
    public void WriteRequest_ContentAnthropicCannotTake_RefusedAsCallerFault(string content, string expectedInMessage)
    {
        var failure = TryTranslate($$"""{"model":"m","messages":[{"role":"user","content":{{content}}}]}""", out _, out _);
        Assert.NotNull(failure);
        Assert.Equal(FailureClass.CallerFault, failure.Class);
        Assert.Equal(400, failure.ToClientError().Status);
        Assert.Contains(expectedInMessage, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WriteRequest_CustomTool_RefusedAsCallerFault()
    {
        var failure = TryTranslate("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"grammar"}}]}""", out _, out _);
        Assert.Equal(FailureClass.CallerFault, failure!.Class);
    }

    [Fact]
    public void WriteRequest_InvalidToolArguments_SendEmptyInput()
    {
        var body = Translate("""
            {"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[
              {"role":"user","content":"go"},
              {"role":"assistant","tool_calls":[
                {"id":"c1","type":"function","function":{"name":"f","arguments":"{not json"}},
                {"id":"c2","type":"function","function":{"name":"f","arguments":"[1,2]"}}]},
              {"role":"tool","tool_call_id":"c1","content":""},
              {"role":"tool","tool_call_id":"c2","content":"ok"}]}
            """);
        var assistant = body["messages"]![1]!["content"]!.AsArray();
        Assert.All(assistant, b => AssertJsonEqual(new JsonObject(), b!["input"]!));
        var results = body["messages"]![2]!["content"]!.AsArray();
        Assert.Null(results[0]!["content"]); // an empty result has no content rather than an empty text
        Assert.Equal("ok", results[1]!["content"]!.GetValue<string>());
    }

    [Fact]
    public void WriteRequest_ReasoningEffortWhileContinuingAToolLoop_SendsNoThinking()
    {
        var body = Translate("""
            {"model":"m","reasoning_effort":"high","temperature":0.3,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[
              {"role":"user","content":"go"},
              {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"done"}]}
            """);
        Assert.Null(body["thinking"]);
        Assert.Equal(0.3, body["temperature"]!.GetValue<double>());
    }

    [Fact]
    public void WriteRequest_ReasoningEffortWithoutLimit_RaisesMaxTokensByTheBudget()
    {
        var body = Translate("""{"model":"m","reasoning_effort":"low","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(4096 + 1024, body["max_tokens"]!.GetValue<int>());
        Assert.Equal(1024, body["thinking"]!["budget_tokens"]!.GetValue<int>());
    }

    [Fact]
    public void WriteRequest_SafetyIdentifier_UsedWhenNoUser()
    {
        var body = Translate("""{"model":"m","safety_identifier":"sid-1","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("sid-1", body["metadata"]!["user_id"]!.GetValue<string>());
    }

    [Fact]
    public void ToolId_ValidIdsPassUnchanged_ForeignIdsSanitisedStablyAndDistinctly()
    {
        Assert.Equal("toolu_01AbC", AnthropicMapping.ToolId("toolu_01AbC"));
        Assert.Equal("call_x-Y_9", AnthropicMapping.ToolId("call_x-Y_9"));
        var a = AnthropicMapping.ToolId("fn.get:1");
        var b = AnthropicMapping.ToolId("fn:get.1");
        Assert.Matches("^[a-zA-Z0-9_-]+$", a);
        Assert.Matches("^[a-zA-Z0-9_-]+$", b);
        Assert.NotEqual(a, b);
        Assert.Equal(a, AnthropicMapping.ToolId("fn.get:1"));
        Assert.Matches("^[a-zA-Z0-9_-]+$", AnthropicMapping.ToolId(""));
        Assert.Matches("^[a-zA-Z0-9_-]+$", AnthropicMapping.ToolId("appel_é"));
    }

    // ------------------------------------------------------------------------------------------- responses

    private static JsonNode TranslateResponse(string transcript, string? jsonTool, out Shepherd.Chat.Usage usage)
    {
        Assert.True(AnthropicMapping.TryTranslateResponse(Bytes(transcript), jsonTool, 1760000000, "fallback-model", out var json, out usage, out var missing));
        Assert.False(missing);
        return JsonNode.Parse(json)!;
    }

    [Theory]
    [InlineData("response_text_cache")]
    [InlineData("response_tool_use")]
    public void TryTranslateResponse_RecordedAnswer_MatchesRecordedCompletion(string transcript)
    {
        var actual = TranslateResponse(transcript + ".anthropic.json", null, out _);
        AssertJsonEqual(Json(transcript + ".openai.json"), actual);
    }

    [Fact]
    public void TryTranslateResponse_CacheUsage_PromptIncludesCacheReadsAndWrites()
    {
        TranslateResponse("response_text_cache.anthropic.json", null, out var usage);
        Assert.Equal(42 + 1200 + 100, usage.PromptTokens);
        Assert.Equal(1200, usage.CachedTokens);
        Assert.Equal(100, usage.CacheWriteTokens);
        Assert.Equal(31, usage.CompletionTokens);
    }

    [Fact]
    public void TryTranslateResponse_Thinking_BecomesReasoningContentAndMaxTokensLength()
    {
        var completion = TranslateResponse("response_thinking.anthropic.json", null, out var usage);
        var choice = completion["choices"]![0]!;
        Assert.Equal("Euclid: assume finitely many primes, multiply them, add one.", choice["message"]!["reasoning_content"]!.GetValue<string>());
        Assert.Equal("Suppose the primes were finite", choice["message"]!["content"]!.GetValue<string>());
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(2048, usage.CompletionTokens);
        Assert.DoesNotContain("redacted", completion.ToJsonString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void TryTranslateResponse_JsonSchemaAnswerTool_BecomesTextAndStop()
    {
        var completion = TranslateResponse("response_json_schema.anthropic.json", "city_answer", out _);
        var choice = completion["choices"]![0]!;
        Assert.Equal("Lyon", JsonNode.Parse(choice["message"]!["content"]!.GetValue<string>())!["city"]!.GetValue<string>());
        Assert.Null(choice["message"]!["tool_calls"]);
        Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("end_turn", false, "stop")]
    [InlineData("stop_sequence", false, "stop")]
    [InlineData("max_tokens", false, "length")]
    [InlineData("model_context_window_exceeded", false, "length")]
    [InlineData("tool_use", true, "tool_calls")]
    [InlineData("tool_use", false, "stop")]
    [InlineData("refusal", false, "content_filter")]
    [InlineData("pause_turn", false, "stop")]
    [InlineData(null, false, "stop")]
    public void FinishReason_AnthropicStopReason_MapsPerProtocol(string? stopReason, bool toolCalls, string expected) =>
        Assert.Equal(expected, AnthropicMapping.FinishReason(stopReason, toolCalls));

    [Theory]
    [InlineData("")]
    [InlineData("<html>oops</html>")]
    [InlineData("""{"type":"error","error":{"type":"api_error","message":"x"}}""")]
    [InlineData("""{"id":"msg_1","type":"message","content":"not an array"}""")]
    [InlineData("""{"id":"msg_1","type":"message","content":[]""")]
    public void TryTranslateResponse_NotAMessage_ReturnsFalse(string body) =>
        Assert.False(AnthropicMapping.TryTranslateResponse(Encoding.UTF8.GetBytes(body), null, 0, "m", out _, out _, out _));

    [Fact]
    public void TryTranslateResponse_NoUsage_ReportsUsageMissing()
    {
        var body = """{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"""u8.ToArray();
        Assert.True(AnthropicMapping.TryTranslateResponse(body, null, 0, "fallback", out var json, out _, out var missing));
        Assert.True(missing);
        Assert.Equal("fallback", JsonNode.Parse(json)!["model"]!.GetValue<string>());
    }
}
