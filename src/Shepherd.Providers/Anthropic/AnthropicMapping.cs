namespace Shepherd.Providers.Anthropic;

using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// OpenAI Chat Completions ⇄ Anthropic Messages, as pure functions (PROTOCOLS.md §4 and the pitfalls of §5).
/// </summary>
/// <remarks>
/// The request is read from the client's validated bytes with a <see cref="JsonDocument"/> (which references the
/// bytes instead of copying them) and written with one <see cref="Utf8JsonWriter"/>. Text, schemas and URLs are
/// copied as raw JSON tokens, so nothing is unescaped and escaped again; only tool-call arguments (JSON inside a
/// JSON string) are parsed.
/// </remarks>
public static class AnthropicMapping
{
    /// <summary>The user turn inserted when a conversation would otherwise start with the assistant or be empty.</summary>
    internal const string PlaceholderUserText = ".";

    internal const string JsonObjectInstruction =
        "Respond with a single valid JSON object only: no prose before or after it, and no Markdown code fences.";

    internal const string JsonSchemaToolDescription =
        "Give the final answer by calling this tool. Its input is the answer, as a JSON object matching the schema.";

    internal const string HistoryToolDescription = "A tool used earlier in this conversation.";

    private static readonly byte[] EmptySchema = """{"type":"object","properties":{}}"""u8.ToArray();

    private static readonly byte[] EscapedParagraph = @"\n\n"u8.ToArray();

    // ------------------------------------------------------------------------------------------------ request

    /// <summary>Writes the Anthropic request for <paramref name="call"/>.</summary>
    /// <param name="call">The attempt: client request, upstream model, default output limit.</param>
    /// <param name="stream">Ask for an event stream.</param>
    /// <param name="output">Receives the JSON body.</param>
    /// <param name="jsonToolName">The tool forced to carry a <c>json_schema</c> answer: its input becomes the message text.</param>
    /// <returns>Null when written; otherwise a caller fault naming what Anthropic cannot take (nothing usable was written).</returns>
    public static UpstreamFailure? WriteRequest(UpstreamCall call, bool stream, IBufferWriter<byte> output, out string? jsonToolName)
    {
        jsonToolName = null;
        var request = call.Request;
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;

        var system = new List<JsonElement>();
        var turns = new List<Turn>();
        var historyToolNames = (HashSet<string>?)null;
        if (root.TryGetProperty("messages"u8, out var messages))
        {
            var failure = CollectTurns(messages, system, turns, ref historyToolNames);
            if (failure is not null)
            {
                return failure;
            }
        }

        TrimFinalAssistantText(turns);
        if (turns.Count == 0 || !turns[0].IsUser)
        {
            var placeholder = new Turn(isUser: true);
            placeholder.Blocks.Add(Block.Literal(PlaceholderUserText));
            turns.Insert(0, placeholder);
        }

        // Tools: the client's, then the schema-carrying tool of a json_schema response format.
        root.TryGetProperty("tools"u8, out var tools);
        var hasClientTools = tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0;
        var schemaFormat = default(JsonElement);
        if (request.ResponseFormatType == "json_schema" &&
            root.TryGetProperty("response_format"u8, out var format) &&
            format.TryGetProperty("json_schema"u8, out schemaFormat) &&
            schemaFormat.TryGetProperty("name"u8, out var schemaName) && schemaName.ValueKind == JsonValueKind.String)
        {
            jsonToolName = schemaName.GetString();
        }

        if (hasClientTools)
        {
            var failure = CheckTools(tools);
            if (failure is not null)
            {
                return failure;
            }
        }

        var choice = ChooseTool(root, hasClientTools, jsonToolName, historyToolNames is { Count: > 0 });
        var maxTokens = request.RequestedMaxOutputTokens ?? call.DefaultMaxOutputTokens;
        var thinking = PlanThinking(root, request, call, choice, turns, ref maxTokens);

        using var w = new Utf8JsonWriter(output, JsonDefaults.Writer);
        w.WriteStartObject();
        w.WriteString("model"u8, call.UpstreamModel);
        w.WriteNumber("max_tokens"u8, maxTokens);
        WriteSystem(w, system, request.ResponseFormatType == "json_object");
        WriteMessages(w, turns);

        if (hasClientTools || jsonToolName is not null || historyToolNames is { Count: > 0 })
        {
            w.WriteStartArray("tools"u8);
            if (hasClientTools)
            {
                foreach (var tool in tools.EnumerateArray())
                {
                    WriteTool(w, tool.GetProperty("function"u8));
                }
            }
            else if (historyToolNames is not null)
            {
                // Anthropic refuses tool_use/tool_result blocks when no tools are defined: declare the ones the
                // history used (tool_choice "none" keeps the model from calling them).
                foreach (var name in historyToolNames)
                {
                    w.WriteStartObject();
                    w.WriteString("name"u8, name);
                    w.WriteString("description"u8, HistoryToolDescription);
                    w.WritePropertyName("input_schema"u8);
                    w.WriteRawValue(EmptySchema, skipInputValidation: true);
                    w.WriteEndObject();
                }
            }

            if (jsonToolName is not null)
            {
                w.WriteStartObject();
                w.WriteString("name"u8, jsonToolName);
                w.WritePropertyName("description"u8);
                if (schemaFormat.TryGetProperty("description"u8, out var description) && HasText(description))
                {
                    WriteRaw(w, description);
                }
                else
                {
                    w.WriteStringValue(JsonSchemaToolDescription);
                }

                w.WritePropertyName("input_schema"u8);
                WriteSchema(w, schemaFormat.TryGetProperty("schema"u8, out var schema) ? schema : default);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartObject("tool_choice"u8);
            w.WriteString("type"u8, choice.Type);
            if (choice.Name is not null)
            {
                w.WriteString("name"u8, choice.Name);
            }

            if (request.ParallelToolCalls == false && choice.Type != "none")
            {
                w.WriteBoolean("disable_parallel_tool_use"u8, true);
            }

            w.WriteEndObject();
        }

        if (!thinking.Enabled && request.Temperature is { } temperature)
        {
            // Anthropic's range is 0–1 (OpenAI's 0–2), and new models refuse temperature together with top_p.
            w.WriteNumber("temperature"u8, Math.Clamp(temperature, 0, 1));
        }
        else if (!thinking.Enabled && request.TopP is { } topP)
        {
            w.WriteNumber("top_p"u8, topP);
        }

        if (!thinking.Enabled && root.TryGetProperty("top_k"u8, out var topK) && topK.ValueKind == JsonValueKind.Number &&
            topK.TryGetInt32(out var k) && k >= 0)
        {
            w.WriteNumber("top_k"u8, k);
        }

        WriteStopSequences(w, request.Stop);

        var user = request.User;
        if (string.IsNullOrEmpty(user) && root.TryGetProperty("safety_identifier"u8, out var safety) && safety.ValueKind == JsonValueKind.String)
        {
            user = safety.GetString();
        }

        if (!string.IsNullOrEmpty(user))
        {
            w.WriteStartObject("metadata"u8);
            w.WriteString("user_id"u8, user);
            w.WriteEndObject();
        }

        if (thinking.Send)
        {
            w.WritePropertyName("thinking"u8);
            if (thinking.Raw.ValueKind == JsonValueKind.Object)
            {
                WriteRaw(w, thinking.Raw);
            }
            else
            {
                w.WriteStartObject();
                w.WriteString("type"u8, "enabled"u8);
                w.WriteNumber("budget_tokens"u8, thinking.Budget);
                w.WriteEndObject();
            }
        }

        if (stream)
        {
            w.WriteBoolean("stream"u8, true);
        }

        w.WriteEndObject();
        w.Flush();
        return null;
    }

    /// <summary>Anthropic tool-use ids must match <c>^[a-zA-Z0-9_-]+$</c>. Valid ids pass unchanged (so Anthropic's own
    /// <c>toolu_…</c> ids round-trip); others get their bad characters replaced plus a hash of the original, so two
    /// different ids never collide and the same id always maps to the same value, turn after turn, without state.</summary>
    public static string ToolId(string id)
    {
        if (id.Length > 0 && IsSafeId(id))
        {
            return id;
        }

        // FNV-1a over the UTF-16 code units: stable across processes (string.GetHashCode is not).
        var hash = 14695981039346656037UL;
        foreach (var ch in id)
        {
            hash = (hash ^ ch) * 1099511628211UL;
        }

        var builder = new StringBuilder(id.Length + 17);
        foreach (var ch in id)
        {
            builder.Append(IsSafeIdChar(ch) ? ch : '_');
        }

        return builder.Append('_').Append(hash.ToString("x16", CultureInfo.InvariantCulture)).ToString();
    }

    private static bool IsSafeId(string id)
    {
        foreach (var ch in id)
        {
            if (!IsSafeIdChar(ch))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsSafeIdChar(char ch) => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-';

    private static UpstreamFailure Refuse(string message, string param) =>
        new(FailureClass.CallerFault, 400, message, "invalid_request_error", "unsupported_value", param);

    private enum BlockKind : byte
    {
        Text,
        Image,
        Document,
        ToolUse,
        ToolResult,
    }

    /// <summary>One content block to write; <see cref="Source"/> is the client's JSON it comes from.</summary>
    private readonly struct Block
    {
        private Block(BlockKind kind, JsonElement source, string? text)
        {
            Kind = kind;
            Source = source;
            Text = text;
        }

        public BlockKind Kind { get; }

        /// <summary>Text: the JSON string; Image/Document: the URL string; ToolUse: the tool call; ToolResult: the tool message.</summary>
        public JsonElement Source { get; }

        /// <summary>Replacement text (a trimmed prefill or a placeholder), written instead of <see cref="Source"/>.</summary>
        public string? Text { get; }

        public static Block Of(BlockKind kind, JsonElement source) => new(kind, source, null);

        public static Block Literal(string text) => new(BlockKind.Text, default, text);
    }

    private sealed class Turn(bool isUser)
    {
        public bool IsUser { get; } = isUser;

        public List<Block> Blocks { get; } = [];
    }

    private static UpstreamFailure? CollectTurns(JsonElement messages, List<JsonElement> system, List<Turn> turns, ref HashSet<string>? historyToolNames)
    {
        var index = -1;
        var pending = new List<Block>();
        foreach (var message in messages.EnumerateArray())
        {
            index++;
            pending.Clear();
            var role = message.TryGetProperty("role"u8, out var r) ? r.GetString() : null;
            message.TryGetProperty("content"u8, out var content);
            bool isUser;
            switch (role)
            {
                case "system" or "developer":
                    // Wherever they appear: Anthropic has one top-level system prompt (their position is lost).
                    CollectTexts(content, system);
                    continue;

                case "user":
                    isUser = true;
                    var failure = CollectUserContent(content, index, pending);
                    if (failure is not null)
                    {
                        return failure;
                    }

                    break;

                case "assistant":
                    isUser = false;
                    CollectAssistantContent(content, pending);
                    if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var call in calls.EnumerateArray())
                        {
                            if (!call.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object)
                            {
                                return Refuse($"messages[{index}].tool_calls: only function tool calls can be sent to an Anthropic model.", $"messages[{index}].tool_calls");
                            }

                            pending.Add(Block.Of(BlockKind.ToolUse, call));
                            (historyToolNames ??= new HashSet<string>(StringComparer.Ordinal)).Add(function.GetProperty("name"u8).GetString()!);
                        }
                    }

                    break;

                case "tool":
                    // Consecutive tool messages merge into one user turn below; results are written first in it.
                    isUser = true;
                    pending.Add(Block.Of(BlockKind.ToolResult, message));
                    break;

                default:
                    // Legacy "function" results carry no call id Anthropic could match: keep their text as user text.
                    isUser = true;
                    var texts = new List<JsonElement>();
                    CollectTexts(content, texts);
                    foreach (var text in texts)
                    {
                        pending.Add(Block.Of(BlockKind.Text, text));
                    }

                    break;
            }

            if (pending.Count == 0)
            {
                // Empty text blocks are refused by Anthropic; a message with nothing else in it disappears.
                continue;
            }

            if (turns.Count > 0 && turns[^1].IsUser == isUser)
            {
                turns[^1].Blocks.AddRange(pending);
            }
            else
            {
                var turn = new Turn(isUser);
                turn.Blocks.AddRange(pending);
                turns.Add(turn);
            }
        }

        return null;
    }

    /// <summary>Text strings of a system, developer or legacy message (a string or text parts), empty ones skipped.</summary>
    private static void CollectTexts(JsonElement content, List<JsonElement> into)
    {
        if (HasText(content))
        {
            into.Add(content);
        }
        else if (content.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in content.EnumerateArray())
            {
                if (part.TryGetProperty("text"u8, out var text) && HasText(text))
                {
                    into.Add(text);
                }
            }
        }
    }

    private static UpstreamFailure? CollectUserContent(JsonElement content, int index, List<Block> into)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            if (HasText(content))
            {
                into.Add(Block.Of(BlockKind.Text, content));
            }

            return null;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var part = -1;
        foreach (var item in content.EnumerateArray())
        {
            part++;
            var type = item.GetProperty("type"u8);
            if (type.ValueEquals("text"u8))
            {
                var text = item.GetProperty("text"u8);
                if (HasText(text))
                {
                    into.Add(Block.Of(BlockKind.Text, text));
                }
            }
            else if (type.ValueEquals("image_url"u8))
            {
                into.Add(Block.Of(BlockKind.Image, item.GetProperty("image_url"u8).GetProperty("url"u8)));
            }
            else if (type.ValueEquals("file"u8))
            {
                var file = item.GetProperty("file"u8);
                if (!file.TryGetProperty("file_data"u8, out var data) || data.ValueKind != JsonValueKind.String)
                {
                    return Refuse($"messages[{index}].content[{part}]: Anthropic models take files only as 'file_data' (a base64 data: URI), not by file id.", $"messages[{index}].content[{part}].file");
                }

                into.Add(Block.Of(BlockKind.Document, data));
            }
            else if (type.ValueEquals("input_audio"u8))
            {
                return Refuse($"messages[{index}].content[{part}]: Anthropic models do not accept audio input.", $"messages[{index}].content[{part}]");
            }
        }

        return null;
    }

    private static void CollectAssistantContent(JsonElement content, List<Block> into)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            if (HasText(content))
            {
                into.Add(Block.Of(BlockKind.Text, content));
            }

            return;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        foreach (var item in content.EnumerateArray())
        {
            // A refusal the model gave earlier is still what it said: replay it as text.
            if ((item.TryGetProperty("text"u8, out var text) || item.TryGetProperty("refusal"u8, out text)) && HasText(text))
            {
                into.Add(Block.Of(BlockKind.Text, text));
            }
        }
    }

    /// <summary>A final assistant turn is a prefill, and Anthropic refuses one that ends with white space.</summary>
    private static void TrimFinalAssistantText(List<Turn> turns)
    {
        if (turns.Count == 0 || turns[^1].IsUser)
        {
            return;
        }

        var blocks = turns[^1].Blocks;
        while (blocks.Count > 0 && blocks[^1].Kind == BlockKind.Text)
        {
            var last = blocks[^1];
            var text = last.Text ?? last.Source.GetString()!;
            var trimmed = text.TrimEnd();
            if (trimmed.Length == text.Length)
            {
                return;
            }

            blocks.RemoveAt(blocks.Count - 1);
            if (trimmed.Length > 0)
            {
                blocks.Add(Block.Literal(trimmed));
                return;
            }
        }

        if (blocks.Count == 0)
        {
            turns.RemoveAt(turns.Count - 1);
        }
    }

    private static UpstreamFailure? CheckTools(JsonElement tools)
    {
        var index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            if (!tool.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object)
            {
                return Refuse($"tools[{index}]: Anthropic models take only function tools (no custom tools).", $"tools[{index}].type");
            }

            index++;
        }

        return null;
    }

    private readonly record struct ToolChoice(string Type, string? Name);

    /// <summary>OpenAI <c>tool_choice</c> → Anthropic (PROTOCOLS.md §4.3), with the json_schema answer tool folded in.</summary>
    private static ToolChoice ChooseTool(JsonElement root, bool hasClientTools, string? jsonToolName, bool hasHistoryTools)
    {
        if (!hasClientTools)
        {
            return jsonToolName is not null ? new ToolChoice("tool", jsonToolName) : new ToolChoice(hasHistoryTools ? "none" : "auto", null);
        }

        var choice = new ToolChoice("auto", null);
        if (root.TryGetProperty("tool_choice"u8, out var element))
        {
            if (element.ValueKind == JsonValueKind.String)
            {
                choice = element.ValueEquals("required"u8) ? new ToolChoice("any", null)
                    : element.ValueEquals("none"u8) ? new ToolChoice("none", null)
                    : choice;
            }
            else if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type"u8, out var type))
            {
                if (type.ValueEquals("function"u8) && element.TryGetProperty("function"u8, out var function) &&
                    function.TryGetProperty("name"u8, out var name) && name.ValueKind == JsonValueKind.String)
                {
                    choice = new ToolChoice("tool", name.GetString());
                }
                else if (type.ValueEquals("allowed_tools"u8) && element.TryGetProperty("allowed_tools"u8, out var allowed) &&
                         allowed.TryGetProperty("mode"u8, out var mode) && mode.ValueEquals("required"u8))
                {
                    choice = new ToolChoice("any", null);
                }
            }
        }

        if (jsonToolName is null)
        {
            return choice;
        }

        // Tools and a JSON answer together: the model must call something, a real tool or the answer tool.
        return choice.Type switch
        {
            "tool" => choice,
            "none" => new ToolChoice("tool", jsonToolName),
            _ => new ToolChoice("any", null),
        };
    }

    /// <param name="Send">Write a <c>thinking</c> field.</param>
    /// <param name="Enabled">Thinking is on: temperature, top_p and top_k must then be left out.</param>
    /// <param name="Budget">The budget of a thinking object Shepherd builds.</param>
    /// <param name="Raw">The client's own thinking object, sent as given.</param>
    private readonly record struct Thinking(bool Send, bool Enabled, int Budget, JsonElement Raw);

    /// <summary>
    /// Extended thinking, from an Anthropic-style <c>thinking</c> object the client added, or from
    /// <c>reasoning_effort</c>. Dropped when Anthropic would refuse it: with a forced tool, or when the history
    /// continues a tool loop (the signed thinking blocks Anthropic then requires cannot travel through OpenAI clients).
    /// </summary>
    private static Thinking PlanThinking(JsonElement root, ChatRequest request, UpstreamCall call, ToolChoice choice, List<Turn> turns, ref int maxTokens)
    {
        root.TryGetProperty("thinking"u8, out var raw);
        var explicitThinking = raw.ValueKind == JsonValueKind.Object;
        if (explicitThinking && raw.TryGetProperty("type"u8, out var rawType) && rawType.ValueEquals("disabled"u8))
        {
            return new Thinking(true, false, 0, raw); // sent as given; it changes nothing else
        }

        var budget = 0;
        if (!explicitThinking)
        {
            if (!root.TryGetProperty("reasoning_effort"u8, out var effort) || effort.ValueKind != JsonValueKind.String)
            {
                return default;
            }

            budget = effort.GetString() switch
            {
                "low" => 1024,
                "medium" => 2048,
                "high" => 4096,
                "xhigh" => 8192,
                _ => 0,
            };
            if (budget == 0)
            {
                return default;
            }
        }

        if (choice.Type is "any" or "tool" || ContinuesToolLoop(turns))
        {
            return default;
        }

        if (explicitThinking)
        {
            return new Thinking(true, true, 0, raw);
        }

        // The budget counts against max_tokens. With no client limit the answer keeps its default room on top.
        if (request.RequestedMaxOutputTokens is null)
        {
            maxTokens = call.DefaultMaxOutputTokens + budget;
        }
        else
        {
            budget = Math.Min(budget, maxTokens - 1);
            if (budget < 1024)
            {
                return default;
            }
        }

        return new Thinking(true, true, budget, default);
    }

    private static bool ContinuesToolLoop(List<Turn> turns)
    {
        for (var i = turns.Count - 1; i >= 0; i--)
        {
            if (!turns[i].IsUser)
            {
                return turns[i].Blocks.Exists(b => b.Kind == BlockKind.ToolUse);
            }
        }

        return false;
    }

    private static void WriteSystem(Utf8JsonWriter w, List<JsonElement> system, bool jsonObject)
    {
        if (system.Count == 0 && !jsonObject)
        {
            return;
        }

        w.WritePropertyName("system"u8);
        if (system.Count == 1 && !jsonObject)
        {
            WriteRaw(w, system[0]);
            return;
        }

        // Join the raw (still escaped) string tokens: "a" + "b" → "a\n\nb", without unescaping anything.
        var length = 2 + JsonObjectInstruction.Length + 4;
        foreach (var text in system)
        {
            length += JsonMarshal.GetRawUtf8Value(text).Length + 4;
        }

        var joined = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var position = 0;
            joined[position++] = (byte)'"';
            foreach (var text in system)
            {
                Append(joined, ref position, JsonMarshal.GetRawUtf8Value(text)[1..^1], position > 1);
            }

            if (jsonObject)
            {
                Append(joined, ref position, Encoding.ASCII.GetBytes(JsonObjectInstruction), position > 1);
            }

            joined[position++] = (byte)'"';
            w.WriteRawValue(joined.AsSpan(0, position), skipInputValidation: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }

        static void Append(byte[] into, ref int position, ReadOnlySpan<byte> inner, bool separate)
        {
            if (separate)
            {
                EscapedParagraph.CopyTo(into.AsSpan(position));
                position += EscapedParagraph.Length;
            }

            inner.CopyTo(into.AsSpan(position));
            position += inner.Length;
        }
    }

    private static void WriteMessages(Utf8JsonWriter w, List<Turn> turns)
    {
        w.WriteStartArray("messages"u8);
        foreach (var turn in turns)
        {
            w.WriteStartObject();
            w.WriteString("role"u8, turn.IsUser ? "user"u8 : "assistant"u8);
            w.WriteStartArray("content"u8);
            if (turn.IsUser)
            {
                // Every tool_result must come first in the user turn that follows the tool_use (§2.2).
                foreach (var block in turn.Blocks)
                {
                    if (block.Kind == BlockKind.ToolResult)
                    {
                        WriteBlock(w, block);
                    }
                }

                foreach (var block in turn.Blocks)
                {
                    if (block.Kind != BlockKind.ToolResult)
                    {
                        WriteBlock(w, block);
                    }
                }
            }
            else
            {
                foreach (var block in turn.Blocks)
                {
                    WriteBlock(w, block);
                }
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteBlock(Utf8JsonWriter w, Block block)
    {
        w.WriteStartObject();
        switch (block.Kind)
        {
            case BlockKind.Text:
                w.WriteString("type"u8, "text"u8);
                if (block.Text is not null)
                {
                    w.WriteString("text"u8, block.Text);
                }
                else
                {
                    w.WritePropertyName("text"u8);
                    WriteRaw(w, block.Source);
                }

                break;

            case BlockKind.Image:
                w.WriteString("type"u8, "image"u8);
                WriteSource(w, block.Source, isImage: true);
                break;

            case BlockKind.Document:
                w.WriteString("type"u8, "document"u8);
                WriteSource(w, block.Source, isImage: false);
                break;

            case BlockKind.ToolUse:
                var function = block.Source.GetProperty("function"u8);
                w.WriteString("type"u8, "tool_use"u8);
                w.WriteString("id"u8, ToolId(block.Source.GetProperty("id"u8).GetString()!));
                w.WritePropertyName("name"u8);
                WriteRaw(w, function.GetProperty("name"u8));
                w.WritePropertyName("input"u8);
                WriteArguments(w, function.GetProperty("arguments"u8).GetString());
                break;

            case BlockKind.ToolResult:
                w.WriteString("type"u8, "tool_result"u8);
                w.WriteString("tool_use_id"u8, ToolId(block.Source.GetProperty("tool_call_id"u8).GetString()!));
                WriteToolResultContent(w, block.Source.TryGetProperty("content"u8, out var content) ? content : default);
                break;
        }

        w.WriteEndObject();
    }

    /// <summary>An image or document source: a <c>data:</c> URI becomes base64 data, anything else a URL.</summary>
    private static void WriteSource(Utf8JsonWriter w, JsonElement url, bool isImage)
    {
        var raw = JsonMarshal.GetRawUtf8Value(url);
        var value = raw[1..^1];
        byte[]? unescaped = null;
        if (value.IndexOf((byte)'\\') >= 0)
        {
            unescaped = Encoding.UTF8.GetBytes(url.GetString()!);
            value = unescaped;
        }

        w.WriteStartObject("source"u8);
        if (value.StartsWith("data:"u8))
        {
            var comma = value.IndexOf((byte)',');
            var header = comma < 0 ? value[5..] : value[5..comma];
            var semicolon = header.IndexOf((byte)';');
            var mediaType = semicolon < 0 ? header : header[..semicolon];
            var isBase64 = header.EndsWith(";base64"u8);
            var data = comma < 0 ? default : value[(comma + 1)..];
            if (!isImage && isBase64 && mediaType.SequenceEqual("text/plain"u8))
            {
                // Anthropic takes plain-text documents as text, not base64.
                w.WriteString("type"u8, "text"u8);
                w.WriteString("media_type"u8, "text/plain"u8);
                w.WriteString("data"u8, DecodeBase64(data));
                w.WriteEndObject();
                return;
            }

            w.WriteString("type"u8, "base64"u8);
            if (mediaType.IsEmpty)
            {
                w.WriteString("media_type"u8, isImage ? "image/png"u8 : "application/pdf"u8);
            }
            else if (mediaType.SequenceEqual("image/jpg"u8))
            {
                w.WriteString("media_type"u8, "image/jpeg"u8);
            }
            else
            {
                w.WriteString("media_type"u8, mediaType);
            }

            if (isBase64 || data.IsEmpty)
            {
                w.WriteString("data"u8, data);
            }
            else
            {
                // A percent-encoded data: URI (rare, e.g. SVG): Anthropic wants base64.
                var decoded = Uri.UnescapeDataString(Encoding.UTF8.GetString(data));
                w.WriteString("data"u8, Convert.ToBase64String(Encoding.UTF8.GetBytes(decoded)));
            }
        }
        else if (unescaped is null)
        {
            w.WriteString("type"u8, "url"u8);
            w.WritePropertyName("url"u8);
            w.WriteRawValue(raw, skipInputValidation: true);
        }
        else
        {
            w.WriteString("type"u8, "url"u8);
            w.WriteString("url"u8, value);
        }

        w.WriteEndObject();
    }

    /// <summary>Base64 text as a string (bad UTF-8 becomes U+FFFD; bad base64 becomes nothing).</summary>
    private static string DecodeBase64(ReadOnlySpan<byte> base64)
    {
        var bytes = ArrayPool<byte>.Shared.Rent(System.Buffers.Text.Base64.GetMaxDecodedFromUtf8Length(base64.Length) + 1);
        try
        {
            return System.Buffers.Text.Base64.DecodeFromUtf8(base64, bytes, out _, out var written) == OperationStatus.Done
                ? Encoding.UTF8.GetString(bytes, 0, written)
                : string.Empty;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>Tool-call arguments are a JSON string; Anthropic wants the object. Empty or invalid → <c>{}</c>.</summary>
    private static void WriteArguments(Utf8JsonWriter w, string? arguments)
    {
        if (!string.IsNullOrWhiteSpace(arguments))
        {
            try
            {
                using var parsed = JsonDocument.Parse(arguments);
                if (parsed.RootElement.ValueKind == JsonValueKind.Object)
                {
                    parsed.RootElement.WriteTo(w);
                    return;
                }
            }
            catch (JsonException)
            {
                // A model's broken arguments replayed by the client: send an empty input rather than fail the turn.
            }
        }

        w.WriteStartObject();
        w.WriteEndObject();
    }

    private static void WriteToolResultContent(Utf8JsonWriter w, JsonElement content)
    {
        if (HasText(content))
        {
            w.WritePropertyName("content"u8);
            WriteRaw(w, content);
            return;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return; // empty result: "content" is optional, an empty text block is not allowed
        }

        var started = false;
        foreach (var part in content.EnumerateArray())
        {
            if (part.TryGetProperty("text"u8, out var text) && HasText(text))
            {
                if (!started)
                {
                    w.WriteStartArray("content"u8);
                    started = true;
                }

                w.WriteStartObject();
                w.WriteString("type"u8, "text"u8);
                w.WritePropertyName("text"u8);
                WriteRaw(w, text);
                w.WriteEndObject();
            }
        }

        if (started)
        {
            w.WriteEndArray();
        }
    }

    private static void WriteTool(Utf8JsonWriter w, JsonElement function)
    {
        w.WriteStartObject();
        w.WritePropertyName("name"u8);
        WriteRaw(w, function.GetProperty("name"u8));
        if (function.TryGetProperty("description"u8, out var description) && HasText(description))
        {
            w.WritePropertyName("description"u8);
            WriteRaw(w, description);
        }

        w.WritePropertyName("input_schema"u8);
        WriteSchema(w, function.TryGetProperty("parameters"u8, out var parameters) ? parameters : default);
        w.WriteEndObject();
    }

    /// <summary>A JSON schema as Anthropic's <c>input_schema</c>, which must be an object schema with a <c>type</c>.</summary>
    private static void WriteSchema(Utf8JsonWriter w, JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object)
        {
            w.WriteRawValue(EmptySchema, skipInputValidation: true);
            return;
        }

        if (schema.TryGetProperty("type"u8, out _))
        {
            WriteRaw(w, schema);
            return;
        }

        // {} or {"properties": …} without a type: OpenAI accepts it, Anthropic does not.
        w.WriteStartObject();
        w.WriteString("type"u8, "object"u8);
        var hasProperties = false;
        foreach (var property in schema.EnumerateObject())
        {
            hasProperties |= property.NameEquals("properties"u8);
            property.WriteTo(w);
        }

        if (!hasProperties)
        {
            w.WriteStartObject("properties"u8);
            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    private static void WriteStopSequences(Utf8JsonWriter w, IReadOnlyList<string> stop)
    {
        // Anthropic refuses empty and white-space-only stop sequences ("\n" is a common one): leave those out.
        var started = false;
        foreach (var sequence in stop)
        {
            if (string.IsNullOrWhiteSpace(sequence))
            {
                continue;
            }

            if (!started)
            {
                w.WriteStartArray("stop_sequences"u8);
                started = true;
            }

            w.WriteStringValue(sequence);
        }

        if (started)
        {
            w.WriteEndArray();
        }
    }

    private static void WriteRaw(Utf8JsonWriter w, JsonElement element) =>
        w.WriteRawValue(JsonMarshal.GetRawUtf8Value(element), skipInputValidation: true);

    /// <summary>A string with some non-white-space text: Anthropic refuses empty and white-space-only text blocks.</summary>
    /// <remarks>Checked on the raw token (no unescaping): spaces, tabs and the escapes <c>\n</c>, <c>\r</c>, <c>\t</c> are white space.</remarks>
    private static bool HasText(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        var inner = JsonMarshal.GetRawUtf8Value(element)[1..^1];
        for (var i = 0; i < inner.Length; i++)
        {
            var b = inner[i];
            if (b is (byte)' ' or (byte)'\t')
            {
                continue;
            }

            if (b == '\\' && i + 1 < inner.Length && inner[i + 1] is (byte)'n' or (byte)'r' or (byte)'t')
            {
                i++;
                continue;
            }

            return true;
        }

        return false;
    }

    // ------------------------------------------------------------------------------------------------ response

    /// <summary>Anthropic <c>stop_reason</c> → OpenAI <c>finish_reason</c> (PROTOCOLS.md §4.4).</summary>
    /// <param name="stopReason">The upstream's stop reason (null when it never said).</param>
    /// <param name="emittedToolCalls">Tool calls reached the client (the json_schema answer tool does not count).</param>
    public static string FinishReason(string? stopReason, bool emittedToolCalls) => stopReason switch
    {
        "max_tokens" or "model_context_window_exceeded" => "length",
        "refusal" => "content_filter",
        _ when emittedToolCalls => "tool_calls",
        _ => "stop", // end_turn, stop_sequence, pause_turn, and tool_use whose only call was the answer tool
    };

    /// <summary>Usage counts as Anthropic reports them; <see cref="ToUsage"/> puts them in OpenAI's terms (§4.5).</summary>
    internal struct UsageCounts
    {
        public int Input;
        public int Output;
        public int CacheRead;
        public int CacheCreation;

        /// <summary>Prompt = input + cache reads + cache writes (Anthropic's input excludes both); cached = cache reads.</summary>
        public readonly Usage ToUsage() => new(Input + CacheRead + CacheCreation, Output, CacheRead, 0, CacheCreation);

        /// <summary>Reads a usage object (the reader is on its StartObject); only present numbers overwrite.</summary>
        public void Read(ref Utf8JsonReader reader)
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("input_tokens"u8))
                {
                    ReadInto(ref reader, ref Input);
                }
                else if (reader.ValueTextEquals("output_tokens"u8))
                {
                    ReadInto(ref reader, ref Output);
                }
                else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
                {
                    ReadInto(ref reader, ref CacheRead);
                }
                else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
                {
                    ReadInto(ref reader, ref CacheCreation);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }

        private static void ReadInto(ref Utf8JsonReader reader, ref int field)
        {
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value) && value >= 0)
            {
                field = value;
            }
        }
    }

    /// <summary>Translates an Anthropic <c>message</c> into an OpenAI <c>chat.completion</c>.</summary>
    /// <param name="json">The upstream's answer body.</param>
    /// <param name="jsonToolName">The forced json_schema tool, whose input is the answer text.</param>
    /// <param name="created">Unix seconds for <c>created</c>.</param>
    /// <param name="fallbackModel">Used when the answer names no model.</param>
    /// <param name="completion">The OpenAI JSON.</param>
    /// <param name="usage">The usage in OpenAI terms.</param>
    /// <param name="usageMissing">The answer had no usage object.</param>
    /// <returns>False when the body is not an Anthropic message.</returns>
    public static bool TryTranslateResponse(
        ReadOnlySpan<byte> json,
        string? jsonToolName,
        long created,
        string fallbackModel,
        out byte[] completion,
        out Usage usage,
        out bool usageMissing)
    {
        completion = [];
        usage = default;
        usageMissing = true;
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!JsonDocument.TryParseValue(ref reader, out var parsed))
            {
                return false;
            }

            document = parsed;
        }
        catch (JsonException)
        {
            return false;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object ||
                !root.TryGetProperty("content"u8, out var content) || content.ValueKind != JsonValueKind.Array ||
                (root.TryGetProperty("type"u8, out var type) && !type.ValueEquals("message"u8)))
            {
                return false;
            }

            var choice = new ChoiceOutput { Index = 0 };
            StringBuilder? text = null;
            StringBuilder? reasoning = null;
            foreach (var block in content.EnumerateArray())
            {
                if (!block.TryGetProperty("type"u8, out var blockType))
                {
                    continue;
                }

                if (blockType.ValueEquals("text"u8) && block.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String)
                {
                    (text ??= new StringBuilder()).Append(t.GetString());
                }
                else if (blockType.ValueEquals("thinking"u8) && block.TryGetProperty("thinking"u8, out var th) && th.ValueKind == JsonValueKind.String)
                {
                    (reasoning ??= new StringBuilder()).Append(th.GetString());
                }
                else if (blockType.ValueEquals("tool_use"u8))
                {
                    var name = block.TryGetProperty("name"u8, out var n) ? n.GetString() ?? "" : "";
                    var input = block.TryGetProperty("input"u8, out var i) && i.ValueKind == JsonValueKind.Object ? i.GetRawText() : "{}";
                    if (jsonToolName is not null && name == jsonToolName)
                    {
                        (text ??= new StringBuilder()).Append(input);
                    }
                    else
                    {
                        var callId = block.TryGetProperty("id"u8, out var idElement) ? idElement.GetString() ?? "" : "";
                        choice.ToolCalls.Add(new ToolCallOutput(ToolId(callId), name, input));
                    }
                }

                // redacted_thinking, server tools and their results have no OpenAI equivalent.
            }

            choice.Content = text?.ToString() ?? (choice.ToolCalls.Count > 0 ? null : string.Empty);
            choice.Reasoning = reasoning?.ToString();
            var stopReason = root.TryGetProperty("stop_reason"u8, out var stop) && stop.ValueKind == JsonValueKind.String ? stop.GetString() : null;
            choice.FinishReason = FinishReason(stopReason, choice.ToolCalls.Count > 0);

            var counts = default(UsageCounts);
            if (root.TryGetProperty("usage"u8, out var usageElement) && usageElement.ValueKind == JsonValueKind.Object)
            {
                var usageReader = new Utf8JsonReader(JsonMarshal.GetRawUtf8Value(usageElement));
                usageReader.Read();
                counts.Read(ref usageReader);
                usageMissing = false;
            }

            usage = counts.ToUsage();
            var id = root.TryGetProperty("id"u8, out var messageId) && messageId.ValueKind == JsonValueKind.String ? messageId.GetString()! : "msg_unknown";
            var model = root.TryGetProperty("model"u8, out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : fallbackModel;
            completion = OpenAIOutput.Completion(id, created, model, [choice], usage);
            return true;
        }
    }
}
