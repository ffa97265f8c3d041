namespace Shepherd.Testing;

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

/// <summary>
/// A fake Anthropic Messages server: <c>POST /v1/messages</c>, streamed and not, answering with Anthropic's real
/// wire format (PROTOCOLS.md §2) and refusing what the real API refuses (no <c>max_tokens</c>, a system role in
/// <c>messages</c>, roles that do not alternate, empty text, unmatched tool results, temperature above 1, …),
/// with faults from <see cref="Faults"/>.
/// </summary>
public sealed partial class FakeAnthropic : IAsyncDisposable
{
    private FakeUpstream _server = null!;

    public FaultPlan Faults { get; } = new();

    /// <summary>The key the fake accepts in <c>x-api-key</c>.</summary>
    public string ApiKey { get; set; } = "sk-ant-upstream-secret-1";

    /// <summary>The <c>anthropic-version</c> the fake requires.</summary>
    public string Version { get; set; } = "2023-06-01";

    /// <summary>The text of a normal answer; streamed word by word.</summary>
    public string Reply { get; set; } = "Hello from the fake Anthropic.";

    /// <summary>When set, the answer starts with a thinking block holding this text.</summary>
    public string? Thinking { get; set; }

    /// <summary>Input of the tool call made when tools are offered on a fresh user turn.</summary>
    public string ToolInput { get; set; } = """{"city":"Paris"}""";

    /// <summary>Make two parallel calls of the first tool instead of one.</summary>
    public bool ParallelToolCalls { get; set; }

    public int InputTokens { get; set; } = 21;

    public int OutputTokens { get; set; } = 9;

    public int CacheReadTokens { get; set; }

    public int CacheCreationTokens { get; set; }

    /// <summary>For streams: replace the rest of the stream with <c>event: error</c> (overloaded) after this many events.</summary>
    public int? ErrorEventAfter { get; set; }

    /// <summary>The base URL without <c>/v1</c> (Anthropic's documented form).</summary>
    public string BaseUrl => _server.BaseUrl;

    public FakeUpstream Server => _server;

    public static async Task<FakeAnthropic> StartAsync()
    {
        var fake = new FakeAnthropic();
        fake._server = await FakeUpstream.StartAsync(fake.HandleAsync);
        return fake;
    }

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        context.Response.Headers["request-id"] = "req_fake0001";
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

        if (request.Method != "POST" || request.Path != "/v1/messages")
        {
            await RefuseAsync(context, 404, "not_found_error", "Not Found");
            return;
        }

        if (!request.Headers.TryGetValue("x-api-key", out var key) || key != ApiKey)
        {
            await RefuseAsync(context, 401, "authentication_error", "invalid x-api-key");
            return;
        }

        if (!request.Headers.TryGetValue("anthropic-version", out var version) || version != Version)
        {
            await RefuseAsync(context, 400, "invalid_request_error", "anthropic-version: header is required and must be a supported version");
            return;
        }

        JsonObject body;
        try
        {
            body = JsonNode.Parse(request.Body)!.AsObject();
        }
        catch (JsonException)
        {
            await RefuseAsync(context, 400, "invalid_request_error", "There was an issue with the format of your request: invalid JSON");
            return;
        }

        if (Validate(body) is { } problem)
        {
            await RefuseAsync(context, 400, "invalid_request_error", problem);
            return;
        }

        var model = body["model"]!.GetValue<string>();
        var stream = body["stream"]?.GetValue<bool>() == true;
        var toolName = PickTool(body);
        if (stream)
        {
            await StreamAsync(context, fault, model, toolName);
        }
        else
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(Message(model, toolName).ToJsonString(), context.RequestAborted);
        }
    }

    private static Task RefuseAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(Error(status, message, type), context.RequestAborted);
    }

    /// <summary>The request rules of the real API that a translator can break (PROTOCOLS.md §2.2, §5).</summary>
    private static string? Validate(JsonObject body)
    {
        if (body["model"] is not JsonValue)
        {
            return "model: Field required";
        }

        if (body["max_tokens"] is not JsonValue maxTokens || maxTokens.GetValueKind() != JsonValueKind.Number)
        {
            return "max_tokens: Field required";
        }

        if (body["temperature"] is JsonValue t && (t.GetValue<double>() < 0 || t.GetValue<double>() > 1))
        {
            return "temperature: range: 0..1";
        }

        if (body["temperature"] is not null && body["top_p"] is not null)
        {
            return "`temperature` and `top_p` cannot both be specified for this model. Please use only one.";
        }

        if (body["stop_sequences"] is JsonArray stops && stops.Any(s => string.IsNullOrWhiteSpace(s?.GetValue<string>())))
        {
            return "stop_sequences: each stop sequence must contain non-whitespace";
        }

        if (body["system"] is JsonValue system && system.GetValue<string>().Length == 0)
        {
            return "system: text content blocks must be non-empty";
        }

        var toolNames = new HashSet<string>(StringComparer.Ordinal);
        if (body["tools"] is JsonArray tools)
        {
            foreach (var tool in tools)
            {
                var name = tool?["name"]?.GetValue<string>() ?? "";
                if (!ToolName().IsMatch(name))
                {
                    return "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'";
                }

                if (tool?["input_schema"]?["type"]?.GetValue<string>() != "object")
                {
                    return "tools.0.input_schema.type: Input should be 'object'";
                }

                toolNames.Add(name);
            }
        }

        if (body["tool_choice"] is JsonObject choice)
        {
            var type = choice["type"]?.GetValue<string>();
            if (type is not ("auto" or "any" or "tool" or "none"))
            {
                return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'";
            }

            if (type == "tool" && !toolNames.Contains(choice["name"]?.GetValue<string>() ?? ""))
            {
                return "tool_choice: the named tool is not among the tools";
            }
        }

        if (body["messages"] is not JsonArray { Count: > 0 } messages)
        {
            return "messages: at least one message is required";
        }

        string? previousRole = null;
        var openToolUses = new HashSet<string>(StringComparer.Ordinal);
        var sawToolBlocks = false;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i]!.AsObject();
            var role = message["role"]?.GetValue<string>();
            if (role is not ("user" or "assistant"))
            {
                return $"messages.{i}.role: Input should be 'user' or 'assistant'";
            }

            if (i == 0 && role != "user")
            {
                return "messages: first message must use the \"user\" role";
            }

            if (role == previousRole)
            {
                return "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"" + role + "\" roles in a row";
            }

            previousRole = role;
            var blocks = message["content"] switch
            {
                JsonValue text => [new JsonObject { ["type"] = "text", ["text"] = text.GetValue<string>() }],
                JsonArray array => array.Select(b => b!.AsObject()).ToList(),
                _ => null,
            };
            if (blocks is null || blocks.Count == 0)
            {
                return $"messages.{i}.content: at least one content block is required";
            }

            var seenOther = false;
            var results = new HashSet<string>(StringComparer.Ordinal);
            foreach (var block in blocks)
            {
                var type = block["type"]?.GetValue<string>();
                switch (type)
                {
                    case "text":
                        if (string.IsNullOrWhiteSpace(block["text"]?.GetValue<string>()))
                        {
                            return "messages: text content blocks must contain non-whitespace text";
                        }

                        seenOther = true;
                        break;
                    case "image" or "document":
                        var source = block["source"]?.AsObject();
                        var sourceType = source?["type"]?.GetValue<string>();
                        if (sourceType == "base64" ? source!["media_type"] is null || source["data"] is null
                            : sourceType != "url" || source!["url"] is null)
                        {
                            return $"messages.{i}.content: invalid {type} source";
                        }

                        seenOther = true;
                        break;
                    case "tool_use" when role == "assistant":
                        sawToolBlocks = true;
                        var id = block["id"]?.GetValue<string>() ?? "";
                        if (!ToolId().IsMatch(id))
                        {
                            return $"messages.{i}.content.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'";
                        }

                        if (block["input"] is not JsonObject)
                        {
                            return $"messages.{i}.content.tool_use.input: Input should be a valid dictionary";
                        }

                        openToolUses.Add(id);
                        break;
                    case "tool_result" when role == "user":
                        sawToolBlocks = true;
                        if (seenOther)
                        {
                            return "messages: tool_result blocks must come first in the user message";
                        }

                        var useId = block["tool_use_id"]?.GetValue<string>() ?? "";
                        if (!openToolUses.Remove(useId))
                        {
                            return $"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {useId}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.";
                        }

                        results.Add(useId);
                        break;
                    default:
                        return $"messages.{i}.content: unexpected block type '{type}' in a {role} message";
                }
            }

            if (role == "user" && openToolUses.Count > 0)
            {
                return "messages: `tool_use` ids were found without `tool_result` blocks immediately after: " + string.Join(", ", openToolUses);
            }

            if (i == messages.Count - 1 && role == "assistant" && blocks[^1]["text"]?.GetValue<string>() is { } last && last.TrimEnd().Length != last.Length)
            {
                return "messages: final assistant content cannot end with trailing whitespace";
            }

            if (blocks.Any(b => b["text"]?.GetValue<string>()?.Contains("TOO_LONG_PROMPT", StringComparison.Ordinal) == true))
            {
                return "prompt is too long: 250000 tokens > 200000 maximum";
            }
        }

        if (sawToolBlocks && toolNames.Count == 0)
        {
            return "Requests which include `tool_use` or `tool_result` blocks must define tools.";
        }

        return null;
    }

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex ToolName();

    [GeneratedRegex("^[a-zA-Z0-9_-]+$")]
    private static partial Regex ToolId();

    /// <summary>The tool the fake calls: a forced one, or the first offered on a user turn that holds no tool results.</summary>
    private static string? PickTool(JsonObject body)
    {
        if (body["tools"] is not JsonArray { Count: > 0 } tools)
        {
            return null;
        }

        var choice = body["tool_choice"]?["type"]?.GetValue<string>();
        if (choice == "none")
        {
            return null;
        }

        if (choice == "tool")
        {
            return body["tool_choice"]!["name"]!.GetValue<string>();
        }

        var last = body["messages"]!.AsArray()[^1]!;
        var hasResults = last["content"] is JsonArray blocks && blocks.Any(b => b?["type"]?.GetValue<string>() == "tool_result");
        return last["role"]!.GetValue<string>() == "user" && !hasResults ? tools[0]!["name"]!.GetValue<string>() : null;
    }

    private int CallCount(string? toolName) => toolName is null ? 0 : ParallelToolCalls ? 2 : 1;

    private JsonObject Message(string model, string? toolName)
    {
        var content = new JsonArray();
        if (Thinking is not null)
        {
            content.Add(new JsonObject { ["type"] = "thinking", ["thinking"] = Thinking, ["signature"] = "sig-fake" });
        }

        if (toolName is null)
        {
            content.Add(new JsonObject { ["type"] = "text", ["text"] = Reply });
        }

        for (var i = 0; i < CallCount(toolName); i++)
        {
            content.Add(new JsonObject
            {
                ["type"] = "tool_use",
                ["id"] = $"toolu_fake{i + 1}",
                ["name"] = toolName,
                ["input"] = JsonNode.Parse(ToolInput),
            });
        }

        return new JsonObject
        {
            ["id"] = "msg_fake01",
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = content,
            ["stop_reason"] = toolName is null ? "end_turn" : "tool_use",
            ["stop_sequence"] = null,
            ["usage"] = new JsonObject
            {
                ["input_tokens"] = InputTokens,
                ["cache_creation_input_tokens"] = CacheCreationTokens,
                ["cache_read_input_tokens"] = CacheReadTokens,
                ["output_tokens"] = OutputTokens,
            },
        };
    }

    /// <summary>The stream events (name, data) of an answer, as the real API sends them.</summary>
    private List<(string Name, string Data)> StreamEvents(string model, string? toolName)
    {
        var events = new List<(string, string)>();
        void Add(string name, JsonObject data)
        {
            data["type"] = name;
            events.Add((name, data.ToJsonString()));
        }

        JsonObject Delta(int index, JsonObject delta) => new() { ["index"] = index, ["delta"] = delta };

        Add("message_start", new JsonObject
        {
            ["message"] = new JsonObject
            {
                ["id"] = "msg_fake01",
                ["type"] = "message",
                ["role"] = "assistant",
                ["model"] = model,
                ["content"] = new JsonArray(),
                ["stop_reason"] = null,
                ["stop_sequence"] = null,
                ["usage"] = new JsonObject
                {
                    ["input_tokens"] = InputTokens,
                    ["cache_creation_input_tokens"] = CacheCreationTokens,
                    ["cache_read_input_tokens"] = CacheReadTokens,
                    ["output_tokens"] = 1,
                },
            },
        });
        var index = 0;
        if (Thinking is not null)
        {
            Add("content_block_start", new JsonObject { ["index"] = index, ["content_block"] = new JsonObject { ["type"] = "thinking", ["thinking"] = "" } });
            Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "thinking_delta", ["thinking"] = Thinking }));
            Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "signature_delta", ["signature"] = "sig-fake" }));
            Add("content_block_stop", new JsonObject { ["index"] = index++ });
        }

        if (toolName is null)
        {
            Add("content_block_start", new JsonObject { ["index"] = index, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
            Add("ping", []);
            foreach (var piece in SplitWords(Reply))
            {
                Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "text_delta", ["text"] = piece }));
            }

            Add("content_block_stop", new JsonObject { ["index"] = index++ });
        }

        for (var i = 0; i < CallCount(toolName); i++)
        {
            Add("content_block_start", new JsonObject
            {
                ["index"] = index,
                ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = $"toolu_fake{i + 1}", ["name"] = toolName, ["input"] = new JsonObject() },
            });
            var half = ToolInput.Length / 2;
            Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = "" }));
            Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = ToolInput[..half] }));
            Add("content_block_delta", Delta(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = ToolInput[half..] }));
            Add("content_block_stop", new JsonObject { ["index"] = index++ });
        }

        Add("message_delta", new JsonObject
        {
            ["delta"] = new JsonObject { ["stop_reason"] = toolName is null ? "end_turn" : "tool_use", ["stop_sequence"] = null },
            ["usage"] = new JsonObject { ["output_tokens"] = OutputTokens },
        });
        Add("message_stop", []);
        return events;
    }

    private async Task StreamAsync(HttpContext context, Fault fault, string model, string? toolName)
    {
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        var events = StreamEvents(model, toolName);
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

            if (ErrorEventAfter == i)
            {
                await context.Response.WriteAsync(
                    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                    context.RequestAborted);
                return;
            }

            if (i > 0 && fault.DelayBetweenEvents > TimeSpan.Zero)
            {
                await Task.Delay(fault.DelayBetweenEvents, context.RequestAborted);
            }

            var (name, data) = events[i];
            await context.Response.WriteAsync($"event: {name}\ndata: {data}\n\n", context.RequestAborted);
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

    /// <summary>An Anthropic error body (PROTOCOLS.md §2.5).</summary>
    public static string Error(int status, string? message = null, string? type = null) =>
        new JsonObject
        {
            ["type"] = "error",
            ["error"] = new JsonObject
            {
                ["type"] = type ?? status switch
                {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                },
                ["message"] = message ?? $"fake upstream error {status}",
            },
            ["request_id"] = "req_fake0001",
        }.ToJsonString();

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
