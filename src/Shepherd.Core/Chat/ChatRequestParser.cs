namespace Shepherd.Chat;

using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Shepherd.Errors;

/// <summary>
/// Validates an OpenAI Chat Completions body in one forward pass and records what the gateway needs.
/// </summary>
/// <remarks>
/// One <see cref="Utf8JsonReader"/> pass, no DOM: the body is checked for every rule of PROTOCOLS.md §1
/// that can be checked without the model (types, ranges, roles, content parts, tools), and the ranges of
/// the fields that later stages splice or translate are remembered. Unknown top-level fields are allowed
/// (they ride along to OpenAI-compatible upstreams); duplicated known fields are refused, because two JSON
/// parsers may disagree on which copy wins, and the gateway must authorise the model the upstream will use.
/// </remarks>
public static class ChatRequestParser
{
    public const int MaxMessages = 100_000;
    public const int MaxTools = 128;
    public const int MaxStopSequences = 4;
    public const int MaxModelNameLength = 256;
    private const int MaxDepth = 64;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth };

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>Parses and validates <paramref name="body"/>.</summary>
    /// <returns>The request, or a 400 error naming the offending parameter.</returns>
    public static ChatRequest? Parse(ReadOnlyMemory<byte> body, out GatewayError? error)
    {
        try
        {
            return ParseCore(body, out error);
        }
        catch (JsonException ex)
        {
            error = GatewayError.InvalidRequest(DescribeJsonError(ex), code: "invalid_json");
            return null;
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader throws this for a string with invalid escapes or UTF-8 when it is read as text.
            error = GatewayError.InvalidRequest("The request body is not valid JSON: a string is malformed.", code: "invalid_json");
            return null;
        }
    }

    /// <summary>
    /// The first <c>\uD800</c>–<c>\uDFFF</c> escape that is not half of a high+low pair, if any.
    /// </summary>
    /// <remarks>
    /// JSON's grammar lets such escapes through and the reader accepts them, but they decode to no character:
    /// any later <c>GetString()</c> on them throws (in a translator, a 500) and upstreams reject them in their
    /// own words. One vectorised search for <c>\u</c> over a body the reader has already validated; a body
    /// without escapes costs a single scan.
    /// </remarks>
    internal static int? FindLoneSurrogateEscape(ReadOnlySpan<byte> json)
    {
        var offset = 0;
        while (true)
        {
            var found = json[offset..].IndexOf("\\u"u8);
            if (found < 0)
            {
                return null;
            }

            var at = offset + found;

            // "\\u" is an escaped backslash followed by a plain 'u': the backslash run before 'u' must be odd.
            var backslashes = 1;
            while (at - backslashes >= 0 && json[at - backslashes] == (byte)'\\')
            {
                backslashes++;
            }

            if (backslashes % 2 == 0)
            {
                offset = at + 2;
                continue;
            }

            var value = Hex4(json.Slice(at + 2, 4));
            offset = at + 6;
            if (value is < 0xD800 or > 0xDFFF)
            {
                continue;
            }

            if (value >= 0xDC00)
            {
                return value;
            }

            // A high surrogate must be followed at once by a low-surrogate escape.
            if (offset + 6 > json.Length || json[offset] != (byte)'\\' || json[offset + 1] != (byte)'u' ||
                Hex4(json.Slice(offset + 2, 4)) is < 0xDC00 or > 0xDFFF)
            {
                return value;
            }

            offset += 6;
        }
    }

    private static int Hex4(ReadOnlySpan<byte> hex)
    {
        var value = 0;
        foreach (var b in hex)
        {
            value = (value << 4) | (int)HexConverter(b);
        }

        return value;
    }

    private static uint HexConverter(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => (uint)(b - '0'),
        >= (byte)'a' and <= (byte)'f' => (uint)(b - 'a' + 10),
        >= (byte)'A' and <= (byte)'F' => (uint)(b - 'A' + 10),
        _ => 0,
    };

    private static string DescribeJsonError(JsonException ex)
    {
        // The reader's messages carry line and byte positions, which help; they never contain the payload.
        var message = ex.Message;
        var cut = message.IndexOf(" LineNumber", StringComparison.Ordinal);
        var position = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : string.Empty;
        var reason = cut > 0 ? message[..cut].TrimEnd('.', ' ') : message;
        return $"We could not parse the JSON body of your request{position}: {reason}.";
    }

    private static ChatRequest? ParseCore(ReadOnlyMemory<byte> body, out GatewayError? error)
    {
        error = null;

        // A UTF-8 byte order mark is legal in a UTF-8 text (some Windows clients send one) but not in JSON:
        // drop it, so the body (and every range) starts at the object.
        if (body.Span.StartsWith(Utf8Bom))
        {
            body = body[Utf8Bom.Length..];
        }

        var span = body.Span;
        if (span.IsEmpty || span.Trim(" \t\r\n"u8).IsEmpty)
        {
            error = GatewayError.InvalidRequest("The request body is empty; expected a JSON object.", code: "invalid_json");
            return null;
        }

        if (!Utf8.IsValid(span))
        {
            error = GatewayError.InvalidRequest("The request body is not valid UTF-8.", code: "invalid_json");
            return null;
        }

        var reader = new Utf8JsonReader(span, ReaderOptions);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = GatewayError.InvalidRequest($"The request body must be a JSON object, but got {Describe(reader.TokenType)} instead.", code: "invalid_json");
            return null;
        }

        var f = new Fields();
        var seen = new SeenSet();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = Identify(ref reader);
            if (field != Field.Unknown && !seen.Add(field))
            {
                error = GatewayError.InvalidRequest($"Duplicate parameter '{reader.GetString()}'.", reader.GetString());
                return null;
            }

            reader.Read();
            var start = (int)reader.TokenStartIndex;
            error = ReadField(ref reader, field, ref f);
            if (error is not null)
            {
                return null;
            }

            var range = new JsonRange(start, (int)reader.BytesConsumed - start);
            switch (field)
            {
                case Field.Model: f.ModelRange = range; break;
                case Field.Messages: f.MessagesRange = range; break;
                case Field.Tools: f.ToolsRange = range; break;
                case Field.ToolChoice: f.ToolChoiceRange = range; break;
                case Field.ResponseFormat: f.ResponseFormatRange = range; break;
                case Field.Metadata: f.MetadataRange = range; break;
                case Field.StreamOptions: f.StreamOptionsRange = range; break;
                case Field.Stop: f.StopRange = range; break;
            }
        }

        // A second top-level value (e.g. "{}{}") makes Read throw; reaching the end is fine.
        while (reader.Read())
        {
        }

        if (FindLoneSurrogateEscape(span) is { } lone)
        {
            error = GatewayError.InvalidRequest(
                $"The request body is not valid JSON: the escape '\\u{lone:X4}' is an unpaired UTF-16 surrogate, which is not a character.",
                code: "invalid_json");
            return null;
        }

        error = CheckCrossField(ref f);
        if (error is not null)
        {
            return null;
        }

        return new ChatRequest
        {
            Body = body,
            Model = f.Model!,
            ModelRange = f.ModelRange,
            Stream = f.Stream,
            IncludeUsage = f.IncludeUsage,
            StreamOptionsRange = f.StreamOptionsRange,
            MessagesRange = f.MessagesRange,
            MessageCount = f.MessageCount,
            ToolsRange = f.ToolsRange,
            ToolCount = f.ToolNames?.Count ?? 0,
            ToolChoiceRange = f.ToolChoiceRange,
            ResponseFormatRange = f.ResponseFormatRange,
            ResponseFormatType = f.ResponseFormatType,
            MetadataRange = f.MetadataRange,
            StopRange = f.StopRange,
            Stop = f.Stop ?? [],
            MaxTokens = f.MaxTokens,
            MaxCompletionTokens = f.MaxCompletionTokens,
            Temperature = f.Temperature,
            TopP = f.TopP,
            PresencePenalty = f.PresencePenalty,
            FrequencyPenalty = f.FrequencyPenalty,
            N = f.N ?? 1,
            Seed = f.Seed,
            User = f.User,
            ParallelToolCalls = f.ParallelToolCalls,
            HasImages = f.HasImages,
            HasDeveloperRole = f.HasDeveloperRole,
            TextBytes = f.TextBytes,
        };
    }

    private static GatewayError? CheckCrossField(ref Fields f)
    {
        if (f.Model is null)
        {
            return GatewayError.InvalidRequest("You must provide a model parameter.", "model", "missing_required_parameter");
        }

        if (!f.MessagesRange.IsPresent)
        {
            return GatewayError.InvalidRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
        }

        if (f.StreamOptionsRange.IsPresent && f.StreamOptionsGiven && !f.Stream)
        {
            return GatewayError.InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value");
        }

        if (f.TopLogprobs is not null && f.Logprobs != true)
        {
            return GatewayError.InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value");
        }

        if (f.ToolChoiceName is { } name && (f.ToolNames is null || !f.ToolNames.Contains(name)))
        {
            return GatewayError.InvalidRequest(
                f.ToolNames is null
                    ? "'tool_choice' names a function, but no 'tools' were given."
                    : $"'tool_choice' names the function '{Truncate(name)}', which is not among the 'tools'.",
                "tool_choice",
                "invalid_value");
        }

        if (f.ToolChoiceRequiresTools && f.ToolNames is null)
        {
            return GatewayError.InvalidRequest("'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "invalid_value");
        }

        return null;
    }

    private enum Field : byte
    {
        Unknown,
        Model,
        Messages,
        Stream,
        StreamOptions,
        Temperature,
        TopP,
        N,
        MaxTokens,
        MaxCompletionTokens,
        Stop,
        Tools,
        ToolChoice,
        ParallelToolCalls,
        ResponseFormat,
        Seed,
        User,
        Metadata,
        PresencePenalty,
        FrequencyPenalty,
        Logprobs,
        TopLogprobs,
        LogitBias,
        Functions,
        FunctionCall,
        Store,
        ServiceTier,
        ReasoningEffort,
        Count,
    }

    private static Field Identify(ref Utf8JsonReader r)
    {
        // Property names are short ASCII; compare the raw bytes unless they are escaped.
        if (r.ValueIsEscaped)
        {
            return IdentifyName(Encoding.UTF8.GetBytes(r.GetString()!));
        }

        return IdentifyName(r.ValueSpan);
    }

    private static Field IdentifyName(ReadOnlySpan<byte> n) => n.Length switch
    {
        1 when n.SequenceEqual("n"u8) => Field.N,
        4 when n.SequenceEqual("user"u8) => Field.User,
        4 when n.SequenceEqual("seed"u8) => Field.Seed,
        4 when n.SequenceEqual("stop"u8) => Field.Stop,
        5 when n.SequenceEqual("model"u8) => Field.Model,
        5 when n.SequenceEqual("tools"u8) => Field.Tools,
        5 when n.SequenceEqual("top_p"u8) => Field.TopP,
        5 when n.SequenceEqual("store"u8) => Field.Store,
        6 when n.SequenceEqual("stream"u8) => Field.Stream,
        8 when n.SequenceEqual("messages"u8) => Field.Messages,
        8 when n.SequenceEqual("metadata"u8) => Field.Metadata,
        8 when n.SequenceEqual("logprobs"u8) => Field.Logprobs,
        9 when n.SequenceEqual("functions"u8) => Field.Functions,
        10 when n.SequenceEqual("max_tokens"u8) => Field.MaxTokens,
        10 when n.SequenceEqual("logit_bias"u8) => Field.LogitBias,
        11 when n.SequenceEqual("temperature"u8) => Field.Temperature,
        11 when n.SequenceEqual("tool_choice"u8) => Field.ToolChoice,
        12 when n.SequenceEqual("top_logprobs"u8) => Field.TopLogprobs,
        12 when n.SequenceEqual("service_tier"u8) => Field.ServiceTier,
        13 when n.SequenceEqual("function_call"u8) => Field.FunctionCall,
        14 when n.SequenceEqual("stream_options"u8) => Field.StreamOptions,
        15 when n.SequenceEqual("response_format"u8) => Field.ResponseFormat,
        16 when n.SequenceEqual("presence_penalty"u8) => Field.PresencePenalty,
        16 when n.SequenceEqual("reasoning_effort"u8) => Field.ReasoningEffort,
        17 when n.SequenceEqual("frequency_penalty"u8) => Field.FrequencyPenalty,
        19 when n.SequenceEqual("parallel_tool_calls"u8) => Field.ParallelToolCalls,
        21 when n.SequenceEqual("max_completion_tokens"u8) => Field.MaxCompletionTokens,
        _ => Field.Unknown,
    };

    private static GatewayError? ReadField(ref Utf8JsonReader r, Field field, ref Fields f)
    {
        switch (field)
        {
            case Field.Model:
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError("model", "a string", r.TokenType);
                }

                var model = r.GetString()!;
                if (model.Length == 0 || string.IsNullOrWhiteSpace(model))
                {
                    return GatewayError.InvalidRequest("'model' must not be empty.", "model", "invalid_value");
                }

                if (model.Length > MaxModelNameLength)
                {
                    return GatewayError.InvalidRequest($"'model' is longer than {MaxModelNameLength} characters.", "model", "invalid_value");
                }

                // No configured name holds control characters (the config validator refuses them), and a newline
                // here would end up in the request log line.
                if (model.AsSpan().IndexOfAnyInRange('\u0000', '\u001f') >= 0 || model.Contains('\u007f', StringComparison.Ordinal))
                {
                    return GatewayError.InvalidRequest("'model' must not contain control characters.", "model", "invalid_value");
                }

                f.Model = model;
                return null;

            case Field.Messages:
                return ReadMessages(ref r, ref f);

            case Field.Stream:
                if (r.TokenType == JsonTokenType.Null)
                {
                    return null;
                }

                if (r.TokenType is not (JsonTokenType.True or JsonTokenType.False))
                {
                    return TypeError("stream", "a boolean", r.TokenType);
                }

                f.Stream = r.TokenType == JsonTokenType.True;
                return null;

            case Field.StreamOptions:
                return ReadStreamOptions(ref r, ref f);

            case Field.Temperature:
                return ReadNumber(ref r, "temperature", 0, 2, out f.Temperature);
            case Field.TopP:
                return ReadNumber(ref r, "top_p", 0, 1, out f.TopP);
            case Field.PresencePenalty:
                return ReadNumber(ref r, "presence_penalty", -2, 2, out f.PresencePenalty);
            case Field.FrequencyPenalty:
                return ReadNumber(ref r, "frequency_penalty", -2, 2, out f.FrequencyPenalty);
            case Field.N:
                return ReadInt(ref r, "n", 1, 128, out f.N);
            case Field.MaxTokens:
                return ReadInt(ref r, "max_tokens", 1, int.MaxValue, out f.MaxTokens);
            case Field.MaxCompletionTokens:
                return ReadInt(ref r, "max_completion_tokens", 1, int.MaxValue, out f.MaxCompletionTokens);
            case Field.TopLogprobs:
                return ReadInt(ref r, "top_logprobs", 0, 20, out f.TopLogprobs);

            case Field.Seed:
                if (r.TokenType == JsonTokenType.Null)
                {
                    return null;
                }

                if (r.TokenType != JsonTokenType.Number)
                {
                    return TypeError("seed", "an integer", r.TokenType);
                }

                if (!r.TryGetInt64(out var seed))
                {
                    return IsWholeNumberOutOfRange(ref r, long.MinValue, long.MaxValue)
                        ? GatewayError.InvalidRequest("Invalid 'seed': expected an integer within the 64-bit range.", "seed", "invalid_value")
                        : NotAnIntegerLiteral(ref r, "seed");
                }

                f.Seed = seed;
                return null;

            case Field.Stop:
                return ReadStop(ref r, ref f);

            case Field.Tools:
                return ReadTools(ref r, ref f);

            case Field.ToolChoice:
                return ReadToolChoice(ref r, ref f);

            case Field.ParallelToolCalls:
                return ReadBool(ref r, "parallel_tool_calls", out f.ParallelToolCalls);
            case Field.Logprobs:
                return ReadBool(ref r, "logprobs", out f.Logprobs);
            case Field.Store:
                return ReadBool(ref r, "store", out _);

            case Field.ResponseFormat:
                return ReadResponseFormat(ref r, ref f);

            case Field.User:
                if (r.TokenType == JsonTokenType.Null)
                {
                    return null;
                }

                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError("user", "a string", r.TokenType);
                }

                f.User = r.GetString();
                return null;

            case Field.ServiceTier:
            case Field.ReasoningEffort:
                if (r.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    return TypeError(field == Field.ServiceTier ? "service_tier" : "reasoning_effort", "a string", r.TokenType);
                }

                return null;

            case Field.Metadata:
                return ReadMetadata(ref r);

            case Field.LogitBias:
                return ReadLogitBias(ref r);

            case Field.Functions:
                if (r.TokenType is not (JsonTokenType.StartArray or JsonTokenType.Null))
                {
                    return TypeError("functions", "an array", r.TokenType);
                }

                r.Skip();
                return null;

            case Field.FunctionCall:
                if (r.TokenType is not (JsonTokenType.String or JsonTokenType.StartObject or JsonTokenType.Null))
                {
                    return TypeError("function_call", "a string or an object", r.TokenType);
                }

                r.Skip();
                return null;

            default:
                r.Skip();
                return null;
        }
    }

    private static GatewayError? ReadMessages(ref Utf8JsonReader r, ref Fields f)
    {
        if (r.TokenType != JsonTokenType.StartArray)
        {
            return TypeError("messages", "an array", r.TokenType);
        }

        var index = 0;
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (index >= MaxMessages)
            {
                return GatewayError.InvalidRequest($"'messages' holds more than {MaxMessages} messages.", "messages", "array_above_max_length");
            }

            var error = ReadMessage(ref r, index, ref f);
            if (error is not null)
            {
                return error;
            }

            index++;
        }

        if (index == 0)
        {
            return GatewayError.InvalidRequest("'messages' must contain at least one message.", "messages", "empty_array");
        }

        f.MessageCount = index;
        return null;
    }

    private enum ContentKind : byte
    {
        Missing,
        Null,
        String,
        Parts,
    }

    private static GatewayError? ReadMessage(ref Utf8JsonReader r, int index, ref Fields f)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError($"messages[{index}]", "an object", r.TokenType);
        }

        var role = Role.Missing;
        string? unknownRole = null;
        var content = ContentKind.Missing;
        var partsFlags = PartFlags.None;
        var hasToolCalls = false;
        var hasToolCallId = false;
        var hasFunctionCall = false;
        var hasName = false;
        var contentError = (GatewayError?)null;

        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("role"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"messages[{index}].role", "a string", r.TokenType);
                }

                // Compared as bytes: no string per message on the success path.
                role = IdentifyRole(ref r);
                unknownRole = role == Role.Unknown ? r.GetString() : null;
            }
            else if (r.ValueTextEquals("content"u8))
            {
                r.Read();
                switch (r.TokenType)
                {
                    case JsonTokenType.Null:
                        content = ContentKind.Null;
                        break;
                    case JsonTokenType.String:
                        content = ContentKind.String;
                        f.TextBytes += r.ValueSpan.Length;
                        break;
                    case JsonTokenType.StartArray:
                        content = ContentKind.Parts;
                        contentError = ReadContentParts(ref r, index, ref f, out partsFlags);
                        if (contentError is not null)
                        {
                            return contentError;
                        }

                        break;
                    default:
                        return TypeError($"messages[{index}].content", "a string or an array of content parts", r.TokenType);
                }
            }
            else if (r.ValueTextEquals("tool_calls"u8))
            {
                r.Read();
                if (r.TokenType == JsonTokenType.Null)
                {
                    continue;
                }

                var error = ReadToolCalls(ref r, index, ref f);
                if (error is not null)
                {
                    return error;
                }

                hasToolCalls = true;
            }
            else if (r.ValueTextEquals("tool_call_id"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"messages[{index}].tool_call_id", "a string", r.TokenType);
                }

                hasToolCallId = true;
            }
            else if (r.ValueTextEquals("name"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    return TypeError($"messages[{index}].name", "a string", r.TokenType);
                }

                hasName = r.TokenType == JsonTokenType.String;
            }
            else if (r.ValueTextEquals("function_call"u8))
            {
                r.Read();
                hasFunctionCall = r.TokenType == JsonTokenType.StartObject;
                r.Skip();
            }
            else if (r.ValueTextEquals("refusal"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    return TypeError($"messages[{index}].refusal", "a string", r.TokenType);
                }
            }
            else
            {
                // Unknown message fields (reasoning_content, audio, …) ride along untouched.
                r.Read();
                r.Skip();
            }
        }

        var at = new LazyPath("messages[{1}]", 0) { Index = index };
        switch (role)
        {
            case Role.Missing:
                return GatewayError.InvalidRequest($"Missing required parameter: '{at}.role'.", $"{at}.role", "missing_required_parameter");

            case Role.System:
            case Role.Developer:
                f.HasDeveloperRole |= role == Role.Developer;
                if (content is ContentKind.Missing or ContentKind.Null)
                {
                    return MissingContent(at);
                }

                if ((partsFlags & ~PartFlags.Text) != 0)
                {
                    return GatewayError.InvalidRequest(
                        $"'{at}.content' of a {(role == Role.System ? "system" : "developer")} message may only hold text parts.",
                        $"{at}.content",
                        "invalid_value");
                }

                break;

            case Role.User:
                if (content is ContentKind.Missing or ContentKind.Null)
                {
                    return MissingContent(at);
                }

                if ((partsFlags & PartFlags.Refusal) != 0)
                {
                    return GatewayError.InvalidRequest($"'{at}.content' of a user message cannot hold refusal parts.", $"{at}.content", "invalid_value");
                }

                f.HasImages |= (partsFlags & PartFlags.Image) != 0;
                break;

            case Role.Assistant:
                if (content is ContentKind.Missing or ContentKind.Null && !hasToolCalls && !hasFunctionCall)
                {
                    return GatewayError.InvalidRequest(
                        $"'{at}.content' is required unless 'tool_calls' or 'function_call' is specified.",
                        $"{at}.content",
                        "missing_required_parameter");
                }

                if ((partsFlags & ~(PartFlags.Text | PartFlags.Refusal)) != 0)
                {
                    return GatewayError.InvalidRequest($"'{at}.content' of an assistant message may only hold text and refusal parts.", $"{at}.content", "invalid_value");
                }

                break;

            case Role.Tool:
                if (!hasToolCallId)
                {
                    return GatewayError.InvalidRequest($"Missing required parameter: '{at}.tool_call_id'.", $"{at}.tool_call_id", "missing_required_parameter");
                }

                if (content is ContentKind.Missing or ContentKind.Null)
                {
                    return MissingContent(at);
                }

                if ((partsFlags & ~PartFlags.Text) != 0)
                {
                    return GatewayError.InvalidRequest($"'{at}.content' of a tool message may only hold text parts.", $"{at}.content", "invalid_value");
                }

                break;

            case Role.Function:
                if (!hasName)
                {
                    return GatewayError.InvalidRequest($"Missing required parameter: '{at}.name'.", $"{at}.name", "missing_required_parameter");
                }

                break;

            default:
                return GatewayError.InvalidRequest(
                    $"Invalid value: '{Truncate(unknownRole ?? string.Empty)}'. Supported values for '{at}.role' are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                    $"{at}.role",
                    "invalid_value");
        }

        if ((hasToolCalls || hasFunctionCall) && role != Role.Assistant)
        {
            return GatewayError.InvalidRequest($"'{at}.tool_calls' is only allowed on assistant messages.", $"{at}.tool_calls", "invalid_value");
        }

        return null;
    }

    private enum Role : byte
    {
        Missing,
        Unknown,
        System,
        Developer,
        User,
        Assistant,
        Tool,
        Function,
    }

    private static Role IdentifyRole(ref Utf8JsonReader r) =>
        r.ValueTextEquals("user"u8) ? Role.User :
        r.ValueTextEquals("assistant"u8) ? Role.Assistant :
        r.ValueTextEquals("system"u8) ? Role.System :
        r.ValueTextEquals("tool"u8) ? Role.Tool :
        r.ValueTextEquals("developer"u8) ? Role.Developer :
        r.ValueTextEquals("function"u8) ? Role.Function :
        Role.Unknown;

    private static GatewayError MissingContent(string at) =>
        GatewayError.InvalidRequest($"Missing required parameter: '{at}.content'.", $"{at}.content", "missing_required_parameter");

    [Flags]
    private enum PartFlags : byte
    {
        None = 0,
        Text = 1,
        Image = 2,
        Audio = 4,
        File = 8,
        Refusal = 16,
    }

    private static GatewayError? ReadContentParts(ref Utf8JsonReader r, int messageIndex, ref Fields f, out PartFlags flags)
    {
        flags = PartFlags.None;
        var index = 0;
        var at = new LazyPath("messages[{0}].content[{1}]", messageIndex);
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            at.Index = index;
            if (r.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(at, "an object", r.TokenType);
            }

            var type = PartType.Missing;
            string? unknownType = null;
            var hasText = false;
            var hasRefusal = false;
            var imageUrl = false;
            var audio = false;
            var file = false;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("type"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.type", "a string", r.TokenType);
                    }

                    type = IdentifyPartType(ref r);
                    unknownType = type == PartType.Unknown ? r.GetString() : null;
                }
                else if (r.ValueTextEquals("text"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.text", "a string", r.TokenType);
                    }

                    f.TextBytes += r.ValueSpan.Length;
                    hasText = true;
                }
                else if (r.ValueTextEquals("refusal"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.refusal", "a string", r.TokenType);
                    }

                    hasRefusal = true;
                }
                else if (r.ValueTextEquals("image_url"u8))
                {
                    r.Read();
                    var error = ReadImageUrl(ref r, at);
                    if (error is not null)
                    {
                        return error;
                    }

                    imageUrl = true;
                }
                else if (r.ValueTextEquals("input_audio"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError($"{at}.input_audio", "an object", r.TokenType);
                    }

                    r.Skip();
                    audio = true;
                }
                else if (r.ValueTextEquals("file"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError($"{at}.file", "an object", r.TokenType);
                    }

                    r.Skip();
                    file = true;
                }
                else
                {
                    r.Read();
                    r.Skip();
                }
            }

            switch (type)
            {
                case PartType.Missing:
                    return GatewayError.InvalidRequest($"Missing required parameter: '{at}.type'.", $"{at}.type", "missing_required_parameter");
                case PartType.Text:
                    if (!hasText)
                    {
                        return GatewayError.InvalidRequest($"Missing required parameter: '{at}.text'.", $"{at}.text", "missing_required_parameter");
                    }

                    flags |= PartFlags.Text;
                    break;
                case PartType.ImageUrl:
                    if (!imageUrl)
                    {
                        return GatewayError.InvalidRequest($"Missing required parameter: '{at}.image_url'.", $"{at}.image_url", "missing_required_parameter");
                    }

                    flags |= PartFlags.Image;
                    break;
                case PartType.InputAudio:
                    if (!audio)
                    {
                        return GatewayError.InvalidRequest($"Missing required parameter: '{at}.input_audio'.", $"{at}.input_audio", "missing_required_parameter");
                    }

                    flags |= PartFlags.Audio;
                    break;
                case PartType.File:
                    if (!file)
                    {
                        return GatewayError.InvalidRequest($"Missing required parameter: '{at}.file'.", $"{at}.file", "missing_required_parameter");
                    }

                    flags |= PartFlags.File;
                    break;
                case PartType.Refusal:
                    if (!hasRefusal)
                    {
                        return GatewayError.InvalidRequest($"Missing required parameter: '{at}.refusal'.", $"{at}.refusal", "missing_required_parameter");
                    }

                    flags |= PartFlags.Refusal;
                    break;
                default:
                    return GatewayError.InvalidRequest(
                        $"Invalid value: '{Truncate(unknownType ?? string.Empty)}'. Supported values for '{at}.type' are: 'text', 'image_url', 'input_audio', 'file' and 'refusal'.",
                        $"{at}.type",
                        "invalid_value");
            }

            index++;
        }

        if (index == 0)
        {
            var path = $"messages[{messageIndex}].content";
            return GatewayError.InvalidRequest($"'{path}' must not be an empty array.", path, "empty_array");
        }

        return null;
    }

    private enum PartType : byte
    {
        Missing,
        Unknown,
        Text,
        ImageUrl,
        InputAudio,
        File,
        Refusal,
    }

    private static PartType IdentifyPartType(ref Utf8JsonReader r) =>
        r.ValueTextEquals("text"u8) ? PartType.Text :
        r.ValueTextEquals("image_url"u8) ? PartType.ImageUrl :
        r.ValueTextEquals("input_audio"u8) ? PartType.InputAudio :
        r.ValueTextEquals("file"u8) ? PartType.File :
        r.ValueTextEquals("refusal"u8) ? PartType.Refusal :
        PartType.Unknown;

    /// <param name="part">The path of the content part (<c>messages[i].content[j]</c>), formatted only on error.</param>
    private static GatewayError? ReadImageUrl(ref Utf8JsonReader r, LazyPath part)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError($"{part}.image_url", "an object", r.TokenType);
        }

        var hasUrl = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("url"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"{part}.image_url.url", "a string", r.TokenType);
                }

                if (!HasImageScheme(ref r))
                {
                    return GatewayError.InvalidRequest($"'{part}.image_url.url' must be an http(s) URL or a data: URI.", $"{part}.image_url.url", "invalid_value");
                }

                hasUrl = true;
            }
            else if (r.ValueTextEquals("detail"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String ||
                    !(r.ValueTextEquals("auto"u8) || r.ValueTextEquals("low"u8) || r.ValueTextEquals("high"u8)))
                {
                    return GatewayError.InvalidRequest($"'{part}.image_url.detail' must be 'auto', 'low' or 'high'.", $"{part}.image_url.detail", "invalid_value");
                }
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        return hasUrl ? null : GatewayError.InvalidRequest($"Missing required parameter: '{part}.image_url.url'.", $"{part}.image_url.url", "missing_required_parameter");
    }

    private static bool HasImageScheme(ref Utf8JsonReader r)
    {
        // Escaped text ("https:\/\/…", as PHP writes it) is unescaped first; that is rare, so a string is fine.
        var url = r.ValueIsEscaped ? Encoding.UTF8.GetBytes(r.GetString()!) : r.ValueSpan;
        return StartsWithIgnoreCase(url, "https://"u8) || StartsWithIgnoreCase(url, "http://"u8) || StartsWithIgnoreCase(url, "data:"u8);
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> prefix) =>
        text.Length >= prefix.Length && System.Text.Ascii.EqualsIgnoreCase(text[..prefix.Length], prefix);

    private static GatewayError? ReadToolCalls(ref Utf8JsonReader r, int messageIndex, ref Fields f)
    {
        if (r.TokenType != JsonTokenType.StartArray)
        {
            return TypeError($"messages[{messageIndex}].tool_calls", "an array", r.TokenType);
        }

        var index = 0;
        var at = new LazyPath("messages[{0}].tool_calls[{1}]", messageIndex);
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            at.Index = index;
            if (r.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(at, "an object", r.TokenType);
            }

            var hasId = false;
            var hasFunction = false;
            var type = CallType.Function;
            string? unknownType = null;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("id"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.id", "a string", r.TokenType);
                    }

                    hasId = true;
                }
                else if (r.ValueTextEquals("type"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.type", "a string", r.TokenType);
                    }

                    type = IdentifyCallType(ref r);
                    unknownType = type == CallType.Unknown ? r.GetString() : null;
                }
                else if (r.ValueTextEquals("function"u8))
                {
                    r.Read();
                    var error = ReadFunctionCall(ref r, at, ref f);
                    if (error is not null)
                    {
                        return error;
                    }

                    hasFunction = true;
                }
                else
                {
                    r.Read();
                    r.Skip();
                }
            }

            if (!hasId)
            {
                return GatewayError.InvalidRequest($"Missing required parameter: '{at}.id'.", $"{at}.id", "missing_required_parameter");
            }

            if (type == CallType.Function && !hasFunction)
            {
                return GatewayError.InvalidRequest($"Missing required parameter: '{at}.function'.", $"{at}.function", "missing_required_parameter");
            }

            if (type == CallType.Unknown)
            {
                return GatewayError.InvalidRequest(
                    $"Invalid value: '{Truncate(unknownType ?? string.Empty)}'. Supported values for '{at}.type' are: 'function' and 'custom'.",
                    $"{at}.type",
                    "invalid_value");
            }

            index++;
        }

        return null;
    }

    private enum CallType : byte
    {
        Unknown,
        Function,
        Custom,
    }

    private static CallType IdentifyCallType(ref Utf8JsonReader r) =>
        r.ValueTextEquals("function"u8) ? CallType.Function :
        r.ValueTextEquals("custom"u8) ? CallType.Custom :
        CallType.Unknown;

    /// <param name="call">The path of the tool call (<c>messages[i].tool_calls[j]</c>), formatted only on error.</param>
    private static GatewayError? ReadFunctionCall(ref Utf8JsonReader r, LazyPath call, ref Fields f)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError($"{call}.function", "an object", r.TokenType);
        }

        var hasName = false;
        var hasArguments = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("name"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"{call}.function.name", "a string", r.TokenType);
                }

                hasName = true;
            }
            else if (r.ValueTextEquals("arguments"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"{call}.function.arguments", "a string (JSON-encoded arguments)", r.TokenType);
                }

                f.TextBytes += r.ValueSpan.Length;
                hasArguments = true;
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        if (!hasName)
        {
            return GatewayError.InvalidRequest($"Missing required parameter: '{call}.function.name'.", $"{call}.function.name", "missing_required_parameter");
        }

        return hasArguments ? null : GatewayError.InvalidRequest($"Missing required parameter: '{call}.function.arguments'.", $"{call}.function.arguments", "missing_required_parameter");
    }

    private static GatewayError? ReadStreamOptions(ref Utf8JsonReader r, ref Fields f)
    {
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("stream_options", "an object", r.TokenType);
        }

        f.StreamOptionsGiven = true;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("include_usage"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                {
                    return TypeError("stream_options.include_usage", "a boolean", r.TokenType);
                }

                f.IncludeUsage = r.TokenType == JsonTokenType.True;
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        return null;
    }

    private static GatewayError? ReadStop(ref Utf8JsonReader r, ref Fields f)
    {
        switch (r.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                f.Stop = [r.GetString()!];
                return null;
            case JsonTokenType.StartArray:
                var list = new List<string>(2);
                while (r.Read() && r.TokenType != JsonTokenType.EndArray)
                {
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"stop[{list.Count}]", "a string", r.TokenType);
                    }

                    if (list.Count == MaxStopSequences)
                    {
                        return GatewayError.InvalidRequest($"'stop' holds more than {MaxStopSequences} sequences.", "stop", "array_above_max_length");
                    }

                    list.Add(r.GetString()!);
                }

                f.Stop = list;
                return null;
            default:
                return TypeError("stop", "a string, an array of strings or null", r.TokenType);
        }
    }

    private static GatewayError? ReadTools(ref Utf8JsonReader r, ref Fields f)
    {
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartArray)
        {
            return TypeError("tools", "an array", r.TokenType);
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        var at = new LazyPath("tools[{1}]", 0);
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            at.Index = index;
            if (index >= MaxTools)
            {
                return GatewayError.InvalidRequest($"'tools' holds more than {MaxTools} tools.", "tools", "array_above_max_length");
            }

            if (r.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(at, "an object", r.TokenType);
            }

            var type = CallType.Unknown;
            string? typeText = null;
            string? name = null;
            var hasFunction = false;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("type"u8))
                {
                    r.Read();
                    if (r.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"{at}.type", "a string", r.TokenType);
                    }

                    type = IdentifyCallType(ref r);
                    typeText = type == CallType.Unknown ? r.GetString() : null;
                }
                else if (r.ValueTextEquals("function"u8) || r.ValueTextEquals("custom"u8))
                {
                    var member = r.ValueTextEquals("function"u8) ? "function" : "custom";
                    r.Read();
                    var error = ReadFunctionDefinition(ref r, at, member, out name);
                    if (error is not null)
                    {
                        return error;
                    }

                    hasFunction = true;
                }
                else
                {
                    r.Read();
                    r.Skip();
                }
            }

            if (type == CallType.Unknown)
            {
                return typeText is null
                    ? GatewayError.InvalidRequest($"Missing required parameter: '{at}.type'.", $"{at}.type", "missing_required_parameter")
                    : GatewayError.InvalidRequest(
                        $"Invalid value: '{Truncate(typeText)}'. Supported values for '{at}.type' are: 'function' and 'custom'.",
                        $"{at}.type",
                        "invalid_value");
            }

            if (!hasFunction)
            {
                var member = type == CallType.Function ? "function" : "custom";
                return GatewayError.InvalidRequest($"Missing required parameter: '{at}.{member}'.", $"{at}.{member}", "missing_required_parameter");
            }

            if (!names.Add(name!))
            {
                return GatewayError.InvalidRequest($"Duplicate tool name '{name}' in 'tools'.", $"{at}.function.name", "invalid_value");
            }

            index++;
        }

        f.ToolNames = index == 0 ? null : names;
        return null;
    }

    /// <param name="tool">The path of the tool (<c>tools[i]</c>), formatted only on error.</param>
    /// <param name="member"><c>function</c> or <c>custom</c>.</param>
    private static GatewayError? ReadFunctionDefinition(ref Utf8JsonReader r, LazyPath tool, string member, out string? name)
    {
        name = null;
        var isFunction = member == "function";
        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError($"{tool}.{member}", "an object", r.TokenType);
        }

        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("name"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"{tool}.{member}.name", "a string", r.TokenType);
                }

                name = r.GetString()!;
                if (!IsValidToolName(name))
                {
                    return GatewayError.InvalidRequest(
                        $"Invalid '{tool}.{member}.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'.",
                        $"{tool}.{member}.name",
                        "invalid_value");
                }
            }
            else if (r.ValueTextEquals("description"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    return TypeError($"{tool}.{member}.description", "a string", r.TokenType);
                }
            }
            else if (isFunction && r.ValueTextEquals("parameters"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.StartObject or JsonTokenType.Null))
                {
                    return TypeError($"{tool}.{member}.parameters", "an object (a JSON Schema)", r.TokenType);
                }

                r.Skip();
            }
            else if (isFunction && r.ValueTextEquals("strict"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                {
                    return TypeError($"{tool}.{member}.strict", "a boolean", r.TokenType);
                }
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        return name is null
            ? GatewayError.InvalidRequest($"Missing required parameter: '{tool}.{member}.name'.", $"{tool}.{member}.name", "missing_required_parameter")
            : null;
    }

    internal static bool IsValidToolName(string name)
    {
        if (name.Length is 0 or > 64)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static GatewayError? ReadToolChoice(ref Utf8JsonReader r, ref Fields f)
    {
        switch (r.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                if (r.ValueTextEquals("none"u8) || r.ValueTextEquals("auto"u8))
                {
                    return null;
                }

                if (r.ValueTextEquals("required"u8))
                {
                    f.ToolChoiceRequiresTools = true;
                    return null;
                }

                return GatewayError.InvalidRequest(
                    $"Invalid value: '{Truncate(r.GetString()!)}'. Supported values for 'tool_choice' are: 'none', 'auto', 'required' or an object naming a function.",
                    "tool_choice",
                    "invalid_value");
            case JsonTokenType.StartObject:
                string? type = null;
                string? functionName = null;
                while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                {
                    if (r.ValueTextEquals("type"u8))
                    {
                        r.Read();
                        if (r.TokenType != JsonTokenType.String)
                        {
                            return TypeError("tool_choice.type", "a string", r.TokenType);
                        }

                        type = r.GetString();
                    }
                    else if (r.ValueTextEquals("function"u8))
                    {
                        r.Read();
                        if (r.TokenType != JsonTokenType.StartObject)
                        {
                            return TypeError("tool_choice.function", "an object", r.TokenType);
                        }

                        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                        {
                            if (r.ValueTextEquals("name"u8))
                            {
                                r.Read();
                                if (r.TokenType != JsonTokenType.String)
                                {
                                    return TypeError("tool_choice.function.name", "a string", r.TokenType);
                                }

                                functionName = r.GetString();
                            }
                            else
                            {
                                r.Read();
                                r.Skip();
                            }
                        }
                    }
                    else
                    {
                        r.Read();
                        r.Skip();
                    }
                }

                switch (type)
                {
                    case "function":
                        if (functionName is null)
                        {
                            return GatewayError.InvalidRequest("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name", "missing_required_parameter");
                        }

                        f.ToolChoiceName = functionName;
                        return null;
                    case "allowed_tools" or "custom":
                        f.ToolChoiceRequiresTools = true;
                        return null;
                    case null:
                        return GatewayError.InvalidRequest("Missing required parameter: 'tool_choice.type'.", "tool_choice.type", "missing_required_parameter");
                    default:
                        return GatewayError.InvalidRequest(
                            $"Invalid value: '{Truncate(type)}'. Supported values for 'tool_choice.type' are: 'function', 'allowed_tools' and 'custom'.",
                            "tool_choice.type",
                            "invalid_value");
                }

            default:
                return TypeError("tool_choice", "a string or an object", r.TokenType);
        }
    }

    private static GatewayError? ReadResponseFormat(ref Utf8JsonReader r, ref Fields f)
    {
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("response_format", "an object", r.TokenType);
        }

        string? type = null;
        var schemaError = (GatewayError?)null;
        var hasSchema = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("type"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError("response_format.type", "a string", r.TokenType);
                }

                type = r.GetString();
            }
            else if (r.ValueTextEquals("json_schema"u8))
            {
                r.Read();
                schemaError = ReadJsonSchemaFormat(ref r);
                if (schemaError is not null)
                {
                    return schemaError;
                }

                hasSchema = true;
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        switch (type)
        {
            case "text":
            case "json_object":
                break;
            case "json_schema":
                if (!hasSchema)
                {
                    return GatewayError.InvalidRequest("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema", "missing_required_parameter");
                }

                break;
            case null:
                return GatewayError.InvalidRequest("Missing required parameter: 'response_format.type'.", "response_format.type", "missing_required_parameter");
            default:
                return GatewayError.InvalidRequest(
                    $"Invalid value: '{Truncate(type)}'. Supported values for 'response_format.type' are: 'text', 'json_object' and 'json_schema'.",
                    "response_format.type",
                    "invalid_value");
        }

        f.ResponseFormatType = type;
        return null;
    }

    private static GatewayError? ReadJsonSchemaFormat(ref Utf8JsonReader r)
    {
        const string At = "response_format.json_schema";
        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError(At, "an object", r.TokenType);
        }

        var hasName = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("name"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.String)
                {
                    return TypeError($"{At}.name", "a string", r.TokenType);
                }

                if (!IsValidToolName(r.GetString()!))
                {
                    return GatewayError.InvalidRequest(
                        $"Invalid '{At}.name': expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'.",
                        $"{At}.name",
                        "invalid_value");
                }

                hasName = true;
            }
            else if (r.ValueTextEquals("schema"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.StartObject)
                {
                    return TypeError($"{At}.schema", "an object (a JSON Schema)", r.TokenType);
                }

                r.Skip();
            }
            else if (r.ValueTextEquals("strict"u8))
            {
                r.Read();
                if (r.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                {
                    return TypeError($"{At}.strict", "a boolean", r.TokenType);
                }
            }
            else
            {
                r.Read();
                r.Skip();
            }
        }

        return hasName ? null : GatewayError.InvalidRequest($"Missing required parameter: '{At}.name'.", $"{At}.name", "missing_required_parameter");
    }

    private static GatewayError? ReadMetadata(ref Utf8JsonReader r)
    {
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("metadata", "an object", r.TokenType);
        }

        var count = 0;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.GetString()!;
            if (key.Length > 64)
            {
                return GatewayError.InvalidRequest("'metadata' keys may be at most 64 characters long.", "metadata", "invalid_value");
            }

            r.Read();
            if (r.TokenType != JsonTokenType.String)
            {
                return TypeError($"metadata.{Truncate(key)}", "a string", r.TokenType);
            }

            if (r.GetString()!.Length > 512)
            {
                return GatewayError.InvalidRequest("'metadata' values may be at most 512 characters long.", $"metadata.{Truncate(key)}", "invalid_value");
            }

            if (++count > 16)
            {
                return GatewayError.InvalidRequest("'metadata' may hold at most 16 key-value pairs.", "metadata", "invalid_value");
            }
        }

        return null;
    }

    private static GatewayError? ReadLogitBias(ref Utf8JsonReader r)
    {
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("logit_bias", "an object", r.TokenType);
        }

        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            r.Read();
            if (r.TokenType != JsonTokenType.Number || !r.TryGetDouble(out var bias) || bias < -100 || bias > 100)
            {
                return GatewayError.InvalidRequest("'logit_bias' values must be numbers between -100 and 100.", "logit_bias", "invalid_value");
            }
        }

        return null;
    }

    private static GatewayError? ReadNumber(ref Utf8JsonReader r, string name, double min, double max, out double? value)
    {
        value = null;
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.Number)
        {
            return TypeError(name, "a number", r.TokenType);
        }

        if (!r.TryGetDouble(out var v) || double.IsInfinity(v) || v < min || v > max)
        {
            return GatewayError.InvalidRequest(
                $"Invalid '{name}': expected a number between {min} and {max}, but got {Encoding.UTF8.GetString(r.ValueSpan.Length > 32 ? r.ValueSpan[..32] : r.ValueSpan)} instead.",
                name,
                "invalid_value");
        }

        value = v;
        return null;
    }

    private static GatewayError? ReadInt(ref Utf8JsonReader r, string name, int min, int max, out int? value)
    {
        value = null;
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.Number)
        {
            return TypeError(name, "an integer", r.TokenType);
        }

        if (!r.TryGetInt32(out var v))
        {
            // 1.5, 1.0, 1e3, 1e30 and 99999999999 all land here: say which. A whole number written with a
            // fraction or exponent is refused too, because translators read these fields as integers.
            return IsWholeNumberOutOfRange(ref r, int.MinValue, int.MaxValue)
                ? GatewayError.InvalidRequest($"Invalid '{name}': expected an integer between {min} and {max}.", name, "invalid_value")
                : NotAnIntegerLiteral(ref r, name);
        }

        if (v < min || v > max)
        {
            return GatewayError.InvalidRequest($"Invalid '{name}': expected an integer between {min} and {max}, but got {v} instead.", name, "invalid_value");
        }

        value = v;
        return null;
    }

    /// <summary>The number token is a whole number outside [<paramref name="min"/>, <paramref name="max"/>] (e.g. 1e30).</summary>
    private static bool IsWholeNumberOutOfRange(ref Utf8JsonReader r, double min, double max) =>
        !r.TryGetDouble(out var d) || double.IsInfinity(d) || (d == Math.Floor(d) && (d < min || d > max));

    private static GatewayError NotAnIntegerLiteral(ref Utf8JsonReader r, string name) =>
        GatewayError.InvalidRequest(
            $"Invalid type for '{name}': expected an integer, but got {Encoding.UTF8.GetString(r.ValueSpan.Length > 32 ? r.ValueSpan[..32] : r.ValueSpan)} instead.",
            name,
            "invalid_type");

    private static GatewayError? ReadBool(ref Utf8JsonReader r, string name, out bool? value)
    {
        value = null;
        switch (r.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.True:
                value = true;
                return null;
            case JsonTokenType.False:
                value = false;
                return null;
            default:
                return TypeError(name, "a boolean", r.TokenType);
        }
    }

    private static GatewayError TypeError(string param, string expected, JsonTokenType got) =>
        GatewayError.InvalidRequest($"Invalid type for '{param}': expected {expected}, but got {Describe(got)} instead.", param, "invalid_type");

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => "an unexpected token",
    };

    private static string Truncate(string value) => value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 64), "…");

    /// <summary>The fields collected during the pass (a mutable struct, kept off the heap).</summary>
    private struct Fields
    {
        public string? Model;
        public JsonRange ModelRange;
        public JsonRange MessagesRange;
        public JsonRange ToolsRange;
        public JsonRange ToolChoiceRange;
        public JsonRange ResponseFormatRange;
        public JsonRange MetadataRange;
        public JsonRange StreamOptionsRange;
        public JsonRange StopRange;
        public int MessageCount;
        public bool Stream;
        public bool IncludeUsage;
        public bool StreamOptionsGiven;
        public double? Temperature;
        public double? TopP;
        public double? PresencePenalty;
        public double? FrequencyPenalty;
        public int? N;
        public int? MaxTokens;
        public int? MaxCompletionTokens;
        public int? TopLogprobs;
        public bool? Logprobs;
        public long? Seed;
        public string? User;
        public bool? ParallelToolCalls;
        public List<string>? Stop;
        public HashSet<string>? ToolNames;
        public string? ToolChoiceName;
        public bool ToolChoiceRequiresTools;
        public string? ResponseFormatType;
        public bool HasImages;
        public bool HasDeveloperRole;
        public int TextBytes;

        public Fields()
        {
            ModelRange = MessagesRange = ToolsRange = ToolChoiceRange = ResponseFormatRange = MetadataRange = StreamOptionsRange = StopRange = JsonRange.None;
        }
    }

    private struct SeenSet
    {
        private ulong _bits;

        public bool Add(Field field)
        {
            var bit = 1UL << (int)field;
            if ((_bits & bit) != 0)
            {
                return false;
            }

            _bits |= bit;
            return true;
        }
    }
}

/// <summary>A JSON path like <c>messages[3].content[1]</c> that is only formatted when an error needs it.</summary>
internal struct LazyPath(string format, int outer)
{
    public int Index;

    public override readonly string ToString() => string.Format(System.Globalization.CultureInfo.InvariantCulture, format, outer, Index);

    public static implicit operator string(LazyPath path) => path.ToString();
}
