namespace Shepherd.Tests.Providers.Gemini;

using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using global::OpenAI;
using global::OpenAI.Chat;
using Shepherd.Providers.Gemini;
using Shepherd.Testing;

/// <summary>The gateway over a fake Gemini, OpenAI wire format on the client side, real sockets on both.</summary>
public sealed class GeminiEndToEndTests : IAsyncLifetime
{
    private const string ToolsBody = """
        "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]
        """;

    private FakeGemini _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeGemini.StartAsync();
        _gateway = await StartGatewayAsync(timeoutMs: 30_000);
    }

    /// <summary>A gateway in front of the fake; only the timeout tests use short timeouts (a loaded machine must not
    /// turn a slow moment into a failed answer elsewhere).</summary>
    private Task<GatewayHost> StartGatewayAsync(int timeoutMs) =>
        GatewayHost.StartAsync($$"""
            providers:
              - name: gem
                type: gemini
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ {{_upstream.ApiKey}} ]
                headers: { x-goog-user-project: shepherd-tests }
                timeouts: { connect_ms: 5000, first_byte_ms: {{timeoutMs}}, idle_ms: {{timeoutMs}} }
            models:
              - name: gemini-test
                deployments:
                  - { provider: gem, model: gemini-2.5-flash }
            """);

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private Task<HttpResponseMessage> PostAsync(string json) => _gateway.Client.PostAsync("/v1/chat/completions", Json(json));

    private ChatClient SdkClient() => new("gemini-test", new ApiKeyCredential(GatewayHost.TestMasterKey), new OpenAIClientOptions { Endpoint = _gateway.OpenAIEndpoint });

    private static async Task<JsonElement> BodyAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

    [Fact]
    public async Task NonStreamed_Text_TranslatedBothWays()
    {
        _upstream.CachedTokens = 4;
        _upstream.ThoughtsTokens = 5;
        var response = await PostAsync("""
            {"model":"gemini-test","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"temperature":0.3,"max_tokens":50}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await BodyAsync(response);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Hello from the fake Gemini.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(11, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(12, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(5, usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());

        var sent = _upstream.Server.LastRequest;
        Assert.Equal("/v1beta/models/gemini-2.5-flash:generateContent", sent.Path);
        Assert.Equal(_upstream.ApiKey, sent.Headers["x-goog-api-key"]);
        Assert.Equal("shepherd-tests", sent.Headers["x-goog-user-project"]);
        Assert.False(sent.Headers.ContainsKey("authorization"));
        var json = sent.Json().RootElement;
        Assert.Equal("Be brief.", json.GetProperty("systemInstruction").GetProperty("parts")[0].GetProperty("text").GetString());
        Assert.Equal(50, json.GetProperty("generationConfig").GetProperty("maxOutputTokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_IncludeUsage_RoleDeltasFinishUsageAndDone()
    {
        var response = await PostAsync("""
            {"model":"gemini-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("Hello from the fake Gemini.", Sse.Content(events));
        using (var role = JsonDocument.Parse(events[0]))
        {
            Assert.Equal("assistant", role.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        }

        using (var finish = JsonDocument.Parse(events[^3]))
        {
            Assert.Equal("stop", finish.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        }

        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(0, usage.RootElement.GetProperty("choices").GetArrayLength());
        Assert.Equal(18, usage.RootElement.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var sent = _upstream.Server.LastRequest;
        Assert.Equal("/v1beta/models/gemini-2.5-flash:streamGenerateContent", sent.Path);
        Assert.Equal("?alt=sse", sent.Query);
    }

    [Fact]
    public async Task Streamed_WithoutIncludeUsage_NoUsageChunk()
    {
        var response = await PostAsync("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"choices\":[]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Streamed_OpenAISdk_TextFinishAndUsage()
    {
        _upstream.Thought = "Thinking about greetings.";
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in SdkClient().CompleteChatStreamingAsync([new UserChatMessage("hi")], new ChatCompletionOptions()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal("Hello from the fake Gemini.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(11, usage.InputTokenCount);
        Assert.Equal(7, usage.OutputTokenCount);
    }

    [Fact]
    public async Task ToolCallRoundTrip_OpenAISdk_SignatureSurvivesAcrossRequests()
    {
        var client = SdkClient();
        var options = new ChatCompletionOptions
        {
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather for a city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}""")) },
        };
        List<ChatMessage> messages = [new UserChatMessage("Weather in Paris?")];

        ChatCompletion first = await client.CompleteChatAsync(messages, options);

        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Paris", JsonDocument.Parse(call.FunctionArguments.ToString()).RootElement.GetProperty("city").GetString());
        Assert.Equal(_upstream.Signature, GeminiToolCallId.Signature(call.Id));

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, "18C, cloudy"));
        ChatCompletion second = await client.CompleteChatAsync(messages, options);

        // The fake, like Gemini 3, refuses a replayed call without its signature: getting here means it survived.
        Assert.Equal(ChatFinishReason.Stop, second.FinishReason);
        Assert.Equal("The tool said: 18C, cloudy", second.Content[0].Text);
        var contents = _upstream.Server.LastRequest.Json().RootElement.GetProperty("contents");
        Assert.Equal(3, contents.GetArrayLength());
        var replayed = contents[1].GetProperty("parts")[0];
        Assert.Equal(_upstream.Signature, replayed.GetProperty("thoughtSignature").GetString());
        Assert.Equal("Paris", replayed.GetProperty("functionCall").GetProperty("args").GetProperty("city").GetString());
        var result = contents[2].GetProperty("parts")[0].GetProperty("functionResponse");
        Assert.Equal("get_weather", result.GetProperty("name").GetString());
        Assert.Equal("18C, cloudy", result.GetProperty("response").GetProperty("output").GetString());
    }

    [Fact]
    public async Task StreamedToolCalls_OpenAISdk_ParallelCallsAssembledAndFinishToolCalls()
    {
        _upstream.ParallelCalls = 2;
        var options = new ChatCompletionOptions
        {
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather for a city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}""")) },
        };
        var ids = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in SdkClient().CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
        {
            foreach (var tool in update.ToolCallUpdates)
            {
                if (tool.ToolCallId is not null)
                {
                    ids[tool.Index] = tool.ToolCallId;
                }

                (arguments.TryGetValue(tool.Index, out var sb) ? sb : arguments[tool.Index] = new StringBuilder()).Append(tool.FunctionArgumentsUpdate.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal([0, 1], ids.Keys.Order().ToArray());
        Assert.Equal(_upstream.Signature, GeminiToolCallId.Signature(ids[0]));
        Assert.Null(GeminiToolCallId.Signature(ids[1]));
        Assert.All(arguments.Values, a => Assert.Equal("Paris", JsonDocument.Parse(a.ToString()).RootElement.GetProperty("city").GetString()));

        // Replaying both calls: the first carries the signature, the second (which never had one) none.
        var replay = await PostAsync($$$"""
            {"model":"gemini-test","messages":[{"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[
                {"id":"{{{ids[0]}}}","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"{{{ids[1]}}}","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
              {"role":"tool","tool_call_id":"{{{ids[0]}}}","content":"18C"},
              {"role":"tool","tool_call_id":"{{{ids[1]}}}","content":"19C"}],
            """ + ToolsBody + "}");
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        var parts = _upstream.Server.LastRequest.Json().RootElement.GetProperty("contents")[1].GetProperty("parts");
        Assert.Equal(_upstream.Signature, parts[0].GetProperty("thoughtSignature").GetString());
        Assert.False(parts[1].TryGetProperty("thoughtSignature", out _));
    }

    [Fact]
    public async Task ToolCallReplay_IdWithoutSignature_SentinelSent()
    {
        var response = await PostAsync("""
            {"model":"gemini-test","messages":[{"role":"user","content":"Weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_fromElsewhere","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_fromElsewhere","content":"sunny"}],
            """ + ToolsBody + "}");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var part = _upstream.Server.LastRequest.Json().RootElement.GetProperty("contents")[1].GetProperty("parts")[0];
        Assert.Equal(FakeGemini.SkipSignature, part.GetProperty("thoughtSignature").GetString());
    }

    [Fact]
    public async Task NonStreamed_N2_TwoChoices()
    {
        var response = await PostAsync("""{"model":"gemini-test","n":2,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var choices = (await BodyAsync(response)).GetProperty("choices");
        Assert.Equal(2, choices.GetArrayLength());
        Assert.Equal(1, choices[1].GetProperty("index").GetInt32());
        Assert.Equal("#2 Hello from the fake Gemini.", choices[1].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(2, _upstream.Server.LastRequest.Json().RootElement.GetProperty("generationConfig").GetProperty("candidateCount").GetInt32());
    }

    [Fact]
    public async Task Streamed_N2_TwoChoicesEachFinished()
    {
        var response = await PostAsync("""{"model":"gemini-test","n":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync()).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement).ToList();
        string Text(int index) => string.Concat(events.SelectMany(e => e.GetProperty("choices").EnumerateArray())
            .Where(c => c.GetProperty("index").GetInt32() == index && c.GetProperty("delta").TryGetProperty("content", out _))
            .Select(c => c.GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal("Hello from the fake Gemini.", Text(0));
        Assert.Equal("#2 Hello from the fake Gemini.", Text(1));
        var finishes = events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).Where(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String);
        Assert.Equal([0, 1], finishes.Select(c => c.GetProperty("index").GetInt32()).Order().ToArray());
    }

    [Fact]
    public async Task Upstream400_RelayedAsInvalidRequest()
    {
        _upstream.Faults.Then(Fault.WithStatus(400, FakeGemini.Error(400, "* GenerationConfig.temperature: must be between 0 and 2", "INVALID_ARGUMENT")));
        var response = await PostAsync("""{"model":"gemini-test","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await BodyAsync(response)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("temperature", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ApiKeyInvalid_502AsGatewayCredentialProblemAndKeyNeverShown(bool stream)
    {
        _upstream.ApiKey = "a-different-key";
        var response = await PostAsync($$"""{"model":"gemini-test","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal("upstream_auth_failed", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain("gemini-upstream-key-1", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ResourceExhausted_429WithRetryAfterFromRetryInfo(bool stream)
    {
        _upstream.Faults.Then(Fault.WithStatus(429, FakeGemini.ResourceExhausted("17s")));
        var response = await PostAsync($$"""{"model":"gemini-test","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("17", response.Headers.GetValues("retry-after").Single());
        Assert.Equal("rate_limit_exceeded", (await BodyAsync(response)).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Unavailable503_502()
    {
        _upstream.Faults.Then(Fault.WithStatus(503, FakeGemini.Error(503, "The model is overloaded. Please try again later.")));
        var response = await PostAsync("""{"model":"gemini-test","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("server_error", (await BodyAsync(response)).GetProperty("error").GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task NoAnswerInTime_504(bool stream)
    {
        await using var quick = await StartGatewayAsync(timeoutMs: 1500);
        _upstream.Faults.Then(new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(30) });
        var response = await quick.Client.PostAsync("/v1/chat/completions", Json($$"""{"model":"gemini-test","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("timeout", (await BodyAsync(response)).GetProperty("error").GetProperty("code").GetString());
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task DroppedStream_InBandErrorEventAfterContent()
    {
        // The pause lets the gateway relay the first event before the reset (a reset discards unread bytes).
        _upstream.Faults.Then(new Fault { DropAfterEvents = 2, DelayBetweenEvents = TimeSpan.FromMilliseconds(300) });
        var response = await PostAsync("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", events);
        Assert.StartsWith("Hello", Sse.Content(events[..^1]), StringComparison.Ordinal);
        var error = JsonDocument.Parse(events[^1]).RootElement.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Contains("finish_reason\":\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StalledStream_InBandTimeoutError()
    {
        await using var quick = await StartGatewayAsync(timeoutMs: 1500);
        _upstream.Faults.Then(new Fault { StallAfterEvents = 1 });
        var response = await quick.Client.PostAsync("/v1/chat/completions", Json("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("timeout", JsonDocument.Parse(events[^1]).RootElement.GetProperty("error").GetProperty("code").GetString());
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task ClientDisconnectMidStream_UpstreamConnectionCancelled()
    {
        // The upstream sends a little, then holds the stream open: only the gateway giving up on it can end it.
        _upstream.Faults.Then(new Fault { StallAfterEvents = 2 });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStreamAsync();
        Assert.True(await body.ReadAsync(new byte[16]) > 0);

        response.Dispose();

        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task ErrorEventMidStream_InBandErrorNoDone()
    {
        _upstream.ErrorAfterEvents = 1;
        var response = await PostAsync("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("The model is overloaded. Please try again later.", JsonDocument.Parse(events[^1]).RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ErrorEventFirst_HttpErrorStatus()
    {
        _upstream.ErrorAfterEvents = 0;
        var response = await PostAsync("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Fact]
    public async Task StreamClosedWithoutFinishReason_InBandError()
    {
        _upstream.OmitFinishReason = true;
        var response = await PostAsync("""{"model":"gemini-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("Hello from the fake Gemini.", Sse.Content(events[..^1]));
        Assert.True(JsonDocument.Parse(events[^1]).RootElement.TryGetProperty("error", out _));
    }

    [Fact]
    public async Task ImageUrlToLoopback_400WithoutCallingUpstream()
    {
        var response = await PostAsync("""
            {"model":"gemini-test","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
              {"type":"image_url","image_url":{"url":"https://127.0.0.1:9/secret.png"}}]}]}
            """);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await BodyAsync(response)).GetProperty("error");
        Assert.Equal("invalid_image_url", error.GetProperty("code").GetString());
        Assert.Equal(0, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task ImageDataUri_SentInline()
    {
        var response = await PostAsync("""
            {"model":"gemini-test","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
              {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}]}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var inline = _upstream.Server.LastRequest.Json().RootElement.GetProperty("contents")[0].GetProperty("parts")[1].GetProperty("inlineData");
        Assert.Equal("image/jpeg", inline.GetProperty("mimeType").GetString());
        Assert.Equal("/9j/4AAQSkZJRg==", inline.GetProperty("data").GetString());
    }
}
