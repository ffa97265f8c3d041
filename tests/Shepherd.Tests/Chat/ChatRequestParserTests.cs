namespace Shepherd.Tests.Chat;

using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;

/// <summary>The one-pass request parser: what it records, what it accepts, and what it costs.</summary>
public sealed class ChatRequestParserTests
{
    private const string Typical = """
        {"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hello there"}],"stream":true,"stream_options":{"include_usage":true},"temperature":0.2,"max_tokens":64}
        """;

    private static ChatRequest ParseOk(string json)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(error is null, error?.Message);
        Assert.NotNull(request);
        return request;
    }

    private static GatewayError ParseError(string json) => ParseError(Encoding.UTF8.GetBytes(json));

    private static GatewayError ParseError(byte[] body)
    {
        var request = ChatRequestParser.Parse(body, out var error);
        Assert.Null(request);
        Assert.NotNull(error);
        Assert.Equal(400, error.Status);
        Assert.Equal("invalid_request_error", error.Type);
        return error;
    }

    private static string Text(ChatRequest request, JsonRange range) => Encoding.UTF8.GetString(range.Slice(request.Body).Span);

    [Fact]
    public void Parse_TypicalRequest_FieldsRecorded()
    {
        var request = ParseOk(Typical);

        Assert.Equal("gpt-4o-mini", request.Model);
        Assert.True(request.Stream);
        Assert.True(request.IncludeUsage);
        Assert.Equal(2, request.MessageCount);
        Assert.Equal(0.2, request.Temperature);
        Assert.Equal(64, request.MaxTokens);
        Assert.Equal(64, request.RequestedMaxOutputTokens);
        Assert.Equal(1, request.N);
        Assert.Null(request.TopP);
        Assert.Null(request.Seed);
        Assert.Empty(request.Stop);
        Assert.False(request.HasImages);
        Assert.False(request.HasDeveloperRole);
        Assert.Equal("You are terse.".Length + "Hello there".Length, request.TextBytes);
        Assert.Equal("""{"include_usage":true}""", Text(request, request.StreamOptionsRange));
        Assert.False(request.ToolsRange.IsPresent);
        Assert.False(request.StopRange.IsPresent);
    }

    [Fact]
    public void Parse_ModelRange_IsTheQuotedTokenAndSpliceable()
    {
        var request = ParseOk(Typical);
        Assert.Equal("\"gpt-4o-mini\"", Text(request, request.ModelRange));

        var body = request.Body.Span;
        var spliced = Encoding.UTF8.GetString(body[..request.ModelRange.Start]) + "\"upstream-x\"" +
                      Encoding.UTF8.GetString(body[request.ModelRange.End..]);
        var again = ParseOk(spliced);
        Assert.Equal("upstream-x", again.Model);
        Assert.Equal(Text(request, request.MessagesRange), Text(again, again.MessagesRange));
    }

    [Fact]
    public void Parse_MessagesRange_CoversTheWholeArray()
    {
        var request = ParseOk(Typical);
        using var messages = JsonDocument.Parse(request.MessagesRange.Slice(request.Body));
        Assert.Equal(JsonValueKind.Array, messages.RootElement.ValueKind);
        Assert.Equal(2, messages.RootElement.GetArrayLength());
        Assert.Equal("Hello there", messages.RootElement[1].GetProperty("content").GetString());
    }

    [Fact]
    public void Parse_RangesWithWhitespace_ExcludeTheWhitespace()
    {
        var request = ParseOk("""
            {
              "model" :   "m1"  ,
              "messages" : [ { "role" : "user", "content" : "hi" } ]  ,
              "tools" : [ {"type":"function","function":{"name":"f"}} ],
              "tool_choice" : "auto",
              "response_format" : { "type" : "json_object" },
              "metadata" : { "k" : "v" },
              "stop" : [ "END" , "STOP" ]
            }
            """);

        Assert.Equal("\"m1\"", Text(request, request.ModelRange));
        Assert.Equal("""[ { "role" : "user", "content" : "hi" } ]""", Text(request, request.MessagesRange));
        Assert.Equal("""[ {"type":"function","function":{"name":"f"}} ]""", Text(request, request.ToolsRange));
        Assert.Equal("\"auto\"", Text(request, request.ToolChoiceRange));
        Assert.Equal("""{ "type" : "json_object" }""", Text(request, request.ResponseFormatRange));
        Assert.Equal("""{ "k" : "v" }""", Text(request, request.MetadataRange));
        Assert.Equal("""[ "END" , "STOP" ]""", Text(request, request.StopRange));
        Assert.Equal(["END", "STOP"], request.Stop);
        Assert.Equal(1, request.ToolCount);
        Assert.Equal("json_object", request.ResponseFormatType);
    }

    [Fact]
    public void Parse_StopAsString_IsAOneItemList()
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"\n\n"}""");
        Assert.Equal(["\n\n"], request.Stop);
    }

    [Fact]
    public void Parse_FourStopSequences_Accepted()
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d"]}""");
        Assert.Equal(4, request.Stop.Count);
    }

    [Fact]
    public void Parse_SamplingFields_Recorded()
    {
        var request = ParseOk("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"n":3,"top_p":0.9,"seed":-12345678901,
             "presence_penalty":-1.5,"frequency_penalty":2,"max_completion_tokens":100,"max_tokens":50,"user":"u-42",
             "parallel_tool_calls":false,"logprobs":true,"top_logprobs":20,"logit_bias":{"50256":-100}}
            """);

        Assert.Equal(3, request.N);
        Assert.Equal(0.9, request.TopP);
        Assert.Equal(-12345678901L, request.Seed);
        Assert.Equal(-1.5, request.PresencePenalty);
        Assert.Equal(2, request.FrequencyPenalty);
        Assert.Equal(100, request.MaxCompletionTokens);
        Assert.Equal(50, request.MaxTokens);
        Assert.Equal(100, request.RequestedMaxOutputTokens);
        Assert.Equal("u-42", request.User);
        Assert.False(request.ParallelToolCalls);
    }

    [Fact]
    public void Parse_IncludeUsageFalse_NotRecorded()
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false}}""");
        Assert.False(request.IncludeUsage);
        Assert.True(request.StreamOptionsRange.IsPresent);
    }

    [Fact]
    public void Parse_ImagesAndDeveloperRole_Flagged()
    {
        var request = ParseOk("""
            {"model":"m","messages":[
              {"role":"developer","content":"Be brief."},
              {"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}
            """);

        Assert.True(request.HasImages);
        Assert.True(request.HasDeveloperRole);
        Assert.Equal("Be brief.".Length + "What is this?".Length, request.TextBytes);
    }

    [Fact]
    public void Parse_TextBytes_CountsUtf8OfTextPartsAndToolArguments()
    {
        var request = ParseOk("""
            {"model":"m","messages":[
              {"role":"user","content":"héllo"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"ok"}]}]}
            """);

        Assert.Equal(Encoding.UTF8.GetByteCount("héllo") + 2 + 2, request.TextBytes);
    }

    [Fact]
    public void Parse_UnknownFields_AcceptedAndKeptInBody()
    {
        const string json = """
            {"model":"m","top_k":40,"min_p":0.05,"x_custom":{"deep":[1,{"a":null}]},"messages":[
              {"role":"user","content":"hi","x_message_extra":true,"reasoning_content":"…"}],
             "reasoning_effort":"high","service_tier":"auto","store":false,"verbosity":"low","modalities":["text"],
             "prediction":{"type":"content","content":"x"},"web_search_options":{},"safety_identifier":"s","prompt_cache_key":"k"}
            """;
        var request = ParseOk(json);
        Assert.Equal(Encoding.UTF8.GetBytes(json), request.Body.ToArray());
    }

    [Fact]
    public void Parse_NullForEveryOptionalField_Accepted()
    {
        var request = ParseOk("""
            {"model":"m","messages":[{"role":"user","content":"hi","name":null}],
             "temperature":null,"top_p":null,"n":null,"max_tokens":null,"max_completion_tokens":null,"stop":null,
             "stream":null,"stream_options":null,"tools":null,"tool_choice":null,"parallel_tool_calls":null,
             "response_format":null,"seed":null,"user":null,"metadata":null,"presence_penalty":null,"frequency_penalty":null,
             "logprobs":null,"top_logprobs":null,"logit_bias":null,"functions":null,"function_call":null,"store":null,
             "service_tier":null,"reasoning_effort":null}
            """);

        Assert.False(request.Stream);
        Assert.Equal(1, request.N);
        Assert.Null(request.Temperature);
        Assert.Empty(request.Stop);
        Assert.Equal(0, request.ToolCount);
    }

    [Fact]
    public void Parse_EveryRoleAndContentPartShape_Accepted()
    {
        var request = ParseOk("""
            {"model":"gpt-4o-mini","messages":[
              {"role":"system","content":"You are terse.","name":"sys"},
              {"role":"system","content":[{"type":"text","text":"Part one."},{"type":"text","text":"Part two."}]},
              {"role":"developer","content":"Prefer metric units."},
              {"role":"developer","content":[{"type":"text","text":"Dev part."}],"name":"dev"},
              {"role":"user","content":"plain text","name":"alice"},
              {"role":"user","content":[
                {"type":"text","text":"Weather in Paris? Also describe this."},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo..."}},
                {"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"high"}},
                {"type":"image_url","image_url":{"url":"http://example.com/dog.png","detail":"auto"}},
                {"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},
                {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}},
                {"type":"file","file":{"file_id":"file-abc"}}]},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"18C, cloudy"},
              {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"12:00"}]},
              {"role":"assistant","content":"It is 18C.","refusal":null,"name":"bot","tool_calls":null},
              {"role":"assistant","content":[{"type":"text","text":"Sure."},{"type":"refusal","refusal":"I can't help with that."}]},
              {"role":"assistant","refusal":"No.","content":"","audio":{"id":"audio_1"}},
              {"role":"assistant","content":null,"function_call":{"name":"legacy","arguments":"{}"}},
              {"role":"function","name":"legacy","content":"done"},
              {"role":"user","content":"thanks"}],
             "tools":[{"type":"function","function":{
               "name":"get_weather","description":"Current weather for a city",
               "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
               {"type":"function","function":{"name":"get_time"}}],
             "tool_choice":{"type":"function","function":{"name":"get_weather"}},
             "response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,
               "schema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}}},
             "temperature":0.2,"max_completion_tokens":300,"stop":["END"],
             "stream":true,"stream_options":{"include_usage":true},"seed":7,"user":"u-42"}
            """);

        Assert.Equal(15, request.MessageCount);
        Assert.Equal(2, request.ToolCount);
        Assert.True(request.HasImages);
        Assert.True(request.HasDeveloperRole);
        Assert.Equal("json_schema", request.ResponseFormatType);
        Assert.Equal(7, request.Seed);
    }

    [Theory]
    [InlineData("\"none\"")]
    [InlineData("\"auto\"")]
    [InlineData("\"required\"")]
    [InlineData("""{"type":"function","function":{"name":"f"}}""")]
    [InlineData("""{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"f"}}]}}""")]
    public void Parse_ToolChoiceShapes_Accepted(string choice)
    {
        var request = ParseOk($$$"""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{{{choice}}}}""");
        Assert.Equal(choice, Text(request, request.ToolChoiceRange));
    }

    [Theory]
    [InlineData("""{"type":"text"}""", "text")]
    [InlineData("""{"type":"json_object"}""", "json_object")]
    [InlineData("""{"type":"json_schema","json_schema":{"name":"a-b_1","schema":{"type":"object"}}}""", "json_schema")]
    public void Parse_ResponseFormats_Accepted(string format, string type)
    {
        var request = ParseOk($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{{format}}}""");
        Assert.Equal(type, request.ResponseFormatType);
    }

    [Theory]
    [InlineData("https:\\/\\/example.com\\/cat.png")]
    [InlineData("HTTPS://example.com/cat.png")]
    [InlineData("Data:image/png;base64,iVBORw0KGgo=")]
    [InlineData("data:image\\/png;base64,iVBORw0KGgo\\/+=")]
    public void Parse_ImageUrlEscapedOrUpperCase_Accepted(string url)
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":""" + "\"" + url + "\"" + """}}]}]}""");
        Assert.True(request.HasImages);
    }

    [Fact]
    public void Parse_CustomTool_Accepted()
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"grammar_tool","description":"x","format":{"type":"text"}}}]}""");
        Assert.Equal(1, request.ToolCount);
    }

    [Fact]
    public void Parse_EscapedFieldNames_Recognised()
    {
        var request = ParseOk("""{"mod\u0065l":"m","m\u0065ssages":[{"r\u006fle":"user","c\u006fntent":"hi"}],"str\u0065am":true}""");
        Assert.Equal("m", request.Model);
        Assert.True(request.Stream);
        Assert.Equal(1, request.MessageCount);
    }

    [Fact]
    public void Parse_EscapedModelName_Unescaped()
    {
        var request = ParseOk("""{"model":"gpt\u002d4o","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("gpt-4o", request.Model);
    }

    [Fact]
    public void Parse_ByteOrderMark_SkippedAndRangesRelativeToBody()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(Typical)).ToArray();
        var request = ChatRequestParser.Parse(bytes, out var error);
        Assert.Null(error);
        Assert.NotNull(request);
        Assert.Equal((byte)'{', request.Body.Span[0]);
        Assert.Equal("\"gpt-4o-mini\"", Text(request, request.ModelRange));
    }

    [Fact]
    public void Parse_SurrogatePairEscape_Accepted()
    {
        var request = ParseOk("""{"model":"m","messages":[{"role":"user","content":"smile \ud83d\ude00 and \\ud800 literal"}]}""");
        Assert.Equal(1, request.MessageCount);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"lone \ud800 high"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"lone \udc00 low"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"high at end \ud83d"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"reversed \ude00\ud83d"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"x":{"k\ud800":1}}""")]
    [InlineData("""{"model":"m\ud800","messages":[{"role":"user","content":"hi"}]}""")]
    public void Parse_LoneSurrogateEscape_RejectedAsInvalidJson(string json)
    {
        var error = ParseError(json);
        Assert.Equal("invalid_json", error.Code);
    }

    [Theory]
    [InlineData("m\\u0000x")]
    [InlineData("m\\nx")]
    [InlineData("m\\u001bx")]
    public void Parse_ModelWithControlCharacters_Rejected(string model)
    {
        var error = ParseError($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("model", error.Param);
    }

    [Theory]
    [InlineData("\"max_tokens\":1.0", "max_tokens", "invalid_type")]
    [InlineData("\"n\":2e0", "n", "invalid_type")]
    [InlineData("\"seed\":1.5", "seed", "invalid_type")]
    [InlineData("\"seed\":1e300", "seed", "invalid_value")]
    [InlineData("\"max_tokens\":99999999999", "max_tokens", "invalid_value")]
    [InlineData("\"top_logprobs\":-1,\"logprobs\":true", "top_logprobs", "invalid_value")]
    public void Parse_BadIntegers_NameTheParameter(string field, string param, string code)
    {
        var error = ParseError($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],{{field}}}""");
        Assert.Equal(param, error.Param);
        Assert.Equal(code, error.Code);
    }

    [Theory]
    [InlineData("""[{"role":"system"}]""", "messages[0].content")]
    [InlineData("""[{"role":"user","content":"a"},{"role":"developer","content":null}]""", "messages[1].content")]
    [InlineData("""[{"role":"tool","tool_call_id":"c","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]""", "messages[0].content")]
    [InlineData("""[{"role":"function","content":"x"}]""", "messages[0].name")]
    [InlineData("""[{"role":"user","content":[{"type":"refusal","refusal":"no"}]}]""", "messages[0].content")]
    [InlineData("""[{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]""", "messages[0].content")]
    [InlineData("""[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]""", "messages[0].tool_calls[0].id")]
    [InlineData("""[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"arguments":"{}"}}]}]""", "messages[0].tool_calls[0].function.name")]
    [InlineData("""[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f"}}]}]""", "messages[0].tool_calls[0].function.arguments")]
    [InlineData("""[{"role":"user","content":[{"type":"input_audio"}]}]""", "messages[0].content[0].input_audio")]
    [InlineData("""[{"role":"user","content":[{"type":"file","file":"x"}]}]""", "messages[0].content[0].file")]
    [InlineData("""[{"role":"user","content":[{"type":"image_url","image_url":"https://x/y.png"}]}]""", "messages[0].content[0].image_url")]
    [InlineData("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":""}}]}]""", "messages[0].content[0].image_url.url")]
    public void Parse_BadMessages_NameThePath(string messages, string param)
    {
        var error = ParseError($$"""{"model":"m","messages":{{messages}}}""");
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void Parse_ErrorForMessageDeepInTheList_NamesItsIndex()
    {
        var messages = string.Join(",", Enumerable.Repeat("""{"role":"user","content":"hi"}""", 1234));
        var error = ParseError($$"""{"model":"m","messages":[{{messages}},{"role":"user","content":[{"type":"text","text":"a"},{"type":"bogus"}]}]}""");
        Assert.Equal("messages[1234].content[1].type", error.Param);
    }

    [Fact]
    public void Parse_TooManyTools_Rejected()
    {
        var tools = string.Join(",", Enumerable.Range(0, ChatRequestParser.MaxTools + 1).Select(i => $$$"""{"type":"function","function":{"name":"f{{{i}}}"}}"""));
        var error = ParseError($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{{tools}}]}""");
        Assert.Equal("tools", error.Param);
    }

    [Fact]
    public void Parse_ModelAtMaximumLength_Accepted()
    {
        var name = new string('m', ChatRequestParser.MaxModelNameLength);
        Assert.Equal(name, ParseOk($$"""{"model":"{{name}}","messages":[{"role":"user","content":"hi"}]}""").Model);
        ParseError($$"""{"model":"{{name}}m","messages":[{"role":"user","content":"hi"}]}""");
    }

    [Fact]
    public void Parse_JsonError_MessageHasPositionButNoPayload()
    {
        var error = ParseError("{\"model\":\"secret-value\",\n\"messages\":[}");
        Assert.Equal("invalid_json", error.Code);
        Assert.Contains("line 2", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-value", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TypicalSmallRequest_AllocatesLittleBeyondTheRequestObject()
    {
        var body = Encoding.UTF8.GetBytes(Typical).AsMemory();
        var requestSize = SizeOfChatRequest();

        // Warm up: JIT, static initialisers, the reader's first-use caches.
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(ChatRequestParser.Parse(body, out _));
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var request = ChatRequestParser.Parse(body, out var error);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Null(error);
        Assert.NotNull(request);
        Assert.True(allocated - requestSize < 2048, $"parsing allocated {allocated} bytes ({requestSize} of them the ChatRequest)");
    }

    [Fact]
    public void Parse_RequestWithToolsAndParts_AllocationDoesNotGrowPerMessage()
    {
        const string Round = """{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}""";
        const string Tools = """],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}""";
        static string Body(int rounds) => """{"model":"gpt-4o-mini","messages":[""" + string.Join(",", Enumerable.Repeat(Round, rounds)) + Tools;

        var small = Encoding.UTF8.GetBytes(Body(1)).AsMemory();
        var large = Encoding.UTF8.GetBytes(Body(200)).AsMemory();
        ChatRequestParser.Parse(small, out _);
        ChatRequestParser.Parse(large, out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.NotNull(ChatRequestParser.Parse(small, out _));
        var smallBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        before = GC.GetAllocatedBytesForCurrentThread();
        Assert.NotNull(ChatRequestParser.Parse(large, out _));
        var largeBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        // 600 messages more may not cost more than a few bytes each (no per-message strings on the success path).
        Assert.True(largeBytes - smallBytes < 1024, $"1 round: {smallBytes} bytes, 200 rounds: {largeBytes} bytes");
    }

    private static long SizeOfChatRequest()
    {
        RuntimeHelpers.GetUninitializedObject(typeof(ChatRequest));
        var before = GC.GetAllocatedBytesForCurrentThread();
        GC.KeepAlive(RuntimeHelpers.GetUninitializedObject(typeof(ChatRequest)));
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
