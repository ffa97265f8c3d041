namespace Shepherd.Chat;

using Shepherd.Errors;

public enum StreamEventKind : byte
{
    /// <summary>An OpenAI <c>chat.completion.chunk</c> to relay.</summary>
    Chunk,

    /// <summary>The upstream failed after the stream began; <see cref="StreamEvent.Failure"/> says how.</summary>
    Error,
}

/// <summary>One event of a neutral chat stream.</summary>
/// <remarks>
/// <see cref="Json"/> is an OpenAI chunk object (the SSE <c>data:</c> payload without framing). Its memory is
/// owned by the stream and is valid only until the next <c>MoveNextAsync</c>: relay it, don't keep it.
/// </remarks>
public readonly struct StreamEvent
{
    private StreamEvent(StreamEventKind kind, ReadOnlyMemory<byte> json, Usage? usage, bool hasContent, bool usageOnly, UpstreamFailure? failure)
    {
        Kind = kind;
        Json = json;
        Usage = usage;
        HasContent = hasContent;
        IsUsageOnly = usageOnly;
        Failure = failure;
    }

    public StreamEventKind Kind { get; }

    public ReadOnlyMemory<byte> Json { get; }

    /// <summary>Usage carried by this chunk, if any.</summary>
    public Usage? Usage { get; }

    /// <summary>The chunk carries generated output (text, a refusal, tool-call data or a finish reason), not just the role.</summary>
    public bool HasContent { get; }

    /// <summary>The chunk is OpenAI's final usage chunk (<c>choices: []</c>), which is relayed only if the client asked for it.</summary>
    public bool IsUsageOnly { get; }

    public UpstreamFailure? Failure { get; }

    public static StreamEvent Chunk(ReadOnlyMemory<byte> json, bool hasContent, Usage? usage = null, bool usageOnly = false) =>
        new(StreamEventKind.Chunk, json, usage, hasContent, usageOnly, null);

    public static StreamEvent Error(UpstreamFailure failure) =>
        new(StreamEventKind.Error, default, null, false, false, failure);
}
