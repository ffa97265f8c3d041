namespace Shepherd.Testing;

using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

/// <summary>
/// A fake OpenAI-compatible server: <c>POST /v1/chat/completions</c> (streamed and not) and <c>GET /v1/models</c>,
/// answering like OpenAI does, with faults from <see cref="Faults"/>.
/// </summary>
public sealed class FakeOpenAI : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, bool> _refused = new(StringComparer.Ordinal);
    private FakeUpstream _server = null!;

    public FaultPlan Faults { get; } = new();

    /// <summary>From now on, requests with this bearer key get 401 (chat and <c>GET /v1/models</c> alike).</summary>
    public void RefuseKey(string key) => _refused[key] = true;

    /// <summary>Accepts a refused key again.</summary>
    public void AcceptKey(string key) => _refused.TryRemove(key, out _);

    /// <summary>The text of a normal answer; streamed word by word.</summary>
    public string Reply { get; set; } = "Hello from the fake upstream.";

    public int PromptTokens { get; set; } = 11;

    public int CompletionTokens { get; set; } = 7;

    public int CachedTokens { get; set; }

    public int ReasoningTokens { get; set; }

    /// <summary>Arguments of the tool call made when tools are offered on a user turn.</summary>
    public string ToolArguments { get; set; } = """{"city":"Paris"}""";

    /// <summary>Send the usage chunk when the request asks for it (turn off to simulate a server that never does).</summary>
    public bool StreamUsage { get; set; } = true;

    public string BaseUrl => _server.BaseUrl + "/v1";

    public FakeUpstream Server => _server;

    public static async Task<FakeOpenAI> StartAsync()
    {
        var fake = new FakeOpenAI();
        fake._server = await FakeUpstream.StartAsync(fake.HandleAsync);
        return fake;
    }

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        if (!_refused.IsEmpty && _refused.ContainsKey(request.BearerKey))
        {
            context.Response.StatusCode = 401;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(Error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), context.RequestAborted);
            return;
        }

        var fault = Faults.Next();
        if (fault.HoldUntil is { } hold)
        {
            await hold.WaitAsync(context.RequestAborted);
        }

        if (fault.DelayBeforeHeaders > TimeSpan.Zero)
        {
            await Task.Delay(fault.DelayBeforeHeaders, context.RequestAborted);
        }

        if (fault.DropConnection)
        {
            context.Abort();
            return;
        }

        if (fault.Status is { } status)
        {
            context.Response.StatusCode = status;
            foreach (var (name, value) in fault.Headers)
            {
                context.Response.Headers[name] = value;
            }

            context.Response.ContentType = fault.ContentType;
            await context.Response.WriteAsync(fault.Body ?? Error(status), context.RequestAborted);
            return;
        }

        if (request.Method == "GET" && request.Path.EndsWith("/models", StringComparison.Ordinal))
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"fake"}]}""");
            return;
        }

        if (!request.Path.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsync(Error(404));
            return;
        }

        var body = JsonNode.Parse(request.Body)!.AsObject();
        var model = body["model"]?.GetValue<string>() ?? "unknown";
        var stream = body["stream"]?.GetValue<bool>() == true;
        var includeUsage = body["stream_options"]?["include_usage"]?.GetValue<bool>() == true;
        var toolName = PickTool(body);
        if (stream)
        {
            await StreamAsync(context, fault, model, toolName, includeUsage);
        }
        else
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(Completion(model, toolName), context.RequestAborted);
        }
    }

    private static string? PickTool(JsonObject body)
    {
        if (body["tools"] is not JsonArray { Count: > 0 } tools || body["tool_choice"]?.ToString() == "none")
        {
            return null;
        }

        var messages = body["messages"]!.AsArray();
        return messages[^1]?["role"]?.GetValue<string>() == "user" ? tools[0]?["function"]?["name"]?.GetValue<string>() : null;
    }

    private string Completion(string model, string? toolName)
    {
        var message = new JsonObject { ["role"] = "assistant", ["refusal"] = null };
        if (toolName is null)
        {
            message["content"] = Reply;
        }
        else
        {
            message["content"] = null;
            message["tool_calls"] = new JsonArray(new JsonObject
            {
                ["id"] = "call_fake1",
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = ToolArguments },
            });
        }

        var completion = new JsonObject
        {
            ["id"] = "chatcmpl-fake",
            ["object"] = "chat.completion",
            ["created"] = 1760000000,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = message,
                ["logprobs"] = null,
                ["finish_reason"] = toolName is null ? "stop" : "tool_calls",
            }),
            ["usage"] = UsageNode(),
            ["system_fingerprint"] = "fp_fake",
        };
        return completion.ToJsonString();
    }

    private JsonObject UsageNode() => new()
    {
        ["prompt_tokens"] = PromptTokens,
        ["completion_tokens"] = CompletionTokens,
        ["total_tokens"] = PromptTokens + CompletionTokens,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = CachedTokens, ["audio_tokens"] = 0 },
        ["completion_tokens_details"] = new JsonObject { ["reasoning_tokens"] = ReasoningTokens },
    };

    private async Task StreamAsync(HttpContext context, Fault fault, string model, string? toolName, bool includeUsage)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        var events = new List<string>();
        string Chunk(string delta, string? finish = null) =>
            $$"""{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1760000000,"model":{{JsonSerializer.Serialize(model)}},"choices":[{"index":0,"delta":{{delta}},"logprobs":null,"finish_reason":{{(finish is null ? "null" : $"\"{finish}\"")}}}]{{(includeUsage ? ",\"usage\":null" : "")}}}""";

        events.Add(fault.FirstEventData ?? Chunk("""{"role":"assistant","content":""}"""));
        if (toolName is null)
        {
            foreach (var piece in SplitWords(Reply))
            {
                events.Add(Chunk($$"""{"content":{{JsonSerializer.Serialize(piece)}}}"""));
            }

            events.Add(Chunk("{}", "stop"));
        }
        else
        {
            events.Add(Chunk($$$"""{"tool_calls":[{"index":0,"id":"call_fake1","type":"function","function":{"name":{{{JsonSerializer.Serialize(toolName)}}},"arguments":""}}]}"""));
            var half = ToolArguments.Length / 2;
            events.Add(Chunk($$$"""{"tool_calls":[{"index":0,"function":{"arguments":{{{JsonSerializer.Serialize(ToolArguments[..half])}}}}}]}"""));
            events.Add(Chunk($$$"""{"tool_calls":[{"index":0,"function":{"arguments":{{{JsonSerializer.Serialize(ToolArguments[half..])}}}}}]}"""));
            events.Add(Chunk("{}", "tool_calls"));
        }

        if (includeUsage && StreamUsage)
        {
            events.Add($$"""{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1760000000,"model":{{JsonSerializer.Serialize(model)}},"choices":[],"usage":{{UsageNode().ToJsonString()}}}""");
        }

        events.Add("[DONE]");
        if (fault.DelayBeforeFirstEvent > TimeSpan.Zero)
        {
            await Task.Delay(fault.DelayBeforeFirstEvent, context.RequestAborted);
        }

        for (var i = 0; i < events.Count; i++)
        {
            // The delay comes first, so a drop happens when the next event was due: an abort right after a flush
            // could discard bytes still on their way (a reset connection loses unread data).
            if (i > 0 && fault.DelayBetweenEvents > TimeSpan.Zero)
            {
                await Task.Delay(fault.DelayBetweenEvents, context.RequestAborted);
            }

            if (fault.DropAfterEvents == i)
            {
                if (fault.DropWhen is { } when)
                {
                    await when.WaitAsync(context.RequestAborted);
                }

                context.Abort();
                return;
            }

            if (fault.StallAfterEvents == i)
            {
                await (fault.StallUntil ?? Task.Delay(Timeout.Infinite)).WaitAsync(context.RequestAborted);
            }

            await context.Response.WriteAsync($"data: {events[i]}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    private static IEnumerable<string> SplitWords(string text)
    {
        var sb = new StringBuilder();
        foreach (var ch in text)
        {
            if (ch == ' ' && sb.Length > 0)
            {
                yield return sb.ToString();
                sb.Clear();
            }

            sb.Append(ch);
        }

        if (sb.Length > 0)
        {
            yield return sb.ToString();
        }
    }

    public static string Error(int status, string? message = null, string? type = null, string? code = null) =>
        new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = message ?? $"fake upstream error {status}",
                ["type"] = type ?? (status >= 500 ? "server_error" : "invalid_request_error"),
                ["param"] = null,
                ["code"] = code,
            },
        }.ToJsonString();

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
