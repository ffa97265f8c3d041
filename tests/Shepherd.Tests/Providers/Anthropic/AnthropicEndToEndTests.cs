namespace Shepherd.Tests.Providers.Anthropic;

using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using global::OpenAI;
using global::OpenAI.Chat;
using Shepherd.Testing;

/// <summary>
/// The gateway in front of a fake Anthropic server, over real sockets: OpenAI wire format (raw HTTP and the
/// official OpenAI .NET SDK) on the client side, Anthropic's on the upstream side.
/// </summary>
public sealed class AnthropicEndToEndTests : IAsyncLifetime
{
    private const string UpstreamKey = "sk-ant-upstream-secret-1";

    private FakeAnthropic _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeAnthropic.StartAsync();
        _gateway = await StartGatewayAsync(_upstream.BaseUrl, firstByteMs: 30000, idleMs: 30000);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static Task<GatewayHost> StartGatewayAsync(string baseUrl, int firstByteMs, int idleMs) =>
        GatewayHost.StartAsync($$"""
            providers:
              - name: claude
                type: anthropic
                base_url: {{baseUrl}}
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 2000, first_byte_ms: {{firstByteMs}}, idle_ms: {{idleMs}} }
            models:
              - name: claude-test
                deployments:
                  - { provider: claude, model: claude-sonnet-4-5 }
            """);

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private Task<HttpResponseMessage> PostAsync(string json) => _gateway.Client.PostAsync("/v1/chat/completions", Json(json));

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("error").Clone();
    }

    private ChatClient SdkClient() =>
        new("claude-test", new ApiKeyCredential(GatewayHost.TestMasterKey), new OpenAIClientOptions { Endpoint = _gateway.OpenAIEndpoint, NetworkTimeout = TimeSpan.FromSeconds(30) });

    private static async Task AssertNoUpstreamKeyAsync(HttpResponseMessage response, string? body = null)
    {
        body ??= await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain(UpstreamKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-ant-", body, StringComparison.Ordinal);
        foreach (var header in response.Headers.Concat(response.Content.Headers))
        {
            Assert.DoesNotContain(header.Value, v => v.Contains(UpstreamKey, StringComparison.Ordinal));
        }
    }

    // ------------------------------------------------------------------------------------------- answers

    [Fact]
    public async Task NonStreamed_TextAnswer_TranslatedBothWays()
    {
        _upstream.CacheReadTokens = 100;
        _upstream.CacheCreationTokens = 10;
        var response = await PostAsync("""
            {"model":"claude-test","temperature":1.5,"messages":[
              {"role":"developer","content":"Be kind."},{"role":"user","content":"hi"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = _upstream.Server.LastRequest;
        Assert.Equal("/v1/messages", sent.Path);
        Assert.Equal(UpstreamKey, sent.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
        Assert.False(sent.Headers.ContainsKey("authorization"));
        var body = sent.Json().RootElement;
        Assert.Equal("claude-sonnet-4-5", body.GetProperty("model").GetString());
        Assert.Equal(4096, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(1, body.GetProperty("temperature").GetDouble());
        Assert.Equal("Be kind.", body.GetProperty("system").GetString());

        using var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = completion.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        var choice = root.GetProperty("choices")[0];
        Assert.Equal("Hello from the fake Anthropic.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = root.GetProperty("usage");
        Assert.Equal(21 + 100 + 10, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(9, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(100, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal("claude", response.Headers.GetValues("x-shepherd-provider").Single());
        await AssertNoUpstreamKeyAsync(response);
    }

    [Fact]
    public async Task NonStreamed_BaseUrlAlreadyEndingInV1_StillPostsToV1Messages()
    {
        await using var gateway = await StartGatewayAsync(_upstream.BaseUrl + "/v1/", firstByteMs: 30000, idleMs: 30000);
        var response = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/v1/messages", _upstream.Server.LastRequest.Path);
    }

    [Fact]
    public async Task Streamed_WithIncludeUsage_OpenAIChunksThenUsageThenDone()
    {
        _upstream.CacheReadTokens = 50;
        var response = await PostAsync("""
            {"model":"claude-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        var events = Sse.DataEvents(text);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("Hello from the fake Anthropic.", Sse.Content(events));
        Assert.True(_upstream.Server.LastRequest.Json().RootElement.GetProperty("stream").GetBoolean());

        using var first = JsonDocument.Parse(events[0]);
        Assert.Equal("assistant", first.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        using var finish = JsonDocument.Parse(events[^3]);
        Assert.Equal("stop", finish.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(0, usage.RootElement.GetProperty("choices").GetArrayLength());
        Assert.Equal(21 + 50, usage.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(9, usage.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.DoesNotContain("event:", text, StringComparison.Ordinal);
        await AssertNoUpstreamKeyAsync(response, text);
    }

    [Fact]
    public async Task Streamed_WithoutIncludeUsage_NoUsageChunk()
    {
        var response = await PostAsync("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"choices\":[]", StringComparison.Ordinal));
        Assert.Equal("Hello from the fake Anthropic.", Sse.Content(events));
    }

    [Fact]
    public async Task NonStreamed_ToolCallRoundTrip_HistoryAcceptedByStrictUpstream()
    {
        const string Tools = """
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]
            """;
        var first = await PostAsync($$"""{"model":"claude-test",{{Tools}},"messages":[{"role":"user","content":"Weather in Paris?"}]}""");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var message = JsonNode.Parse(await first.Content.ReadAsStringAsync())!["choices"]![0]!;
        Assert.Equal("tool_calls", message["finish_reason"]!.GetValue<string>());
        var call = message["message"]!["tool_calls"]![0]!;
        Assert.Equal("toolu_fake1", call["id"]!.GetValue<string>());
        Assert.Equal("get_weather", call["function"]!["name"]!.GetValue<string>());
        Assert.Equal("Paris", JsonNode.Parse(call["function"]!["arguments"]!.GetValue<string>())!["city"]!.GetValue<string>());
        var sentTools = _upstream.Server.LastRequest.Json().RootElement.GetProperty("tools");
        Assert.Equal("get_weather", sentTools[0].GetProperty("name").GetString());
        Assert.Equal("object", sentTools[0].GetProperty("input_schema").GetProperty("type").GetString());

        // Replay the assistant turn as OpenAI clients do (content null, tool_calls), plus the result.
        var assistant = message["message"]!.AsObject();
        var second = await PostAsync($$"""
            {"model":"claude-test",{{Tools}},"messages":[
              {"role":"user","content":"Weather in Paris?"},
              {{assistant.ToJsonString()}},
              {"role":"tool","tool_call_id":"toolu_fake1","content":"18C"}]}
            """);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var answer = JsonNode.Parse(await second.Content.ReadAsStringAsync())!["choices"]![0]!;
        Assert.Equal("Hello from the fake Anthropic.", answer["message"]!["content"]!.GetValue<string>());
        var history = _upstream.Server.LastRequest.Json().RootElement.GetProperty("messages");
        Assert.Equal("tool_result", history[2].GetProperty("content")[0].GetProperty("type").GetString());
        Assert.Equal("toolu_fake1", history[2].GetProperty("content")[0].GetProperty("tool_use_id").GetString());
    }

    [Fact]
    public async Task Streamed_JsonSchema_AnswerToolArrivesAsContent()
    {
        _upstream.ToolInput = """{"city":"Lyon"}""";
        var response = await PostAsync("""
            {"model":"claude-test","stream":true,"messages":[{"role":"user","content":"A city?"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"city","schema":{"type":"object","properties":{"city":{"type":"string"}}}}}}
            """);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("""{"city":"Lyon"}""", Sse.Content(events));
        Assert.DoesNotContain(events, e => e.Contains("tool_calls", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Contains("\"finish_reason\":\"stop\"", StringComparison.Ordinal));
        var sent = _upstream.Server.LastRequest.Json().RootElement;
        Assert.Equal("tool", sent.GetProperty("tool_choice").GetProperty("type").GetString());
        Assert.Equal("city", sent.GetProperty("tool_choice").GetProperty("name").GetString());
    }

    [Fact]
    public async Task MultipleChoices_RefusedBeforeTheUpstream()
    {
        var response = await PostAsync("""{"model":"claude-test","n":2,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("n", (await ErrorOf(response)).GetProperty("param").GetString());
        Assert.Equal(0, _upstream.Server.StartedCount);
    }

    // ------------------------------------------------------------------------------------------- official SDK

    [Fact]
    public async Task Sdk_Streamed_TextAndUsage()
    {
        var client = SdkClient();
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new SystemChatMessage("Be brief."), new UserChatMessage("hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage = update.Usage ?? usage;
            finish = update.FinishReason ?? finish;
        }

        Assert.Equal("Hello from the fake Anthropic.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(21, usage.InputTokenCount);
        Assert.Equal(9, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Sdk_ToolCallRoundTrip_NonStreamed()
    {
        var client = SdkClient();
        var options = new ChatCompletionOptions
        {
            Tools =
            {
                ChatTool.CreateFunctionTool("get_weather", "Current weather", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""")),
            },
        };
        List<ChatMessage> messages = [new UserChatMessage("Weather in Paris?")];

        ChatCompletion first = await client.CompleteChatAsync(messages, options);
        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Paris", JsonNode.Parse(call.FunctionArguments.ToString())!["city"]!.GetValue<string>());

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, "18C and cloudy"));
        ChatCompletion second = await client.CompleteChatAsync(messages, options);
        Assert.Equal(ChatFinishReason.Stop, second.FinishReason);
        Assert.Equal("Hello from the fake Anthropic.", second.Content[0].Text);
    }

    [Fact]
    public async Task Sdk_Streamed_ParallelToolCallsAssembled()
    {
        _upstream.ParallelToolCalls = true;
        var client = SdkClient();
        var options = new ChatCompletionOptions
        {
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Current weather") },
        };
        var ids = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
        {
            foreach (var tool in update.ToolCallUpdates)
            {
                if (tool.ToolCallId is not null)
                {
                    ids[tool.Index] = tool.ToolCallId;
                    Assert.Equal("get_weather", tool.FunctionName);
                }

                if (!arguments.TryGetValue(tool.Index, out var sb))
                {
                    arguments[tool.Index] = sb = new StringBuilder();
                }

                sb.Append(tool.FunctionArgumentsUpdate?.ToString());
            }

            finish = update.FinishReason ?? finish;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(["toolu_fake1", "toolu_fake2"], ids.OrderBy(p => p.Key).Select(p => p.Value));
        Assert.All(arguments.Values, a => Assert.Equal("""{"city":"Paris"}""", a.ToString()));
    }

    // ------------------------------------------------------------------------------------------- errors

    [Fact]
    public async Task Error_400_RelayedAs400WithTheUpstreamMessage()
    {
        _upstream.Faults.Then(Fault.WithStatus(400, FakeAnthropic.Error(400, "messages.0.content: bad block")));
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorOf(response);
        Assert.Equal("messages.0.content: bad block", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Error_PromptTooLong_400ContextLengthExceeded()
    {
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"TOO_LONG_PROMPT"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("context_length_exceeded", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Error_429WithRetryAfter_429WithRetryAfter()
    {
        _upstream.Faults.Then(Fault.WithStatus(429, FakeAnthropic.Error(429, "Number of request tokens has exceeded your per-minute rate limit"), ("retry-after", "7")));
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter!.Delta);
        Assert.Equal("rate_limit_error", (await ErrorOf(response)).GetProperty("type").GetString());
    }

    [Fact]
    public async Task Error_529Overloaded_429RateLimited()
    {
        _upstream.Faults.Then(Fault.WithStatus(529, FakeAnthropic.Error(529, "Overloaded")));
        var response = await PostAsync("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task Error_500_502()
    {
        _upstream.Faults.Then(Fault.WithStatus(500, FakeAnthropic.Error(500, "Internal server error")));
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("server_error", (await ErrorOf(response)).GetProperty("type").GetString());
    }

    [Fact]
    public async Task Error_UpstreamRejectsKey_502AndNoKeyAnywhere()
    {
        _upstream.Faults.Then(Fault.WithStatus(401, FakeAnthropic.Error(401, $"invalid x-api-key {UpstreamKey}")));
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        await AssertNoUpstreamKeyAsync(response);
        Assert.DoesNotContain(_gateway.Logs.Lines, l => l.Contains(UpstreamKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Error_WrongVersionConfigured_UpstreamRefusalRelayed()
    {
        _upstream.Version = "2099-01-01";
        var response = await PostAsync("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("anthropic-version", (await ErrorOf(response)).GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Error_NoHeadersInTime_504()
    {
        await using var gateway = await StartGatewayAsync(_upstream.BaseUrl, firstByteMs: 300, idleMs: 300);
        _upstream.Faults.Then(new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(10) });
        var response = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("timeout", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Error_StreamStallsAfterStart_InBandTimeoutError()
    {
        await using var gateway = await StartGatewayAsync(_upstream.BaseUrl, firstByteMs: 2000, idleMs: 300);

        // Stalls after the first text delta: the stream is committed, so the timeout arrives in-band.
        _upstream.Faults.Then(new Fault { StallAfterEvents = 5 });
        var response = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("timeout", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task Error_StreamStallsBeforeFirstContent_HttpTimeout()
    {
        // Before its first content a stream is not committed: a stall there is an ordinary 504 (or a failover).
        await using var gateway = await StartGatewayAsync(_upstream.BaseUrl, firstByteMs: 2000, idleMs: 300);
        _upstream.Faults.Then(new Fault { StallAfterEvents = 3 });
        var response = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
    }

    [Fact]
    public async Task Error_ConnectionDroppedMidStream_InBandErrorEvent()
    {
        // Spaced events: an abort (RST) on loopback can discard bytes not yet read, and this test needs the stream begun.
        _upstream.Faults.Then(new Fault { DropAfterEvents = 5, DelayBetweenEvents = TimeSpan.FromMilliseconds(100) });
        var response = await PostAsync("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        var events = Sse.DataEvents(body);
        Assert.DoesNotContain("[DONE]", events);
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("server_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        await AssertNoUpstreamKeyAsync(response, body);
    }

    [Fact]
    public async Task Error_ErrorEventMidStream_InBandRateLimitError()
    {
        _upstream.ErrorEventAfter = 4;
        var response = await PostAsync("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", events);
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("rate_limit_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("Overloaded", error.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Error_ErrorEventBeforeAnyChunk_HttpErrorStatus()
    {
        _upstream.ErrorEventAfter = 0;
        var response = await PostAsync("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
    }

    [Fact]
    public async Task ClientDisconnect_MidStream_UpstreamCancelled()
    {
        _upstream.Faults.Then(new Fault { StallAfterEvents = 5 });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json("""{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[256];
        Assert.True(await stream.ReadAsync(buffer) > 0);
        response.Dispose();
        await _upstream.Server.WaitForCancellationsAsync();
    }
}
