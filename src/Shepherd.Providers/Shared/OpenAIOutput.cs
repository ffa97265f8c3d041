namespace Shepherd.Providers.Shared;

using System.Buffers;
using System.Text.Json;
using Shepherd.Chat;

/// <summary>A tool call of an assembled answer; <see cref="Arguments"/> is the JSON-encoded argument string.</summary>
public sealed record ToolCallOutput(string Id, string Name, string Arguments);

/// <summary>One choice of an answer that a translating adapter assembled from a non-OpenAI upstream.</summary>
public sealed class ChoiceOutput
{
    public int Index { get; init; }

    public string? Content { get; set; }

    /// <summary>Reasoning text (DeepSeek-style <c>reasoning_content</c>), when the upstream exposes it.</summary>
    public string? Reasoning { get; set; }

    public string? Refusal { get; set; }

    public List<ToolCallOutput> ToolCalls { get; } = [];

    public string FinishReason { get; set; } = "stop";
}

/// <summary>Writes OpenAI <c>chat.completion</c> objects and usage, for adapters that translate.</summary>
public static class OpenAIOutput
{
    public static byte[] Completion(string id, long created, string model, IReadOnlyList<ChoiceOutput> choices, Usage usage, string? systemFingerprint = null)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            w.WriteStartObject();
            w.WriteString("id"u8, id);
            w.WriteString("object"u8, "chat.completion"u8);
            w.WriteNumber("created"u8, created);
            w.WriteString("model"u8, model);
            w.WriteStartArray("choices"u8);
            foreach (var choice in choices)
            {
                w.WriteStartObject();
                w.WriteNumber("index"u8, choice.Index);
                w.WriteStartObject("message"u8);
                w.WriteString("role"u8, "assistant"u8);
                if (choice.Content is null)
                {
                    w.WriteNull("content"u8);
                }
                else
                {
                    w.WriteString("content"u8, choice.Content);
                }

                if (choice.Reasoning is not null)
                {
                    w.WriteString("reasoning_content"u8, choice.Reasoning);
                }

                if (choice.Refusal is null)
                {
                    w.WriteNull("refusal"u8);
                }
                else
                {
                    w.WriteString("refusal"u8, choice.Refusal);
                }

                if (choice.ToolCalls.Count > 0)
                {
                    w.WriteStartArray("tool_calls"u8);
                    foreach (var call in choice.ToolCalls)
                    {
                        w.WriteStartObject();
                        w.WriteString("id"u8, call.Id);
                        w.WriteString("type"u8, "function"u8);
                        w.WriteStartObject("function"u8);
                        w.WriteString("name"u8, call.Name);
                        w.WriteString("arguments"u8, call.Arguments);
                        w.WriteEndObject();
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
                w.WriteNull("logprobs"u8);
                w.WriteString("finish_reason"u8, choice.FinishReason);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            WriteUsage(w, usage);
            if (systemFingerprint is not null)
            {
                w.WriteString("system_fingerprint"u8, systemFingerprint);
            }

            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage"u8);
        w.WriteNumber("prompt_tokens"u8, usage.PromptTokens);
        w.WriteNumber("completion_tokens"u8, usage.CompletionTokens);
        w.WriteNumber("total_tokens"u8, usage.TotalTokens);
        w.WriteStartObject("prompt_tokens_details"u8);
        w.WriteNumber("cached_tokens"u8, usage.CachedTokens);
        w.WriteEndObject();
        w.WriteStartObject("completion_tokens_details"u8);
        w.WriteNumber("reasoning_tokens"u8, usage.ReasoningTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}

/// <summary>
/// Writes OpenAI <c>chat.completion.chunk</c> objects for one stream. Each call returns the chunk's bytes,
/// valid until the next call (the <see cref="StreamEvent"/> contract).
/// </summary>
public sealed class OpenAIChunkWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);
    private readonly Utf8JsonWriter _writer;
    private readonly JsonEncodedText _id;
    private readonly JsonEncodedText _model;
    private readonly long _created;

    public OpenAIChunkWriter(string id, long created, string model)
    {
        _id = JsonEncodedText.Encode(id);
        _model = JsonEncodedText.Encode(model);
        _created = created;
        _writer = new Utf8JsonWriter(_buffer, JsonDefaults.Writer);
    }

    public ReadOnlyMemory<byte> Role(int choice = 0)
    {
        var w = Begin(choice);
        w.WriteString("role"u8, "assistant"u8);
        w.WriteString("content"u8, ""u8);
        return End(null);
    }

    public ReadOnlyMemory<byte> Content(string text, int choice = 0)
    {
        var w = Begin(choice);
        w.WriteString("content"u8, text);
        return End(null);
    }

    public ReadOnlyMemory<byte> Reasoning(string text, int choice = 0)
    {
        var w = Begin(choice);
        w.WriteString("reasoning_content"u8, text);
        return End(null);
    }

    public ReadOnlyMemory<byte> Refusal(string text, int choice = 0)
    {
        var w = Begin(choice);
        w.WriteString("refusal"u8, text);
        return End(null);
    }

    /// <summary>The first fragment of a tool call: index, id, type and name (PROTOCOLS.md §1.4).</summary>
    public ReadOnlyMemory<byte> ToolCallStart(int toolIndex, string id, string name, string arguments = "", int choice = 0)
    {
        var w = Begin(choice);
        w.WriteStartArray("tool_calls"u8);
        w.WriteStartObject();
        w.WriteNumber("index"u8, toolIndex);
        w.WriteString("id"u8, id);
        w.WriteString("type"u8, "function"u8);
        w.WriteStartObject("function"u8);
        w.WriteString("name"u8, name);
        w.WriteString("arguments"u8, arguments);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndArray();
        return End(null);
    }

    /// <summary>A later fragment of a tool call: only the index and an argument piece.</summary>
    public ReadOnlyMemory<byte> ToolCallArguments(int toolIndex, string fragment, int choice = 0)
    {
        var w = Begin(choice);
        w.WriteStartArray("tool_calls"u8);
        w.WriteStartObject();
        w.WriteNumber("index"u8, toolIndex);
        w.WriteStartObject("function"u8);
        w.WriteString("arguments"u8, fragment);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndArray();
        return End(null);
    }

    public ReadOnlyMemory<byte> Finish(string finishReason, int choice = 0)
    {
        Begin(choice);
        return End(finishReason);
    }

    /// <summary>OpenAI's final usage chunk: <c>choices: []</c> and the usage.</summary>
    public ReadOnlyMemory<byte> UsageChunk(Usage usage)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        WriteEnvelope();
        _writer.WriteStartArray("choices"u8);
        _writer.WriteEndArray();
        OpenAIOutput.WriteUsage(_writer, usage);
        _writer.WriteEndObject();
        _writer.Flush();
        return _buffer.WrittenMemory;
    }

    private Utf8JsonWriter Begin(int choice)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        WriteEnvelope();
        _writer.WriteStartArray("choices"u8);
        _writer.WriteStartObject();
        _writer.WriteNumber("index"u8, choice);
        _writer.WriteStartObject("delta"u8);
        return _writer;
    }

    private ReadOnlyMemory<byte> End(string? finishReason)
    {
        _writer.WriteEndObject(); // delta
        _writer.WriteNull("logprobs"u8);
        if (finishReason is null)
        {
            _writer.WriteNull("finish_reason"u8);
        }
        else
        {
            _writer.WriteString("finish_reason"u8, finishReason);
        }

        _writer.WriteEndObject(); // choice
        _writer.WriteEndArray();
        _writer.WriteEndObject();
        _writer.Flush();
        return _buffer.WrittenMemory;
    }

    private void WriteEnvelope()
    {
        _writer.WriteStartObject();
        _writer.WriteString("id"u8, _id);
        _writer.WriteString("object"u8, "chat.completion.chunk"u8);
        _writer.WriteNumber("created"u8, _created);
        _writer.WriteString("model"u8, _model);
    }
}
