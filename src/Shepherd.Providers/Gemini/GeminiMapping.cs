namespace Shepherd.Providers.Gemini;

using System.Buffers;
using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Pure translation between OpenAI Chat Completions and Gemini <c>generateContent</c> (PROTOCOLS.md §3, §4, §5):
/// the request one way, the answer the other. Remote images must be fetched beforehand (<see cref="RemoteImageUrls"/>).
/// </summary>
public static class GeminiMapping
{
    /// <summary>The <c>reasoning_effort</c> → <c>thinkingBudget</c> table of Google's own OpenAI compatibility layer
    /// (none 0, minimal/low 1024, medium 8192, high 24576). <c>xhigh</c> stays at 24576, the largest budget every
    /// Gemini 2.5 model accepts.</summary>
    public static int? ThinkingBudget(string? effort) => effort switch
    {
        "none" => 0,
        "minimal" or "low" => 1024,
        "medium" => 8192,
        "high" or "xhigh" => 24576,
        _ => null,
    };

    // ---------------------------------------------------------------- request

    /// <summary>The <c>http(s)://</c> image URLs of the request's user messages, each once, to download before <see cref="WriteRequest"/>.</summary>
    public static IReadOnlyList<string> RemoteImageUrls(ChatRequest request)
    {
        if (!request.HasImages)
        {
            return [];
        }

        using var document = JsonDocument.Parse(request.Body);
        var urls = new List<string>();
        foreach (var message in document.RootElement.GetProperty("messages").EnumerateArray())
        {
            if (Text(message, "role") != "user" || !message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            foreach (var part in content.EnumerateArray())
            {
                if (Text(part, "type") == "image_url" && part.TryGetProperty("image_url", out var image) && Text(image, "url") is { } url &&
                    !url.StartsWith("data:", StringComparison.Ordinal) && !urls.Contains(url))
                {
                    urls.Add(url);
                }
            }
        }

        return urls;
    }

    /// <summary>Writes the Gemini request body for <paramref name="request"/>.</summary>
    /// <param name="request">The validated OpenAI request.</param>
    /// <param name="images">The downloaded remote images by URL (see <see cref="RemoteImageUrls"/>).</param>
    /// <param name="output">Receives the JSON body.</param>
    /// <returns>Null, or a caller fault when the request cannot be expressed for Gemini (the output is then incomplete).</returns>
    public static UpstreamFailure? WriteRequest(ChatRequest request, IReadOnlyDictionary<string, InlineImage>? images, IBufferWriter<byte> output)
    {
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;
        using var w = new Utf8JsonWriter(output, JsonDefaults.Writer);
        w.WriteStartObject();

        var system = new List<string>();
        var error = WriteContents(w, root.GetProperty("messages"), images, system);
        if (error is not null)
        {
            return error;
        }

        if (system.Count > 0)
        {
            w.WriteStartObject("systemInstruction"u8);
            w.WriteStartArray("parts"u8);
            foreach (var text in system)
            {
                w.WriteStartObject();
                w.WriteString("text"u8, text);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        error = WriteTools(w, root);
        if (error is not null)
        {
            return error;
        }

        WriteGenerationConfig(w, request, root);
        w.WriteEndObject();
        w.Flush();
        return null;
    }

    /// <summary>Opens Gemini contents lazily and merges consecutive turns of one role, so <c>user</c> and <c>model</c> alternate.</summary>
    private sealed class ContentsWriter(Utf8JsonWriter w)
    {
        private string? _role;

        /// <summary>At least one content was written.</summary>
        public bool Any { get; private set; }

        public Utf8JsonWriter Part(string role)
        {
            if (_role != role)
            {
                Close();
                Any = true;
                w.WriteStartObject();
                w.WriteString("role"u8, role);
                w.WriteStartArray("parts"u8);
                _role = role;
            }

            w.WriteStartObject();
            return w;
        }

        public void Close()
        {
            if (_role is not null)
            {
                w.WriteEndArray();
                w.WriteEndObject();
                _role = null;
            }
        }
    }

    private static UpstreamFailure? WriteContents(Utf8JsonWriter w, JsonElement messages, IReadOnlyDictionary<string, InlineImage>? images, List<string> system)
    {
        // tool_call_id → function name, from the assistant tool calls seen so far (tool messages do not carry the name).
        var callNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var contents = new ContentsWriter(w);
        w.WriteStartArray("contents"u8);
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var role = Text(message, "role");
            message.TryGetProperty("content", out var content);
            UpstreamFailure? error = null;
            switch (role)
            {
                case "system" or "developer":
                    // Gemini has no system turn: every system text goes to systemInstruction, wherever it stood.
                    foreach (var text in Texts(content))
                    {
                        system.Add(text);
                    }

                    break;
                case "user":
                    error = WriteUserParts(contents, content, index, images);
                    break;
                case "assistant":
                    error = WriteAssistantParts(contents, message, content, index, callNames);
                    break;
                case "tool":
                    var id = Text(message, "tool_call_id") ?? string.Empty;
                    if (!callNames.TryGetValue(id, out var name))
                    {
                        return Caller(
                            $"Invalid parameter: messages[{index}] with role 'tool' must answer a tool call of an earlier assistant message, but no tool call has the id '{Shorten(id)}'.",
                            $"messages[{index}].tool_call_id");
                    }

                    WriteFunctionResponse(contents, name, content);
                    break;
                case "function":
                    WriteFunctionResponse(contents, Text(message, "name") ?? string.Empty, content);
                    break;
            }

            if (error is not null)
            {
                return error;
            }

            index++;
        }

        // Gemini needs at least one content; OpenAI accepts a request of system messages only. Send them as the user turn.
        if (!contents.Any && system.Count > 0)
        {
            foreach (var text in system)
            {
                WriteText(contents, "user", text);
            }

            system.Clear();
        }

        contents.Close();
        w.WriteEndArray();
        return null;
    }

    private static UpstreamFailure? WriteUserParts(ContentsWriter contents, JsonElement content, int index, IReadOnlyDictionary<string, InlineImage>? images)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            WriteText(contents, "user", content.GetString()!);
            return null;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var partIndex = 0;
        foreach (var part in content.EnumerateArray())
        {
            var at = $"messages[{index}].content[{partIndex++}]";
            switch (Text(part, "type"))
            {
                case "text":
                    WriteText(contents, "user", Text(part, "text") ?? string.Empty);
                    break;
                case "image_url":
                    var url = part.TryGetProperty("image_url", out var image) ? Text(image, "url") ?? string.Empty : string.Empty;
                    if (url.StartsWith("data:", StringComparison.Ordinal))
                    {
                        if (!TryParseDataUri(url, out var mime, out var data))
                        {
                            return Caller($"Invalid image data URI at '{at}.image_url.url': expected 'data:<mime type>;base64,<data>'.", $"{at}.image_url.url", "invalid_image_url");
                        }

                        WriteInlineData(contents, mime, data);
                    }
                    else if (images is not null && images.TryGetValue(url, out var fetched))
                    {
                        WriteInlineData(contents, fetched.MimeType, fetched.Base64Data.AsSpan());
                    }
                    else
                    {
                        return Caller($"The image at '{at}.image_url.url' could not be downloaded.", $"{at}.image_url.url", "invalid_image_url");
                    }

                    break;
                case "input_audio":
                    var audio = part.GetProperty("input_audio");
                    var format = Text(audio, "format") ?? "wav";
                    WriteInlineData(contents, format switch { "mp3" => "audio/mp3", _ => "audio/" + format }, (Text(audio, "data") ?? string.Empty).AsSpan());
                    break;
                case "file":
                    var file = part.GetProperty("file");
                    var fileData = Text(file, "file_data");
                    if (fileData is null)
                    {
                        return Caller($"'{at}.file' must carry 'file_data' for this model: uploaded file ids cannot be sent to Gemini.", $"{at}.file", "unsupported_value");
                    }

                    if (fileData.StartsWith("data:", StringComparison.Ordinal))
                    {
                        if (!TryParseDataUri(fileData, out var fileMime, out var fileBytes))
                        {
                            return Caller($"Invalid data URI at '{at}.file.file_data'.", $"{at}.file.file_data");
                        }

                        WriteInlineData(contents, fileMime, fileBytes);
                    }
                    else
                    {
                        var filename = Text(file, "filename") ?? string.Empty;
                        var guessed = filename.EndsWith(".pdf", StringComparison.OrdinalIgnoreCase) ? "application/pdf"
                            : filename.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) ? "text/plain"
                            : null;
                        if (guessed is null)
                        {
                            return Caller($"'{at}.file.file_data' must be a data: URI naming its MIME type.", $"{at}.file.file_data");
                        }

                        WriteInlineData(contents, guessed, fileData.AsSpan());
                    }

                    break;
            }
        }

        return null;
    }

    private static UpstreamFailure? WriteAssistantParts(ContentsWriter contents, JsonElement message, JsonElement content, int index, Dictionary<string, string> callNames)
    {
        // Text first, then calls: Gemini answers in that order. Refusals and unsigned reasoning_content are dropped.
        foreach (var text in Texts(content))
        {
            WriteText(contents, "model", text);
        }

        var first = true;
        if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
        {
            var callIndex = 0;
            foreach (var call in calls.EnumerateArray())
            {
                if (!call.TryGetProperty("function", out var function) || (Text(call, "type") ?? "function") != "function")
                {
                    return Caller($"'messages[{index}].tool_calls[{callIndex}]' is a custom tool call, which this model does not support.", $"messages[{index}].tool_calls[{callIndex}]", "unsupported_value");
                }

                var id = Text(call, "id") ?? string.Empty;
                var name = Text(function, "name") ?? string.Empty;
                callNames[id] = name;
                WriteFunctionCall(contents, name, function, GeminiToolCallId.Signature(id), first);
                first = false;
                callIndex++;
            }
        }

        if (message.TryGetProperty("function_call", out var legacy) && legacy.ValueKind == JsonValueKind.Object)
        {
            WriteFunctionCall(contents, Text(legacy, "name") ?? string.Empty, legacy, null, first);
        }

        return null;
    }

    /// <summary>A <c>functionCall</c> part with its thought signature.</summary>
    /// <remarks>Gemini 3 validates the signature of the <em>first</em> call of each step (parallel calls carry it on the
    /// first only). When that one's was lost (a client-made id, another model's history), the documented sentinel
    /// skips the check; later calls get a signature only when they had one.</remarks>
    private static void WriteFunctionCall(ContentsWriter contents, string name, JsonElement function, string? signature, bool firstOfStep)
    {
        var w = contents.Part("model");
        w.WriteStartObject("functionCall"u8);
        w.WriteString("name"u8, name);
        w.WritePropertyName("args"u8);
        WriteArguments(w, Text(function, "arguments"));
        w.WriteEndObject();
        if (signature is not null || firstOfStep)
        {
            w.WriteString("thoughtSignature"u8, signature ?? GeminiToolCallId.SkipSignature);
        }

        w.WriteEndObject();
    }

    /// <summary>Writes OpenAI's JSON-encoded argument string as Gemini's args object; empty or invalid arguments become <c>{}</c>.</summary>
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
            }
        }

        w.WriteStartObject();
        w.WriteEndObject();
    }

    private static void WriteFunctionResponse(ContentsWriter contents, string name, JsonElement content)
    {
        var w = contents.Part("user");
        w.WriteStartObject("functionResponse"u8);
        w.WriteString("name"u8, name);
        w.WriteStartObject("response"u8);
        w.WriteString("output"u8, content.ValueKind == JsonValueKind.String ? content.GetString() : string.Concat(Texts(content)));
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteText(ContentsWriter contents, string role, string text)
    {
        // Gemini refuses empty text parts.
        if (text.Length == 0)
        {
            return;
        }

        var w = contents.Part(role);
        w.WriteString("text"u8, text);
        w.WriteEndObject();
    }

    private static void WriteInlineData(ContentsWriter contents, string mime, ReadOnlySpan<char> base64)
    {
        var w = contents.Part("user");
        w.WriteStartObject("inlineData"u8);
        w.WriteString("mimeType"u8, mime);
        w.WriteString("data"u8, base64);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Splits <c>data:&lt;mime&gt;[;params];base64,&lt;data&gt;</c>; without a MIME type the image kind is sniffed.</summary>
    internal static bool TryParseDataUri(string uri, out string mime, out ReadOnlySpan<char> data)
    {
        mime = string.Empty;
        data = default;
        var comma = uri.IndexOf(',', StringComparison.Ordinal);
        if (comma < 0)
        {
            return false;
        }

        var header = uri.AsSpan(5, comma - 5);
        if (!header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        data = uri.AsSpan(comma + 1).Trim();
        var semicolon = header.IndexOf(';');
        var type = header[..semicolon].Trim();
        if (type.IsEmpty)
        {
            Span<byte> head = stackalloc byte[12];
            var sample = data[..Math.Min(data.Length, 16)];
            if (!Convert.TryFromBase64Chars(sample, head, out var written) || ImageFetcher.SniffImageType(head[..written]) is not { } sniffed)
            {
                return false;
            }

            mime = sniffed;
        }
        else
        {
            mime = type.ToString().ToLowerInvariant();
        }

        return !data.IsEmpty;
    }

    private static UpstreamFailure? WriteTools(Utf8JsonWriter w, JsonElement root)
    {
        var hasTools = root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0;
        var hasFunctions = !hasTools && root.TryGetProperty("functions", out tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0;
        if (!hasTools && !hasFunctions)
        {
            return null;
        }

        // All functions go in one tools entry; their JSON Schemas go as parametersJsonSchema, untouched (§5.10).
        w.WriteStartArray("tools"u8);
        w.WriteStartObject();
        w.WriteStartArray("functionDeclarations"u8);
        var index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var function = tool;
            if (hasTools && (Text(tool, "type") != "function" || !tool.TryGetProperty("function", out function)))
            {
                return Caller($"'tools[{index}]' is a custom tool, which this model does not support; use function tools.", $"tools[{index}].type", "unsupported_value");
            }

            w.WriteStartObject();
            w.WriteString("name"u8, Text(function, "name"));
            if (Text(function, "description") is { Length: > 0 } description)
            {
                w.WriteString("description"u8, description);
            }

            if (function.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object)
            {
                w.WritePropertyName("parametersJsonSchema"u8);
                parameters.WriteTo(w);
            }

            w.WriteEndObject();
            index++;
        }

        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndArray();

        var choice = hasTools
            ? root.TryGetProperty("tool_choice", out var c) ? c : default
            : root.TryGetProperty("function_call", out var fc) ? fc : default;
        var (mode, names) = ToolMode(choice);
        if (mode is null)
        {
            return null;
        }

        w.WriteStartObject("toolConfig"u8);
        w.WriteStartObject("functionCallingConfig"u8);
        w.WriteString("mode"u8, mode);
        if (names is { Count: > 0 })
        {
            w.WriteStartArray("allowedFunctionNames"u8);
            foreach (var name in names)
            {
                w.WriteStringValue(name);
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
        w.WriteEndObject();
        return null;
    }

    /// <summary><c>tool_choice</c> (or legacy <c>function_call</c>) → <c>functionCallingConfig</c> (§4.3).</summary>
    private static (string? Mode, List<string>? Names) ToolMode(JsonElement choice)
    {
        switch (choice.ValueKind)
        {
            case JsonValueKind.String:
                return choice.GetString() switch
                {
                    "none" => ("NONE", null),
                    "auto" => ("AUTO", null),
                    "required" => ("ANY", null),
                    _ => (null, null),
                };
            case JsonValueKind.Object:
                if (Text(choice, "type") == "allowed_tools" && choice.TryGetProperty("allowed_tools", out var allowed))
                {
                    var names = new List<string>();
                    if (allowed.TryGetProperty("tools", out var list) && list.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var tool in list.EnumerateArray())
                        {
                            if (tool.TryGetProperty("function", out var f) && Text(f, "name") is { } n)
                            {
                                names.Add(n);
                            }
                        }
                    }

                    // allowedFunctionNames only applies with ANY; "auto" cannot be restricted, so it stays AUTO.
                    return Text(allowed, "mode") == "required" ? ("ANY", names) : ("AUTO", null);
                }

                var name = choice.TryGetProperty("function", out var function) ? Text(function, "name") : Text(choice, "name");
                return name is null ? (null, null) : ("ANY", [name]);
            default:
                return (null, null);
        }
    }

    private static void WriteGenerationConfig(Utf8JsonWriter w, ChatRequest request, JsonElement root)
    {
        var open = false;
        void Open()
        {
            if (!open)
            {
                w.WriteStartObject("generationConfig"u8);
                open = true;
            }
        }

        if (request.Temperature is { } temperature)
        {
            Open();
            w.WriteNumber("temperature"u8, temperature);
        }

        if (request.TopP is { } topP)
        {
            Open();
            w.WriteNumber("topP"u8, topP);
        }

        if (root.TryGetProperty("top_k", out var topK) && topK.ValueKind == JsonValueKind.Number && topK.TryGetInt32(out var k))
        {
            Open();
            w.WriteNumber("topK"u8, k);
        }

        if (request.N > 1)
        {
            Open();
            w.WriteNumber("candidateCount"u8, request.N);
        }

        if (request.RequestedMaxOutputTokens is { } maxTokens)
        {
            Open();
            w.WriteNumber("maxOutputTokens"u8, maxTokens);
        }

        if (request.Stop.Count > 0)
        {
            Open();
            w.WriteStartArray("stopSequences"u8);
            foreach (var stop in request.Stop)
            {
                w.WriteStringValue(stop);
            }

            w.WriteEndArray();
        }

        if (request.Seed is { } seed)
        {
            // Gemini's seed is an int32; fold a larger one instead of failing the request.
            Open();
            w.WriteNumber("seed"u8, seed is >= int.MinValue and <= int.MaxValue ? (int)seed : unchecked((int)(seed ^ (seed >> 32))));
        }

        if (request.PresencePenalty is { } presence)
        {
            Open();
            w.WriteNumber("presencePenalty"u8, presence);
        }

        if (request.FrequencyPenalty is { } frequency)
        {
            Open();
            w.WriteNumber("frequencyPenalty"u8, frequency);
        }

        if (root.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object)
        {
            switch (Text(format, "type"))
            {
                case "json_object":
                    Open();
                    w.WriteString("responseMimeType"u8, "application/json"u8);
                    break;
                case "json_schema":
                    Open();
                    w.WriteString("responseMimeType"u8, "application/json"u8);
                    if (format.TryGetProperty("json_schema", out var jsonSchema) && jsonSchema.TryGetProperty("schema", out var schema) &&
                        schema.ValueKind == JsonValueKind.Object)
                    {
                        w.WritePropertyName("responseJsonSchema"u8);
                        schema.WriteTo(w);
                    }

                    break;
            }
        }

        if (ThinkingBudget(Text(root, "reasoning_effort")) is { } budget)
        {
            // A client that sets an effort cares about reasoning: ask for thought summaries (→ reasoning_content).
            Open();
            w.WriteStartObject("thinkingConfig"u8);
            w.WriteNumber("thinkingBudget"u8, budget);
            if (budget > 0)
            {
                w.WriteBoolean("includeThoughts"u8, true);
            }

            w.WriteEndObject();
        }

        if (open)
        {
            w.WriteEndObject();
        }
    }

    // ---------------------------------------------------------------- response

    /// <summary>Gemini <c>finishReason</c> → OpenAI <c>finish_reason</c> (§4.4), before the tool-call rule.</summary>
    public static string FinishReason(string? reason) => reason switch
    {
        "MAX_TOKENS" => "length",
        "SAFETY" or "RECITATION" or "BLOCKLIST" or "PROHIBITED_CONTENT" or "SPII" or "LANGUAGE" or "OTHER" => "content_filter",
        _ when reason is not null && reason.StartsWith("IMAGE_", StringComparison.Ordinal) => "content_filter",
        _ => "stop",
    };

    /// <summary>Gemini <c>usageMetadata</c> → usage in OpenAI terms (§4.5).</summary>
    public static Usage ReadUsage(JsonElement metadata)
    {
        var prompt = Int(metadata, "promptTokenCount") + Int(metadata, "toolUsePromptTokenCount");
        var thoughts = Int(metadata, "thoughtsTokenCount");
        var completion = Int(metadata, "candidatesTokenCount") + thoughts;

        // totalTokenCount is the sum of them all; when it is larger, a category we do not know of was left out.
        var total = Int(metadata, "totalTokenCount");
        if (total > prompt + completion)
        {
            completion = total - prompt;
        }

        return new Usage(prompt, completion, Int(metadata, "cachedContentTokenCount"), thoughts);
    }

    /// <summary>Translates a <c>generateContent</c> answer to an OpenAI <c>chat.completion</c>.</summary>
    /// <param name="json">The Gemini answer body.</param>
    /// <param name="provider">The provider name, for messages.</param>
    /// <param name="model">The model to report when the answer names none.</param>
    /// <param name="created">Unix seconds for <c>created</c>.</param>
    /// <param name="apiKey">Scrubbed from any error message.</param>
    public static UpstreamOutcome<ChatCompletion> ToCompletion(ReadOnlyMemory<byte> json, string provider, string model, long created, string apiKey)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            return FailureClassifier.Unusable(provider, "the answer is not valid JSON");
        }

        using (document)
        {
            var root = document.RootElement;
            if (GeminiErrors.IsErrorChunk(root))
            {
                var fields = GeminiErrors.Read(root);
                var failure = GeminiErrors.Classify(fields.Code ?? 500, fields, SecretScrubber.Scrub(fields.Message ?? "The upstream provider returned an error.", apiKey), null);
                return failure.Class == FailureClass.CallerFault ? failure with { Class = FailureClass.Transient } : failure;
            }

            if (root.ValueKind != JsonValueKind.Object)
            {
                return FailureClassifier.Unusable(provider, "not a generateContent answer");
            }

            var choices = new List<ChoiceOutput>();
            if (root.TryGetProperty("candidates", out var candidates) && candidates.ValueKind == JsonValueKind.Array)
            {
                foreach (var candidate in candidates.EnumerateArray())
                {
                    choices.Add(ToChoice(candidate));
                }
            }

            if (choices.Count == 0)
            {
                // A blocked prompt: no candidates, promptFeedback.blockReason says why (§5.9).
                if (!IsBlocked(root))
                {
                    return FailureClassifier.Unusable(provider, "an answer without candidates");
                }

                choices.Add(new ChoiceOutput { Index = 0, Content = string.Empty, FinishReason = "content_filter" });
            }

            choices.Sort(static (a, b) => a.Index.CompareTo(b.Index));
            var hasUsage = root.TryGetProperty("usageMetadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object;
            var usage = hasUsage ? ReadUsage(metadata) : default;
            var id = Text(root, "responseId") is { Length: > 0 } responseId ? "chatcmpl-" + responseId : NewCompletionId();
            var bytes = OpenAIOutput.Completion(id, created, Text(root, "modelVersion") ?? model, choices, usage);
            return UpstreamOutcome<ChatCompletion>.Success(new ChatCompletion(bytes, usage) { UsageMissing = !hasUsage });
        }
    }

    /// <summary>No candidates because the prompt was blocked.</summary>
    public static bool IsBlocked(JsonElement root) =>
        root.TryGetProperty("promptFeedback", out var feedback) && feedback.ValueKind == JsonValueKind.Object && Text(feedback, "blockReason") is not null;

    private static ChoiceOutput ToChoice(JsonElement candidate)
    {
        var choice = new ChoiceOutput { Index = CandidateIndex(candidate) };
        StringBuilder? text = null;
        StringBuilder? reasoning = null;
        if (candidate.TryGetProperty("content", out var content) && content.TryGetProperty("parts", out var parts) && parts.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in parts.EnumerateArray())
            {
                if (part.TryGetProperty("functionCall", out var call))
                {
                    choice.ToolCalls.Add(ToToolCall(part, call));
                }
                else if (Text(part, "text") is { Length: > 0 } piece)
                {
                    var target = IsThought(part) ? reasoning ??= new StringBuilder() : text ??= new StringBuilder();
                    target.Append(piece);
                }
            }
        }

        choice.Content = text?.ToString() ?? (choice.ToolCalls.Count > 0 ? null : string.Empty);
        choice.Reasoning = reasoning?.ToString();
        choice.FinishReason = choice.ToolCalls.Count > 0 ? "tool_calls" : FinishReason(Text(candidate, "finishReason"));
        return choice;
    }

    /// <summary>A Gemini <c>functionCall</c> part as an OpenAI tool call: a generated id carrying the part's signature.</summary>
    public static ToolCallOutput ToToolCall(JsonElement part, JsonElement call)
    {
        var arguments = call.TryGetProperty("args", out var args) && args.ValueKind == JsonValueKind.Object ? args.GetRawText() : "{}";
        return new ToolCallOutput(GeminiToolCallId.Create(Text(part, "thoughtSignature")), Text(call, "name") ?? string.Empty, arguments);
    }

    /// <summary>A candidate's <c>index</c>; proto3 JSON leaves out zero values, so a missing index is 0.</summary>
    public static int CandidateIndex(JsonElement candidate) =>
        candidate.TryGetProperty("index", out var i) && i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out var n) ? n : 0;

    public static bool IsThought(JsonElement part) => part.TryGetProperty("thought", out var thought) && thought.ValueKind == JsonValueKind.True;

    public static string NewCompletionId() => "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];

    // ---------------------------------------------------------------- helpers

    private static IEnumerable<string> Texts(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            if (content.GetString() is { Length: > 0 } text)
            {
                yield return text;
            }
        }
        else if (content.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in content.EnumerateArray())
            {
                if (Text(part, "type") == "text" && Text(part, "text") is { Length: > 0 } text)
                {
                    yield return text;
                }
            }
        }
    }

    internal static string? Text(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int Int(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n > 0 ? n : 0;

    private static string Shorten(string value) => value.Length > 64 ? value[..64] + "…" : value;

    private static UpstreamFailure Caller(string message, string? param = null, string code = "invalid_value") =>
        new(FailureClass.CallerFault, 400, message, "invalid_request_error", code, param);
}
