namespace Shepherd.Testing;

using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

/// <summary>
/// A fake Gemini API: <c>POST /v1beta/models/{model}:generateContent</c> and <c>:streamGenerateContent?alt=sse</c>,
/// answering like Gemini does (text, or function calls with a thought signature; SSE with no end sentinel, the
/// connection just closes), with faults from <see cref="Faults"/>.
/// </summary>
/// <remarks>
/// It checks what the real API checks and a gateway most easily gets wrong: the <c>x-goog-api-key</c> header (a bad
/// key is Gemini's 400 <c>API_KEY_INVALID</c>), <c>alt=sse</c> on streams, alternating non-empty <c>user</c>/<c>model</c>
/// contents, a name on every <c>functionResponse</c>, and (like Gemini 3) a thought signature on the first function call
/// of every model turn.
/// </remarks>
public sealed class FakeGemini : IAsyncDisposable
{
    /// <summary>Gemini's documented stand-in for a lost thought signature.</summary>
    public const string SkipSignature = "skip_thought_signature_validator";

    private FakeUpstream _server = null!;

    public FaultPlan Faults { get; } = new();

    public string ApiKey { get; set; } = "gemini-upstream-key-1";

    /// <summary>The text of a normal answer; streamed word by word. Candidate <c>i &gt; 0</c> answers "<c>#i+1 text</c>".</summary>
    public string Reply { get; set; } = "Hello from the fake Gemini.";

    public int PromptTokens { get; set; } = 11;

    public int CandidatesTokens { get; set; } = 7;

    public int ThoughtsTokens { get; set; }

    public int CachedTokens { get; set; }

    /// <summary>The text of a thought summary part sent before the answer (none when null).</summary>
    public string? Thought { get; set; }

    /// <summary>Arguments (a JSON object) of the function calls made when tools are offered on a user turn.</summary>
    public string ToolArguments { get; set; } = """{"city":"Paris"}""";

    /// <summary>How many function calls one answer makes (parallel calls: only the first carries the signature).</summary>
    public int ParallelCalls { get; set; } = 1;

    /// <summary>The thought signature put on function calls (base64, with characters base64url would change).</summary>
    public string Signature { get; set; } = Convert.ToBase64String([0xFB, 0xFF, 0xBF, .. "fake-thought-signature"u8, 0x3E, 0x3F]);

    /// <summary>Refuse a history whose first function call of a model turn lacks the signature (Gemini 3 does).</summary>
    public bool RequireSignatures { get; set; } = true;

    /// <summary>For streams: after this many events, send <see cref="StreamError"/> as a data event and close.</summary>
    public int? ErrorAfterEvents { get; set; }

    public string StreamError { get; set; } = """{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}""";

    /// <summary>For streams: leave the finish reason out of the last event (a stream cut short that still closes cleanly).</summary>
    public bool OmitFinishReason { get; set; }

    public string BaseUrl => _server.BaseUrl + "/v1beta";

    public FakeUpstream Server => _server;

    public static async Task<FakeGemini> StartAsync()
    {
        var fake = new FakeGemini();
        fake._server = await FakeUpstream.StartAsync(fake.HandleAsync);
        return fake;
    }

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        var fault = Faults.Next();
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

        var path = request.Path;
        var colon = path.LastIndexOf(':');
        const string prefix = "/v1beta/models/";
        if (request.Method != "POST" || !path.StartsWith(prefix, StringComparison.Ordinal) || colon < prefix.Length)
        {
            await Answer(context, 404, Error(404, $"Method not found: {path}", "NOT_FOUND"));
            return;
        }

        var model = Uri.UnescapeDataString(path[prefix.Length..colon]);
        var method = path[(colon + 1)..];
        if (method is not ("generateContent" or "streamGenerateContent"))
        {
            await Answer(context, 404, Error(404, $"Method not found: {method}", "NOT_FOUND"));
            return;
        }

        if (!request.Headers.TryGetValue("x-goog-api-key", out var key) || key != ApiKey)
        {
            await Answer(context, 400, ApiKeyInvalid());
            return;
        }

        var stream = method == "streamGenerateContent";
        if (stream && !request.Query.Contains("alt=sse", StringComparison.Ordinal))
        {
            await Answer(context, 400, Error(400, "This fake only streams server-sent events: add alt=sse.", "INVALID_ARGUMENT"));
            return;
        }

        JsonObject body;
        try
        {
            body = JsonNode.Parse(request.Body)!.AsObject();
        }
        catch (JsonException)
        {
            await Answer(context, 400, Error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT"));
            return;
        }

        if (Validate(body) is { } problem)
        {
            await Answer(context, 400, Error(400, problem, "INVALID_ARGUMENT"));
            return;
        }

        var candidates = body["generationConfig"]?["candidateCount"]?.GetValue<int>() ?? 1;
        var (toolName, toolResult) = Decide(body);
        if (stream)
        {
            await StreamAsync(context, fault, model, candidates, toolName, toolResult);
        }
        else
        {
            var answer = new JsonObject
            {
                ["candidates"] = new JsonArray(Enumerable.Range(0, candidates).Select(i => (JsonNode)Candidate(i, Parts(toolName, Text(i, toolResult)), "STOP")).ToArray()),
                ["usageMetadata"] = UsageNode(final: true),
                ["modelVersion"] = model,
                ["responseId"] = "fake-response-1",
            };
            await Answer(context, 200, answer.ToJsonString());
        }
    }

    /// <summary>The checks of the real API a translating gateway most often fails.</summary>
    private string? Validate(JsonObject body)
    {
        if (body["contents"] is not JsonArray { Count: > 0 } contents)
        {
            return "* GenerateContentRequest.contents: contents is not specified";
        }

        string? previous = null;
        for (var i = 0; i < contents.Count; i++)
        {
            var role = contents[i]?["role"]?.GetValue<string>();
            if (role is not ("user" or "model"))
            {
                return $"Please use a valid role: user, model. (contents[{i}])";
            }

            if (role == previous)
            {
                return $"Please ensure that multiturn requests alternate between user and model. (contents[{i}])";
            }

            previous = role;
            if (contents[i]?["parts"] is not JsonArray { Count: > 0 } parts)
            {
                return $"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.";
            }

            var firstCall = true;
            foreach (var part in parts)
            {
                if (part?["text"] is JsonValue text && text.GetValue<string>().Length == 0)
                {
                    return $"Unable to submit request because it has an empty text parameter. (contents[{i}])";
                }

                if (part?["functionResponse"] is { } response && string.IsNullOrEmpty(response["name"]?.GetValue<string>()))
                {
                    return $"* GenerateContentRequest.contents[{i}].parts.function_response.name: Name cannot be empty.";
                }

                if (part?["functionCall"] is { } call)
                {
                    var signature = part["thoughtSignature"]?.GetValue<string>();
                    if (RequireSignatures && firstCall && signature != Signature && signature != SkipSignature)
                    {
                        return $"Function call `{call["name"]}` in the {i + 1}. content block is missing a `thought_signature`.";
                    }

                    firstCall = false;
                }
            }
        }

        return null;
    }

    /// <summary>Calls the first tool when tools are offered on a fresh user turn; after function results, answers with them.</summary>
    private static (string? ToolName, string? ToolResult) Decide(JsonObject body)
    {
        var last = body["contents"]!.AsArray()[^1]!["parts"]!.AsArray();
        var result = last.Select(p => p?["functionResponse"]?["response"]?["output"]?.ToString()).FirstOrDefault(o => o is not null);
        if (result is not null)
        {
            return (null, result);
        }

        var mode = body["toolConfig"]?["functionCallingConfig"]?["mode"]?.GetValue<string>();
        var name = body["tools"]?[0]?["functionDeclarations"]?[0]?["name"]?.GetValue<string>();
        return (mode == "NONE" ? null : name, null);
    }

    private string Text(int candidate, string? toolResult) =>
        (candidate == 0 ? string.Empty : $"#{candidate + 1} ") + (toolResult is null ? Reply : $"The tool said: {toolResult}");

    private JsonArray Parts(string? toolName, string text)
    {
        var parts = new JsonArray();
        if (Thought is not null)
        {
            parts.Add(new JsonObject { ["text"] = Thought, ["thought"] = true });
        }

        if (toolName is null)
        {
            parts.Add(new JsonObject { ["text"] = text });
            return parts;
        }

        for (var i = 0; i < ParallelCalls; i++)
        {
            var part = new JsonObject { ["functionCall"] = new JsonObject { ["name"] = toolName, ["args"] = JsonNode.Parse(ToolArguments) } };
            if (i == 0)
            {
                part["thoughtSignature"] = Signature;
            }

            parts.Add(part);
        }

        return parts;
    }

    private static JsonObject Candidate(int index, JsonArray parts, string? finishReason)
    {
        var candidate = new JsonObject
        {
            ["content"] = new JsonObject { ["role"] = "model", ["parts"] = parts },
            ["index"] = index,
        };
        if (finishReason is not null)
        {
            candidate["finishReason"] = finishReason;
        }

        return candidate;
    }

    private JsonObject UsageNode(bool final)
    {
        var usage = new JsonObject { ["promptTokenCount"] = PromptTokens };
        if (final)
        {
            usage["candidatesTokenCount"] = CandidatesTokens;
            if (ThoughtsTokens > 0)
            {
                usage["thoughtsTokenCount"] = ThoughtsTokens;
            }
        }

        if (CachedTokens > 0)
        {
            usage["cachedContentTokenCount"] = CachedTokens;
        }

        usage["totalTokenCount"] = PromptTokens + (final ? CandidatesTokens + ThoughtsTokens : 0);
        return usage;
    }

    private async Task StreamAsync(HttpContext context, Fault fault, string model, int candidates, string? toolName, string? toolResult)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.Body.FlushAsync(context.RequestAborted);

        string Event(JsonObject candidate, bool final) => new JsonObject
        {
            ["candidates"] = new JsonArray(candidate),
            ["usageMetadata"] = UsageNode(final),
            ["modelVersion"] = model,
            ["responseId"] = "fake-response-1",
        }.ToJsonString();

        // Gemini streams new parts only; finishReason and the full usage ride on each candidate's last event.
        var events = new List<string>();
        for (var c = 0; c < candidates; c++)
        {
            if (toolName is not null)
            {
                events.Add(Event(Candidate(c, Parts(toolName, string.Empty), OmitFinishReason ? null : "STOP"), final: true));
                continue;
            }

            if (Thought is not null)
            {
                events.Add(Event(Candidate(c, [new JsonObject { ["text"] = Thought, ["thought"] = true }], null), final: false));
            }

            var words = SplitWords(Text(c, toolResult)).ToList();
            for (var i = 0; i < words.Count; i++)
            {
                var last = i == words.Count - 1;
                events.Add(Event(Candidate(c, [new JsonObject { ["text"] = words[i] }], last && !OmitFinishReason ? "STOP" : null), final: last));
            }
        }

        if (fault.DelayBeforeFirstEvent > TimeSpan.Zero)
        {
            await Task.Delay(fault.DelayBeforeFirstEvent, context.RequestAborted);
        }

        for (var i = 0; i < events.Count; i++)
        {
            if (fault.DropAfterEvents == i)
            {
                context.Abort();
                return;
            }

            if (fault.StallAfterEvents == i)
            {
                await (fault.StallUntil ?? Task.Delay(Timeout.Infinite)).WaitAsync(context.RequestAborted);
            }

            if (ErrorAfterEvents == i)
            {
                await context.Response.WriteAsync($"data: {StreamError}\r\n\r\n", context.RequestAborted);
                return;
            }

            if (i > 0 && fault.DelayBetweenEvents > TimeSpan.Zero)
            {
                await Task.Delay(fault.DelayBetweenEvents, context.RequestAborted);
            }

            // Gemini frames events with CRLF.
            await context.Response.WriteAsync($"data: {events[i]}\r\n\r\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    private static IEnumerable<string> SplitWords(string text)
    {
        var start = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (text[i] == ' ')
            {
                yield return text[start..i];
                start = i;
            }
        }

        yield return text[start..];
    }

    private static Task Answer(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=UTF-8";
        return context.Response.WriteAsync(json, context.RequestAborted);
    }

    /// <summary>A Gemini error body: <c>{"error":{"code","message","status","details"}}</c>.</summary>
    public static string Error(int status, string? message = null, string? statusName = null, JsonArray? details = null)
    {
        var error = new JsonObject
        {
            ["code"] = status,
            ["message"] = message ?? $"fake Gemini error {status}",
            ["status"] = statusName ?? status switch
            {
                400 => "INVALID_ARGUMENT",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "INTERNAL",
            },
        };
        if (details is not null)
        {
            error["details"] = details;
        }

        return new JsonObject { ["error"] = error }.ToJsonString();
    }

    /// <summary>Gemini's answer to a wrong key: a 400 whose details say <c>API_KEY_INVALID</c>.</summary>
    public static string ApiKeyInvalid() => Error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", new JsonArray(
        new JsonObject
        {
            ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo",
            ["reason"] = "API_KEY_INVALID",
            ["domain"] = "googleapis.com",
            ["metadata"] = new JsonObject { ["service"] = "generativelanguage.googleapis.com" },
        }));

    /// <summary>Gemini's quota answer, with <c>RetryInfo.retryDelay</c>.</summary>
    public static string ResourceExhausted(string retryDelay) => Error(429, "You exceeded your current quota, please check your plan and billing details.", "RESOURCE_EXHAUSTED", new JsonArray(
        new JsonObject { ["@type"] = "type.googleapis.com/google.rpc.QuotaFailure", ["violations"] = new JsonArray() },
        new JsonObject { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", ["retryDelay"] = retryDelay }));

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
