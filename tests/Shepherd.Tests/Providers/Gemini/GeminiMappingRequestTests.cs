namespace Shepherd.Tests.Providers.Gemini;

using System.Buffers;
using System.Text;
using System.Text.Json;
using Shepherd.Errors;
using Shepherd.Providers.Gemini;
using static Shepherd.Tests.Providers.Gemini.GeminiTranscripts;

/// <summary>OpenAI requests → Gemini <c>generateContent</c> bodies, against recorded JSON.</summary>
public sealed class GeminiMappingRequestTests
{
    private static (string? Json, UpstreamFailure? Failure) Translate(string openAIJson, IReadOnlyDictionary<string, InlineImage>? images = null)
    {
        var output = new ArrayBufferWriter<byte>();
        var failure = GeminiMapping.WriteRequest(Request(openAIJson), images, output);
        return (failure is null ? Encoding.UTF8.GetString(output.WrittenSpan) : null, failure);
    }

    private static JsonElement Config(string openAIJson)
    {
        var (json, failure) = Translate(openAIJson);
        Assert.Null(failure);
        return JsonDocument.Parse(json!).RootElement;
    }

    [Fact]
    public void WriteRequest_SystemAndDeveloperAnywhere_HoistedAndSameRoleTurnsMerged()
    {
        var (json, failure) = Translate(Read("request-roles.openai.json"));
        Assert.Null(failure);
        AssertJsonEqual(Read("request-roles.gemini.json"), json!);
    }

    [Fact]
    public void WriteRequest_ToolRoundTrip_NamesLookedUpSignaturesReattachedOrSentinel()
    {
        var (json, failure) = Translate(Read("request-tools.openai.json"));
        Assert.Null(failure);
        AssertJsonEqual(Read("request-tools.gemini.json"), json!);
    }

    [Fact]
    public void WriteRequest_ImagesAudioFileAndGenerationConfig_Translated()
    {
        var images = new Dictionary<string, InlineImage> { ["https://example.com/cat.webp"] = new("image/webp", "UklGRgAAAABXRUJQ") };
        var (json, failure) = Translate(Read("request-config.openai.json"), images);
        Assert.Null(failure);
        AssertJsonEqual(Read("request-config.gemini.json"), json!);
    }

    [Fact]
    public void WriteRequest_ToolMessageWithUnknownId_CallerFaultNamingTheMessage()
    {
        var (_, failure) = Translate("""
            {"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_nowhere","content":"x"}]}
            """);

        Assert.NotNull(failure);
        Assert.Equal(FailureClass.CallerFault, failure.Class);
        Assert.Equal("messages[1].tool_call_id", failure.Param);
        Assert.Equal(400, failure.ToClientError().Status);
    }

    [Theory]
    [InlineData("\"none\"", "NONE")]
    [InlineData("\"auto\"", "AUTO")]
    [InlineData("\"required\"", "ANY")]
    public void WriteRequest_ToolChoice_MapsToFunctionCallingMode(string toolChoice, string mode)
    {
        var root = Config("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}],"tool_choice":
            """ + toolChoice + "}");

        var config = root.GetProperty("toolConfig").GetProperty("functionCallingConfig");
        Assert.Equal(mode, config.GetProperty("mode").GetString());
        Assert.False(config.TryGetProperty("allowedFunctionNames", out _));
        Assert.Equal(1, root.GetProperty("tools").GetArrayLength());
    }

    [Fact]
    public void WriteRequest_AllowedToolsRequired_AnyWithNames()
    {
        var root = Config("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}],
             "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"g"}}]}}}
            """);

        var config = root.GetProperty("toolConfig").GetProperty("functionCallingConfig");
        Assert.Equal("ANY", config.GetProperty("mode").GetString());
        Assert.Equal("g", config.GetProperty("allowedFunctionNames")[0].GetString());
    }

    [Fact]
    public void WriteRequest_CustomTool_CallerFault()
    {
        var (_, failure) = Translate("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"grammar"}}]}
            """);

        Assert.Equal(FailureClass.CallerFault, failure?.Class);
        Assert.Equal("tools[0].type", failure?.Param);
    }

    [Fact]
    public void WriteRequest_OnlySystemMessages_SentAsTheUserTurn()
    {
        var root = Config("""{"model":"m","messages":[{"role":"system","content":"Say hi."},{"role":"developer","content":"In French."}]}""");

        Assert.False(root.TryGetProperty("systemInstruction", out _));
        AssertJsonEqual("""[{"role":"user","parts":[{"text":"Say hi."},{"text":"In French."}]}]""", root.GetProperty("contents").GetRawText());
    }

    [Fact]
    public void WriteRequest_JsonObjectFormat_MimeTypeWithoutSchema()
    {
        var config = Config("""{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}""").GetProperty("generationConfig");
        Assert.Equal("application/json", config.GetProperty("responseMimeType").GetString());
        Assert.False(config.TryGetProperty("responseJsonSchema", out _));
    }

    [Fact]
    public void WriteRequest_NoOptions_NoGenerationConfigOrSystemInstruction()
    {
        var root = Config("""{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"text"},"n":1}""");
        Assert.False(root.TryGetProperty("generationConfig", out _));
        Assert.False(root.TryGetProperty("systemInstruction", out _));
        Assert.False(root.TryGetProperty("tools", out _));
    }

    [Theory]
    [InlineData("none", 0, false)]
    [InlineData("minimal", 1024, true)]
    [InlineData("low", 1024, true)]
    [InlineData("high", 24576, true)]
    public void WriteRequest_ReasoningEffort_ThinkingBudgetFromTable(string effort, int budget, bool thoughts)
    {
        var thinking = Config($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"{{effort}}"}""")
            .GetProperty("generationConfig").GetProperty("thinkingConfig");
        Assert.Equal(budget, thinking.GetProperty("thinkingBudget").GetInt32());
        Assert.Equal(thoughts, thinking.TryGetProperty("includeThoughts", out _));
    }

    [Fact]
    public void WriteRequest_SeedBeyondInt32_FoldedIntoRange()
    {
        var seed = Config("""{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":9007199254740993}""")
            .GetProperty("generationConfig").GetProperty("seed");
        Assert.True(seed.TryGetInt32(out _));
    }

    [Fact]
    public void WriteRequest_LegacyFunctions_DeclaredAndFunctionCallMapped()
    {
        var root = Config("""
            {"model":"m","messages":[{"role":"user","content":"hi"},
              {"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{\"a\":1}"}},
              {"role":"function","name":"f","content":"done"}],
             "functions":[{"name":"f","parameters":{"type":"object"}}],"function_call":{"name":"f"}}
            """);

        Assert.Equal("f", root.GetProperty("tools")[0].GetProperty("functionDeclarations")[0].GetProperty("name").GetString());
        Assert.Equal("ANY", root.GetProperty("toolConfig").GetProperty("functionCallingConfig").GetProperty("mode").GetString());
        var contents = root.GetProperty("contents");
        var call = contents[1].GetProperty("parts")[0];
        Assert.Equal(1, call.GetProperty("functionCall").GetProperty("args").GetProperty("a").GetInt32());
        Assert.Equal(GeminiToolCallId.SkipSignature, call.GetProperty("thoughtSignature").GetString());
        Assert.Equal("f", contents[2].GetProperty("parts")[0].GetProperty("functionResponse").GetProperty("name").GetString());
    }

    [Fact]
    public void WriteRequest_RemoteImageNotDownloaded_CallerFault()
    {
        var (_, failure) = Translate("""
            {"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}
            """);

        Assert.Equal(FailureClass.CallerFault, failure?.Class);
        Assert.Equal("invalid_image_url", failure?.Code);
    }

    [Theory]
    [InlineData("data:image/png,rawbytes")]
    [InlineData("data:;base64,AAAAAAAAAAAAAAAA")]
    public void WriteRequest_UnusableDataUri_CallerFault(string uri)
    {
        var (_, failure) = Translate($$$"""
            {"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"{{{uri}}}"}}]}]}
            """);

        Assert.Equal(FailureClass.CallerFault, failure?.Class);
        Assert.Equal(400, failure?.ToClientError().Status);
    }

    [Fact]
    public void RemoteImageUrls_HttpAndHttpsImagesOfUserMessages_EachOnce()
    {
        var request = Request("""
            {"model":"m","messages":[{"role":"user","content":[
              {"type":"image_url","image_url":{"url":"https://a.example/1.png"}},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
              {"type":"image_url","image_url":{"url":"http://b.example/2.png"}},
              {"type":"image_url","image_url":{"url":"https://a.example/1.png"}}]}]}
            """);

        Assert.Equal(["https://a.example/1.png", "http://b.example/2.png"], GeminiMapping.RemoteImageUrls(request));
    }

    [Fact]
    public void ToolCallId_WithSignature_RoundTripsThroughIdWithSafeCharacters()
    {
        const string signature = "+/+/c2lnLUEtZmlyc3QtY2FsbD4/";
        var id = GeminiToolCallId.Create(signature);

        Assert.StartsWith("call_", id, StringComparison.Ordinal);
        Assert.Matches("^[A-Za-z0-9_-]+$", id);
        Assert.Equal(signature, GeminiToolCallId.Signature(id));
        Assert.NotEqual(id, GeminiToolCallId.Create(signature));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not base64!")]
    public void ToolCallId_WithoutUsableSignature_PlainIdCarryingNothing(string? signature)
    {
        var id = GeminiToolCallId.Create(signature);
        Assert.Matches("^call_[A-Za-z0-9]{8}$", id);
        Assert.Null(GeminiToolCallId.Signature(id));
    }

    [Theory]
    [InlineData("call_abc")]
    [InlineData("call_abc__sig_")]
    [InlineData("call_abc__sig_!!!")]
    [InlineData("toolu_01XyZ")]
    public void ToolCallId_ForeignOrDamagedIds_NoSignature(string id) => Assert.Null(GeminiToolCallId.Signature(id));
}
