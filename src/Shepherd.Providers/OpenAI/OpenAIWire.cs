namespace Shepherd.Providers.OpenAI;

using System.Text.Json;
using Shepherd.Chat;

/// <summary>What a relayed OpenAI chunk or completion holds, read in one token pass without building a DOM.</summary>
public static class OpenAIWire
{
    /// <summary>What the gateway needs to know about one stream chunk.</summary>
    public readonly record struct ChunkInfo(bool HasContent, bool HasFinish, Usage? Usage, bool UsageOnly, bool IsError);

    /// <summary>What the gateway needs to know about a non-streamed completion.</summary>
    public readonly record struct CompletionInfo(bool IsValid, bool HasChoices, Usage? Usage, bool IsError);

    /// <exception cref="JsonException">The chunk is not one well-formed JSON object (it must not be relayed).</exception>
    public static ChunkInfo InspectChunk(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A stream chunk is not a JSON object.");
        }

        var hasContent = false;
        var hasFinish = false;
        var choices = -1;
        Usage? usage = null;
        var isError = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                choices = 0;
                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    choices++;
                    InspectChoice(ref reader, ref hasContent, ref hasFinish);
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = reader.TokenType == JsonTokenType.StartObject ? ReadUsage(ref reader) : SkipNull(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                isError = reader.TokenType != JsonTokenType.Null;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        // Read to the end: trailing bytes after the object (two objects, garbage) make it malformed.
        while (reader.Read())
        {
        }

        return new ChunkInfo(hasContent || hasFinish, hasFinish, usage, usage is not null && choices == 0, isError);
    }

    private static Usage? SkipNull(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return null;
    }

    private static void InspectChoice(ref Utf8JsonReader reader, ref bool hasContent, ref bool hasFinish)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isText = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("refusal"u8) ||
                                 reader.ValueTextEquals("reasoning_content"u8) || reader.ValueTextEquals("reasoning"u8);
                    var isCall = reader.ValueTextEquals("tool_calls"u8) || reader.ValueTextEquals("function_call"u8);
                    reader.Read();
                    if (isText && reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                    {
                        hasContent = true;
                    }
                    else if (isCall && reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject)
                    {
                        hasContent = true;
                    }

                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                hasFinish |= reader.TokenType == JsonTokenType.String;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    /// <summary>Validates a <c>chat.completion</c> body and reads its usage.</summary>
    public static CompletionInfo InspectCompletion(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            var hasChoices = false;
            var isError = false;
            Usage? usage = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    hasChoices = reader.TokenType == JsonTokenType.StartArray;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    usage = reader.TokenType == JsonTokenType.StartObject ? ReadUsage(ref reader) : SkipNull(ref reader);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    isError = reader.TokenType == JsonTokenType.StartObject;
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // Consume any trailing bytes: a truncated or doubled body is not a valid answer.
            while (reader.Read())
            {
            }

            return new CompletionInfo(true, hasChoices, usage, isError);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    /// <summary>Reads an OpenAI usage object; the reader is on its StartObject and ends on its EndObject.</summary>
    /// <remarks>Also understands DeepSeek's <c>prompt_cache_hit_tokens</c> when <c>cached_tokens</c> is absent.</remarks>
    public static Usage ReadUsage(ref Utf8JsonReader reader)
    {
        int prompt = 0, completion = 0, cached = 0, reasoning = 0, cacheHit = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                prompt = ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                completion = ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_cache_hit_tokens"u8))
            {
                cacheHit = ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8))
            {
                cached = ReadDetail(ref reader, "cached_tokens"u8);
            }
            else if (reader.ValueTextEquals("completion_tokens_details"u8))
            {
                reasoning = ReadDetail(ref reader, "reasoning_tokens"u8);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new Usage(prompt, completion, cached > 0 ? cached : cacheHit, reasoning);
    }

    private static int ReadDetail(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return 0;
        }

        var value = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals(name))
            {
                value = ReadInt(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return value;
    }

    private static int ReadInt(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value) && value > 0 ? value : 0;
    }

    /// <summary>
    /// Appends the generated text of a chunk (delta content, reasoning, refusal, tool-call arguments) to
    /// <paramref name="sink"/>, so a stream that ends without usage can still be counted from what was relayed.
    /// </summary>
    public static void AppendDeltaText(ReadOnlySpan<byte> chunk, Shared.PooledBuffer sink)
    {
        try
        {
            var reader = new Utf8JsonReader(chunk);
            var depth = 0;
            var take = false;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        depth++;
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName:
                        // Only inside choices[].delta (depth ≥ 4): content, reasoning, refusal, arguments.
                        take = depth >= 4 && (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("reasoning_content"u8) ||
                                              reader.ValueTextEquals("refusal"u8) || reader.ValueTextEquals("arguments"u8) ||
                                              reader.ValueTextEquals("reasoning"u8));
                        break;
                    case JsonTokenType.String when take:
                        if (reader.ValueIsEscaped)
                        {
                            var span = sink.GetSpan(reader.ValueSpan.Length);
                            sink.Advance(reader.CopyString(span));
                        }
                        else
                        {
                            sink.Write(reader.ValueSpan);
                        }

                        take = false;
                        break;
                    default:
                        take = false;
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // A malformed chunk was already turned into an error event; nothing to count.
        }
    }
}
