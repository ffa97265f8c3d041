namespace Shepherd.Tests.Server;

using System.ClientModel;
using System.ClientModel.Primitives;
using System.ComponentModel;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using Shepherd.Testing;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AIChatRole = Microsoft.Extensions.AI.ChatRole;
using ChatFinishReason = OpenAI.Chat.ChatFinishReason;
using OpenAIChatMessage = OpenAI.Chat.ChatMessage;

/// <summary>The official OpenAI .NET SDK and Microsoft.Extensions.AI as clients of the gateway.</summary>
public sealed class OpenAISdkTests : IAsyncLifetime
{
    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
                timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000 }
              - name: sim
                type: simulated
                simulated: { response_tokens: 12, prompt_tokens: 30 }
            models:
              - name: gpt-test
                deployments: [ { provider: fake, model: upstream-model } ]
              - name: sim-model
                deployments: [ { provider: sim } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private ChatClient Client(string model, string key = GatewayHost.TestMasterKey) =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = _gateway.OpenAIEndpoint,
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromSeconds(30),
        });

    private static ChatCompletionOptions WeatherTool() => new()
    {
        Tools = { ChatTool.CreateFunctionTool("get_weather", "Current weather for a city", BinaryData.FromString(WeatherSchema)) },
    };

    [Fact]
    public async Task CompleteChat_PlainChat_TextFinishAndUsage()
    {
        var completion = (await Client("gpt-test").CompleteChatAsync([new UserChatMessage("Hello?")])).Value;

        Assert.Equal("Hello from the fake upstream.", completion.Content.Single().Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(11, completion.Usage.InputTokenCount);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal(18, completion.Usage.TotalTokenCount);
        Assert.Equal("upstream-model", _upstream.Server.LastRequest.Json().RootElement.GetProperty("model").GetString());
    }

    [Theory]
    [InlineData("gpt-test")]
    [InlineData("sim-model")]
    public async Task CompleteChatStreaming_TextConcatenatesAndFinalUsageArrives(string model)
    {
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        var updates = 0;
        await foreach (var update in Client(model).CompleteChatStreamingAsync([new UserChatMessage("Stream please")]))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage = update.Usage ?? usage;
        }

        Assert.True(updates > 2);
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.True(usage.InputTokenCount > 0);
        Assert.True(usage.OutputTokenCount > 0);
        Assert.Equal(usage.InputTokenCount + usage.OutputTokenCount, usage.TotalTokenCount);
        if (model == "gpt-test")
        {
            Assert.Equal("Hello from the fake upstream.", text.ToString());
            Assert.Equal(18, usage.TotalTokenCount);
        }
        else
        {
            var complete = (await Client(model).CompleteChatAsync([new UserChatMessage("Stream please")])).Value;
            Assert.Equal(complete.Content.Single().Text, text.ToString());
            Assert.Equal(30, usage.InputTokenCount);
            Assert.Equal(12, usage.OutputTokenCount);
        }
    }

    [Theory]
    [InlineData("gpt-test")]
    [InlineData("sim-model")]
    public async Task CompleteChat_ToolRoundTrip_ModelCallsToolThenAnswers(string model)
    {
        var client = Client(model);
        var options = WeatherTool();
        List<OpenAIChatMessage> messages = [new UserChatMessage("What is the weather in Paris?")];

        var first = (await client.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.False(string.IsNullOrEmpty(call.Id));
        using (var arguments = JsonDocument.Parse(call.FunctionArguments))
        {
            Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("city").ValueKind);
        }

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, "18C and cloudy"));
        var second = (await client.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(ChatFinishReason.Stop, second.FinishReason);
        Assert.Empty(second.ToolCalls);
        Assert.False(string.IsNullOrWhiteSpace(second.Content.Single().Text));
        if (model == "gpt-test")
        {
            var sent = _upstream.Server.LastRequest.Json().RootElement.GetProperty("messages");
            Assert.Equal(3, sent.GetArrayLength());
            Assert.Equal(call.Id, sent[1].GetProperty("tool_calls")[0].GetProperty("id").GetString());
            Assert.Equal("tool", sent[2].GetProperty("role").GetString());
            Assert.Equal(call.Id, sent[2].GetProperty("tool_call_id").GetString());
        }
    }

    [Theory]
    [InlineData("gpt-test")]
    [InlineData("sim-model")]
    public async Task CompleteChatStreaming_ToolCall_AssembledFromFragments(string model)
    {
        string? id = null, name = null;
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Client(model).CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], WeatherTool()))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                Assert.Equal(0, call.Index);
                id ??= call.ToolCallId;
                name ??= call.FunctionName;
                if (call.FunctionArgumentsUpdate is { } fragment)
                {
                    arguments.Append(fragment.ToString());
                }
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.False(string.IsNullOrEmpty(id));
        Assert.Equal("get_weather", name);
        using var parsed = JsonDocument.Parse(arguments.ToString());
        Assert.Equal(JsonValueKind.String, parsed.RootElement.GetProperty("city").ValueKind);
    }

    [Fact]
    public async Task CompleteChat_BadKey_ClientResultException401()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Client("gpt-test", "sk-not-the-key").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(401, ex.Status);
        Assert.Equal(0, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task CompleteChatStreaming_BadKey_ClientResultException401()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(async () =>
        {
            await foreach (var _ in Client("gpt-test", "sk-not-the-key").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
            }
        });

        Assert.Equal(401, ex.Status);
    }

    [Fact]
    public async Task CompleteChat_UnknownModel_ClientResultException404()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Client("no-such-model").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(404, ex.Status);
        Assert.Contains("no-such-model", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteChat_InvalidRequest_ClientResultException400()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("gpt-test").CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 7f }));

        Assert.Equal(400, ex.Status);
        Assert.Contains("temperature", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task CompleteChat_UpstreamRateLimited_ClientResultException429()
    {
        _upstream.Faults.Always(Fault.WithStatus(429, FakeOpenAI.Error(429, "Rate limit reached.", "requests", "rate_limit_exceeded"), ("retry-after", "1")));

        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Client("gpt-test").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(429, ex.Status);
        Assert.Equal(1, _upstream.Server.StartedCount);
    }

    /// <remarks>
    /// The gateway ends such a stream with an in-band <c>{"error":…}</c> event and no <c>[DONE]</c>. The .NET SDK (unlike
    /// the Python one) does not raise on that event: its client sees the partial text and no finish reason.
    /// </remarks>
    [Fact]
    public async Task CompleteChatStreaming_UpstreamDropsMidStream_PartialTextAndNoFinishReason()
    {
        _upstream.Faults.Always(new Fault { DropAfterEvents = 3, DelayBetweenEvents = TimeSpan.FromMilliseconds(150) });
        var text = new StringBuilder();
        ChatFinishReason? finish = null;

        await foreach (var update in Client("gpt-test").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal("Hello from", text.ToString());
        Assert.Null(finish);
    }

    [Theory]
    [InlineData("gpt-test")]
    [InlineData("sim-model")]
    public async Task IChatClient_GetResponse_TextAndUsage(string model)
    {
        IChatClient chat = Client(model).AsIChatClient();

        var response = await chat.GetResponseAsync("Say something");

        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, response.FinishReason);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage.InputTokenCount > 0);
        Assert.True(response.Usage.OutputTokenCount > 0);
    }

    [Theory]
    [InlineData("gpt-test")]
    [InlineData("sim-model")]
    public async Task IChatClient_GetStreamingResponse_TextAndUsage(string model)
    {
        IChatClient chat = Client(model).AsIChatClient();
        var updates = new List<ChatResponseUpdate>();

        await foreach (var update in chat.GetStreamingResponseAsync("Say something"))
        {
            updates.Add(update);
        }

        var response = updates.ToChatResponse();
        var expected = (await chat.GetResponseAsync("Say something")).Text;
        Assert.Equal(expected, response.Text);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage.TotalTokenCount > 0);
        Assert.Contains(updates, u => u.Contents.OfType<UsageContent>().Any());
    }

    [Theory]
    [InlineData("gpt-test", false)]
    [InlineData("sim-model", false)]
    [InlineData("gpt-test", true)]
    [InlineData("sim-model", true)]
    public async Task IChatClient_UseFunctionInvocation_ToolIsCalledAndModelAnswers(string model, bool stream)
    {
        var cities = new List<string>();
        var weather = AIFunctionFactory.Create(
            ([Description("The city")] string city) =>
            {
                cities.Add(city);
                return $"18C and cloudy in {city}";
            },
            "get_weather",
            "Current weather for a city");
        using var chat = new ChatClientBuilder(Client(model).AsIChatClient()).UseFunctionInvocation().Build();
        var options = new ChatOptions { Tools = [weather] };
        List<AIChatMessage> messages = [new(AIChatRole.User, "What is the weather in Paris?")];

        ChatResponse response;
        if (stream)
        {
            var updates = new List<ChatResponseUpdate>();
            await foreach (var update in chat.GetStreamingResponseAsync(messages, options))
            {
                updates.Add(update);
            }

            response = updates.ToChatResponse();
        }
        else
        {
            response = await chat.GetResponseAsync(messages, options);
        }

        var city = Assert.Single(cities);
        Assert.False(string.IsNullOrEmpty(city));
        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionCallContent>().Any(c => c.Name == "get_weather"));
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionResultContent>().Any());
        if (model == "gpt-test")
        {
            Assert.Equal("Paris", city);
            Assert.Equal("Hello from the fake upstream.", response.Text);
            var sent = _upstream.Server.LastRequest.Json().RootElement.GetProperty("messages");
            Assert.Equal("tool", sent[sent.GetArrayLength() - 1].GetProperty("role").GetString());
            Assert.Contains("18C and cloudy in Paris", sent[sent.GetArrayLength() - 1].GetProperty("content").ToString(), StringComparison.Ordinal);
        }
    }
}
