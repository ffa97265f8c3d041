namespace Shepherd.Providers.Gemini;

using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Turns a Gemini SSE stream (the <c>data:</c> payloads, in order) into OpenAI chunks (PROTOCOLS.md §4.6). No I/O:
/// <see cref="Feed"/> each payload, <see cref="Complete"/> when the connection closed cleanly, and take the chunks
/// with <see cref="TryNext"/> one at a time (each is valid until the next call).
/// </summary>
/// <remarks>
/// Gemini has no end sentinel, so the finish reasons are held until the stream closes: only then is it known that
/// nothing follows, and a tool call emitted late still turns <c>STOP</c> into <c>tool_calls</c>. A stream that closes
/// without any finish reason was cut short and ends with an error instead.
/// </remarks>
public sealed class GeminiStreamDecoder
{
    private readonly Queue<Pending> _pending = new();
    private readonly SortedDictionary<int, ChoiceState> _choices = [];
    private readonly string _provider;
    private readonly string _model;
    private readonly long _created;
    private readonly string _apiKey;
    private OpenAIChunkWriter? _writer;
    private Usage _usage;

    public GeminiStreamDecoder(string provider, string model, long created, string apiKey)
    {
        _provider = provider;
        _model = model;
        _created = created;
        _apiKey = apiKey;
    }

    /// <summary>The last usage Gemini reported (it repeats it on later chunks; the last one wins).</summary>
    public Usage Usage => _usage;

    public bool HasPending => _pending.Count > 0;

    /// <summary>Reads one Gemini stream event and queues its chunks.</summary>
    /// <returns>Null, or the failure the stream ends with (an in-band error object or a malformed event).</returns>
    public UpstreamFailure? Feed(ReadOnlySpan<byte> data)
    {
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(data);
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException)
        {
            return FailureClassifier.Unusable(_provider, "a malformed stream event");
        }

        using (document)
        {
            var root = document.RootElement;
            if (GeminiErrors.IsErrorChunk(root))
            {
                var fields = GeminiErrors.Read(root);
                var message = SecretScrubber.Scrub(fields.Message ?? $"The upstream provider '{_provider}' failed mid-stream.", _apiKey);
                var failure = GeminiErrors.Classify(fields.Code ?? 500, fields, message, null);

                // The request was accepted, so whatever went wrong now is not the caller's fault.
                return failure.Class is FailureClass.CallerFault or FailureClass.ContextOverflow ? failure with { Class = FailureClass.Transient } : failure;
            }

            if (root.ValueKind != JsonValueKind.Object)
            {
                return FailureClassifier.Unusable(_provider, "a stream event that is not an object");
            }

            _writer ??= new OpenAIChunkWriter(
                GeminiMapping.Text(root, "responseId") is { Length: > 0 } id ? "chatcmpl-" + id : GeminiMapping.NewCompletionId(),
                _created,
                GeminiMapping.Text(root, "modelVersion") ?? _model);

            if (root.TryGetProperty("usageMetadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object)
            {
                _usage = GeminiMapping.ReadUsage(metadata);
            }

            var sawCandidate = false;
            if (root.TryGetProperty("candidates", out var candidates) && candidates.ValueKind == JsonValueKind.Array)
            {
                foreach (var candidate in candidates.EnumerateArray())
                {
                    sawCandidate = true;
                    ReadCandidate(candidate);
                }
            }

            if (!sawCandidate && _choices.Count == 0 && GeminiMapping.IsBlocked(root))
            {
                // A blocked prompt: no candidates at all. The answer is an empty content_filter choice.
                State(0).Finish = "content_filter";
            }

            return null;
        }
    }

    private void ReadCandidate(JsonElement candidate)
    {
        var index = GeminiMapping.CandidateIndex(candidate);
        var choice = State(index);
        if (candidate.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Object &&
            content.TryGetProperty("parts", out var parts) && parts.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in parts.EnumerateArray())
            {
                if (part.TryGetProperty("functionCall", out var call) && call.ValueKind == JsonValueKind.Object)
                {
                    // Gemini sends each call complete, so it becomes one complete tool-call delta.
                    var toolCall = GeminiMapping.ToToolCall(part, call);
                    _pending.Enqueue(new Pending(PendingKind.ToolCall, index, toolCall.Arguments, choice.ToolCalls++, toolCall.Id, toolCall.Name));
                }
                else if (GeminiMapping.Text(part, "text") is { Length: > 0 } text)
                {
                    _pending.Enqueue(new Pending(GeminiMapping.IsThought(part) ? PendingKind.Reasoning : PendingKind.Content, index, text));
                }
            }
        }

        if (GeminiMapping.Text(candidate, "finishReason") is { } reason)
        {
            choice.Finish = GeminiMapping.FinishReason(reason);
        }
    }

    private ChoiceState State(int index)
    {
        if (!_choices.TryGetValue(index, out var state))
        {
            state = new ChoiceState();
            _choices.Add(index, state);
            _pending.Enqueue(new Pending(PendingKind.Role, index));
        }

        return state;
    }

    /// <summary>The connection closed cleanly: queues the held finish chunks and the final usage chunk.</summary>
    /// <returns>Null, or a failure when the stream ended before any finish reason (the answer is incomplete).</returns>
    public UpstreamFailure? Complete()
    {
        var finished = false;
        foreach (var (_, state) in _choices)
        {
            finished |= state.Finish is not null;
        }

        if (!finished)
        {
            return FailureClassifier.Unusable(_provider, _writer is null ? "the stream ended without any event" : "the stream ended before a finish reason");
        }

        _writer ??= new OpenAIChunkWriter(GeminiMapping.NewCompletionId(), _created, _model);
        foreach (var (index, state) in _choices)
        {
            var reason = state.ToolCalls > 0 ? "tool_calls" : state.Finish ?? "stop";
            _pending.Enqueue(new Pending(PendingKind.Finish, index, reason));
        }

        _pending.Enqueue(new Pending(PendingKind.Usage, 0));
        return null;
    }

    /// <summary>Writes the next queued chunk.</summary>
    public bool TryNext(out StreamEvent next)
    {
        if (!_pending.TryDequeue(out var p))
        {
            next = default;
            return false;
        }

        var w = _writer!;
        next = p.Kind switch
        {
            PendingKind.Role => StreamEvent.Chunk(w.Role(p.Choice), hasContent: false),
            PendingKind.Content => StreamEvent.Chunk(w.Content(p.Text!, p.Choice), hasContent: true),
            PendingKind.Reasoning => StreamEvent.Chunk(w.Reasoning(p.Text!, p.Choice), hasContent: true),
            PendingKind.ToolCall => StreamEvent.Chunk(w.ToolCallStart(p.ToolIndex, p.Id!, p.Name!, p.Text!, p.Choice), hasContent: true),
            PendingKind.Finish => StreamEvent.Chunk(w.Finish(p.Text!, p.Choice), hasContent: true),
            _ => StreamEvent.Chunk(w.UsageChunk(_usage), hasContent: false, _usage, usageOnly: true),
        };
        return true;
    }

    private enum PendingKind : byte
    {
        Role,
        Content,
        Reasoning,
        ToolCall,
        Finish,
        Usage,
    }

    /// <summary>One chunk to write; <see cref="Text"/> is the text, the arguments or the finish reason.</summary>
    private readonly record struct Pending(PendingKind Kind, int Choice, string? Text = null, int ToolIndex = 0, string? Id = null, string? Name = null);

    private sealed class ChoiceState
    {
        public int ToolCalls { get; set; }

        public string? Finish { get; set; }
    }
}
