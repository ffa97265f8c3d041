namespace Shepherd.Providers.Anthropic;

using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Providers.Shared;

/// <summary>
/// Turns Anthropic stream events into OpenAI <c>chat.completion.chunk</c>s, exactly as PROTOCOLS.md §4.6 says.
/// One decoder per stream; not thread-safe.
/// </summary>
/// <remarks>
/// Each event is read in one <see cref="Utf8JsonReader"/> pass, without a DOM. Chunk bytes come from one
/// <see cref="OpenAIChunkWriter"/> and are valid until the next call. <c>message_stop</c> yields two chunks (the
/// finish, then the usage): the second is handed out by <see cref="TryTakePending"/>.
/// </remarks>
public sealed class AnthropicStreamDecoder
{
    private const int AnswerBlock = -1;

    private readonly string _provider;
    private readonly string _apiKey;
    private readonly long _created;
    private readonly string _fallbackModel;
    private readonly string? _jsonToolName;

    /// <summary>Content block index → OpenAI tool-call index, or <see cref="AnswerBlock"/> for the json_schema answer tool.</summary>
    private readonly Dictionary<int, int> _blocks = [];

    private OpenAIChunkWriter? _writer;
    private AnthropicMapping.UsageCounts _usage;
    private string? _stopReason;
    private int _toolCount;
    private bool _pendingUsage;

    /// <param name="provider">The provider's name, for messages.</param>
    /// <param name="apiKey">The upstream key, scrubbed from any upstream message.</param>
    /// <param name="created">Unix seconds for <c>created</c>.</param>
    /// <param name="fallbackModel">The model named in chunks when <c>message_start</c> names none.</param>
    /// <param name="jsonToolName">The forced json_schema tool: its argument fragments become content.</param>
    public AnthropicStreamDecoder(string provider, string apiKey, long created, string fallbackModel, string? jsonToolName)
    {
        _provider = provider;
        _apiKey = apiKey;
        _created = created;
        _fallbackModel = fallbackModel;
        _jsonToolName = jsonToolName;
    }

    /// <summary><c>message_stop</c> arrived: the answer is complete.</summary>
    public bool Completed { get; private set; }

    /// <summary>Translates one SSE event.</summary>
    /// <param name="eventName">The <c>event:</c> line (may be empty; the data's <c>type</c> decides).</param>
    /// <param name="data">The <c>data:</c> JSON.</param>
    /// <param name="result">The chunk (or error) to relay, when there is one.</param>
    /// <returns>True when <paramref name="result"/> holds something to relay.</returns>
    public bool TryDecode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, out StreamEvent result)
    {
        result = default;
        if (Completed)
        {
            return false; // nothing counts after message_stop
        }

        Fields fields;
        try
        {
            fields = Parse(data);
        }
        catch (JsonException)
        {
            result = StreamEvent.Error(FailureClassifier.Unusable(_provider, "a malformed stream event"));
            return true;
        }

        if (fields.Type == EventType.Error || eventName.SequenceEqual("error"u8))
        {
            result = StreamEvent.Error(AnthropicErrors.ClassifyStreamError(_provider, data, _apiKey));
            return true;
        }

        switch (fields.Type)
        {
            case EventType.MessageStart:
                _usage = fields.Usage;
                _writer = new OpenAIChunkWriter(fields.Id ?? "msg_unknown", _created, fields.Model ?? _fallbackModel);
                result = StreamEvent.Chunk(_writer.Role(), hasContent: false);
                return true;

            case EventType.BlockStart:
                return StartBlock(ref fields, out result);

            case EventType.BlockDelta:
                return Delta(ref fields, out result);

            case EventType.MessageDelta:
                _stopReason = fields.StopReason ?? _stopReason;
                _usage = fields.Usage; // started from the message_start counts: cumulative, present values win
                return false;

            case EventType.MessageStop:
                Completed = true;
                _pendingUsage = true;
                result = StreamEvent.Chunk(Writer.Finish(AnthropicMapping.FinishReason(_stopReason, _toolCount > 0)), hasContent: true);
                return true;

            default:
                // ping, content_block_stop, and event types newer than this code.
                return false;
        }
    }

    /// <summary>A chunk is ready without reading anything (the usage chunk after the finish).</summary>
    public bool HasPending => _pendingUsage;

    /// <summary>The usage chunk that follows the finish chunk of <c>message_stop</c>.</summary>
    public bool TryTakePending(out StreamEvent result)
    {
        if (!_pendingUsage)
        {
            result = default;
            return false;
        }

        _pendingUsage = false;
        var usage = _usage.ToUsage();
        result = StreamEvent.Chunk(Writer.UsageChunk(usage), hasContent: false, usage, usageOnly: true);
        return true;
    }

    /// <summary>The usage so far, in OpenAI terms (for accounting when a stream breaks off).</summary>
    public Usage Usage => _usage.ToUsage();

    // A delta before message_start is a protocol slip; still relay it rather than lose text.
    private OpenAIChunkWriter Writer => _writer ??= new OpenAIChunkWriter("msg_unknown", _created, _fallbackModel);

    private bool StartBlock(ref Fields fields, out StreamEvent result)
    {
        result = default;
        switch (fields.BlockType)
        {
            case BlockType.ToolUse when _jsonToolName is not null && fields.Name == _jsonToolName:
                _blocks[fields.Index] = AnswerBlock;
                return false;

            case BlockType.ToolUse:
                var toolIndex = _toolCount++;
                _blocks[fields.Index] = toolIndex;
                result = StreamEvent.Chunk(Writer.ToolCallStart(toolIndex, AnthropicMapping.ToolId(fields.Id ?? ""), fields.Name ?? ""), hasContent: true);
                return true;

            case BlockType.Text when !string.IsNullOrEmpty(fields.Text):
                result = StreamEvent.Chunk(Writer.Content(fields.Text), hasContent: true);
                return true;

            case BlockType.Thinking when !string.IsNullOrEmpty(fields.Text):
                result = StreamEvent.Chunk(Writer.Reasoning(fields.Text), hasContent: true);
                return true;

            default:
                return false;
        }
    }

    private bool Delta(ref Fields fields, out StreamEvent result)
    {
        result = default;
        if (string.IsNullOrEmpty(fields.Text))
        {
            return false; // the first input_json_delta is often "", and empty text says nothing
        }

        switch (fields.DeltaType)
        {
            case DeltaType.Text:
                result = StreamEvent.Chunk(Writer.Content(fields.Text), hasContent: true);
                return true;

            case DeltaType.Thinking:
                result = StreamEvent.Chunk(Writer.Reasoning(fields.Text), hasContent: true);
                return true;

            case DeltaType.InputJson when _blocks.TryGetValue(fields.Index, out var toolIndex):
                result = toolIndex == AnswerBlock
                    ? StreamEvent.Chunk(Writer.Content(fields.Text), hasContent: true)
                    : StreamEvent.Chunk(Writer.ToolCallArguments(toolIndex, fields.Text), hasContent: true);
                return true;

            default:
                // signature_delta, citations_delta, and input of server tools the client never declared.
                return false;
        }
    }

    private enum EventType : byte
    {
        Other,
        MessageStart,
        BlockStart,
        BlockDelta,
        MessageDelta,
        MessageStop,
        Error,
    }

    private enum BlockType : byte
    {
        Other,
        Text,
        ToolUse,
        Thinking,
    }

    private enum DeltaType : byte
    {
        Other,
        Text,
        InputJson,
        Thinking,
    }

    /// <summary>What one event says. <see cref="Text"/> is the text, partial JSON or thinking of a delta or block start.</summary>
    private struct Fields
    {
        public EventType Type;
        public int Index;
        public BlockType BlockType;
        public DeltaType DeltaType;
        public string? Text;
        public string? Id;
        public string? Name;
        public string? Model;
        public string? StopReason;
        public AnthropicMapping.UsageCounts Usage;
    }

    private Fields Parse(ReadOnlySpan<byte> data)
    {
        var fields = new Fields { Usage = _usage };
        var reader = new Utf8JsonReader(data);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A stream event is not a JSON object.");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                fields.Type = reader.TokenType != JsonTokenType.String ? EventType.Other
                    : reader.ValueTextEquals("content_block_delta"u8) ? EventType.BlockDelta
                    : reader.ValueTextEquals("content_block_start"u8) ? EventType.BlockStart
                    : reader.ValueTextEquals("message_delta"u8) ? EventType.MessageDelta
                    : reader.ValueTextEquals("message_start"u8) ? EventType.MessageStart
                    : reader.ValueTextEquals("message_stop"u8) ? EventType.MessageStop
                    : reader.ValueTextEquals("error"u8) ? EventType.Error
                    : EventType.Other;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var index))
                {
                    fields.Index = index;
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                ReadObject(ref reader, ref fields, isDelta: true);
            }
            else if (reader.ValueTextEquals("content_block"u8))
            {
                ReadObject(ref reader, ref fields, isDelta: false);
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                ReadMessage(ref reader, ref fields);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    fields.Usage.Read(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return fields;
    }

    /// <summary>A <c>delta</c> (of a block or of the message) or a <c>content_block</c>.</summary>
    private static void ReadObject(ref Utf8JsonReader reader, ref Fields fields, bool isDelta)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                if (isDelta)
                {
                    fields.DeltaType = reader.ValueTextEquals("text_delta"u8) ? DeltaType.Text
                        : reader.ValueTextEquals("input_json_delta"u8) ? DeltaType.InputJson
                        : reader.ValueTextEquals("thinking_delta"u8) ? DeltaType.Thinking
                        : DeltaType.Other;
                }
                else
                {
                    fields.BlockType = reader.ValueTextEquals("text"u8) ? BlockType.Text
                        : reader.ValueTextEquals("tool_use"u8) ? BlockType.ToolUse
                        : reader.ValueTextEquals("thinking"u8) ? BlockType.Thinking
                        : BlockType.Other;
                }

                reader.Skip();
            }
            else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("partial_json"u8) || reader.ValueTextEquals("thinking"u8))
            {
                fields.Text = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                fields.Id = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                fields.Name = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("stop_reason"u8))
            {
                fields.StopReason = ReadString(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadMessage(ref Utf8JsonReader reader, ref Fields fields)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                fields.Id = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                fields.Model = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    fields.Usage.Read(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static string? ReadString(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString();
        }

        reader.Skip();
        return null;
    }
}
