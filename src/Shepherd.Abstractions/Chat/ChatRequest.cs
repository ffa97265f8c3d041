namespace Shepherd.Chat;

/// <summary>
/// A validated OpenAI Chat Completions request: the client's own bytes plus the fields the gateway needs.
/// </summary>
/// <remarks>
/// The neutral request shape <em>is</em> OpenAI's wire format. OpenAI-compatible upstreams get the original
/// bytes with the model spliced in (unknown fields ride along untouched); other adapters translate from
/// <see cref="Body"/>, using the ranges to find what they need.
/// </remarks>
public sealed class ChatRequest
{
    /// <summary>The request body exactly as the client sent it (UTF-8 JSON object).</summary>
    public required ReadOnlyMemory<byte> Body { get; init; }

    public required string Model { get; init; }

    /// <summary>Range of the <c>model</c> value token, quotes included.</summary>
    public JsonRange ModelRange { get; init; } = JsonRange.None;

    public bool Stream { get; init; }

    /// <summary>The client asked for the final usage chunk (<c>stream_options.include_usage</c>).</summary>
    public bool IncludeUsage { get; init; }

    public JsonRange StreamOptionsRange { get; init; } = JsonRange.None;

    public JsonRange MessagesRange { get; init; } = JsonRange.None;

    public int MessageCount { get; init; }

    public JsonRange ToolsRange { get; init; } = JsonRange.None;

    public int ToolCount { get; init; }

    public JsonRange ToolChoiceRange { get; init; } = JsonRange.None;

    public JsonRange ResponseFormatRange { get; init; } = JsonRange.None;

    /// <summary><c>text</c>, <c>json_object</c> or <c>json_schema</c> when a response format was given.</summary>
    public string? ResponseFormatType { get; init; }

    public JsonRange MetadataRange { get; init; } = JsonRange.None;

    public JsonRange StopRange { get; init; } = JsonRange.None;

    public IReadOnlyList<string> Stop { get; init; } = [];

    public int? MaxTokens { get; init; }

    public int? MaxCompletionTokens { get; init; }

    /// <summary>The output limit the client asked for: <c>max_completion_tokens</c>, else <c>max_tokens</c>.</summary>
    public int? RequestedMaxOutputTokens => MaxCompletionTokens ?? MaxTokens;

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public double? PresencePenalty { get; init; }

    public double? FrequencyPenalty { get; init; }

    public int N { get; init; } = 1;

    public long? Seed { get; init; }

    public string? User { get; init; }

    public bool? ParallelToolCalls { get; init; }

    public bool HasImages { get; init; }

    /// <summary>At least one message uses the <c>developer</c> role (which most non-OpenAI servers reject).</summary>
    public bool HasDeveloperRole { get; init; }

    /// <summary>UTF-8 bytes of message text, a cheap size signal for token estimates before tokenising.</summary>
    public int TextBytes { get; init; }
}
