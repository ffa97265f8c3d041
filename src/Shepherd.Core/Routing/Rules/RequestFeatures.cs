namespace Shepherd.Routing.Rules;

using System.Text;
using System.Text.Json;
using Shepherd.Accounting;
using Shepherd.Chat;

/// <summary>Where a tag's value came from.</summary>
public enum TagSource : byte
{
    None,
    Header,
    Metadata,
}

/// <summary>
/// What the routing rules look at, computed at most once per request and only when a rule asks: the estimated prompt
/// tokens (tokenising is the expensive part), the text of the last user message, and tags.
/// </summary>
/// <remarks>Flags the parser already found (images, tools, response format) are read from the request directly.</remarks>
public sealed class RequestFeatures
{
    private readonly TokenEstimator _estimator;
    private int _promptTokens = -1;
    private string? _lastUserText;

    public RequestFeatures(ChatRequest request, RequestHints hints, TokenEstimator estimator)
    {
        Request = request;
        Hints = hints;
        _estimator = estimator;
    }

    public ChatRequest Request { get; }

    public RequestHints Hints { get; }

    public bool HasImages => Request.HasImages;

    public int ToolCount => Request.ToolCount;

    public string? ResponseFormatType => Request.ResponseFormatType;

    /// <summary>The estimated prompt tokens (o200k_base, as for limits), counted on first use.</summary>
    public int PromptTokens
    {
        get
        {
            if (_promptTokens < 0)
            {
                _promptTokens = _estimator.EstimatePrompt(Request);
            }

            return _promptTokens;
        }
    }

    /// <summary>The estimate when a rule already needed it (so later stages need not count again).</summary>
    public int? PromptTokensIfCounted => _promptTokens < 0 ? null : _promptTokens;

    /// <summary>The text of the last <c>user</c> message (text parts joined by a line break); empty when there is none.</summary>
    public string LastUserText => _lastUserText ??= ReadLastUserText(Request);

    /// <summary>Compares a tag with <paramref name="expected"/> (case-insensitive); the header wins over <c>metadata</c>.</summary>
    /// <returns>The source of the tag's value, or <see cref="TagSource.None"/> when the request has no such tag.</returns>
    public TagSource MatchTag(string key, string expected, out bool equal)
    {
        if (Hints.TryGetTag(key, out var fromHeader))
        {
            equal = fromHeader.Equals(expected, StringComparison.OrdinalIgnoreCase);
            return TagSource.Header;
        }

        return MatchMetadata(key, expected, capture: false, out equal, out _);
    }

    /// <summary>A tag's value and source, for explanations (allocates).</summary>
    public (string? Value, TagSource Source) DescribeTag(string key)
    {
        if (Hints.TryGetTag(key, out var fromHeader))
        {
            return (fromHeader.ToString(), TagSource.Header);
        }

        var source = MatchMetadata(key, string.Empty, capture: true, out _, out var value);
        return (value, source);
    }

    private TagSource MatchMetadata(string key, string expected, bool capture, out bool equal, out string? captured)
    {
        equal = false;
        captured = null;
        if (!Request.MetadataRange.IsPresent)
        {
            return TagSource.None;
        }

        // The parser allows at most 64-character keys and 512-character values, so these buffers hold any
        // unescaped value; a longer escaped form (many \u escapes) takes the allocating path.
        Span<char> keyBuffer = stackalloc char[64];
        Span<char> valueBuffer = stackalloc char[512];
        scoped var reader = new Utf8JsonReader(Request.MetadataRange.Slice(Request.Body).Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return TagSource.None;
        }

        var found = TagSource.None;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var matches = Text(ref reader, keyBuffer).Equals(key, StringComparison.OrdinalIgnoreCase);
            reader.Read();
            if (matches && reader.TokenType == JsonTokenType.String)
            {
                var value = Text(ref reader, valueBuffer);
                equal = value.Equals(expected, StringComparison.OrdinalIgnoreCase);
                captured = capture ? value.ToString() : null;
                found = TagSource.Metadata;
            }
            else
            {
                reader.Skip();
            }
        }

        return found;
    }

    private static ReadOnlySpan<char> Text(scoped ref Utf8JsonReader reader, Span<char> buffer)
    {
        // An escaped value is never shorter in bytes than in characters, so a span that fits the buffer is safe.
        return reader.ValueSpan.Length <= buffer.Length ? buffer[..reader.CopyString(buffer)] : reader.GetString().AsSpan();
    }

    private static string ReadLastUserText(ChatRequest request)
    {
        var messages = request.MessagesRange.Slice(request.Body).Span;
        var reader = new Utf8JsonReader(messages);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            return string.Empty;
        }

        var last = JsonRange.None;
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var isUser = false;
            var content = JsonRange.None;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    isUser = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("user"u8);
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    content = new JsonRange(start, (int)reader.BytesConsumed - start);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (isUser && content.IsPresent)
            {
                last = content;
            }
        }

        return last.IsPresent ? ContentText(messages.Slice(last.Start, last.Length)) : string.Empty;
    }

    /// <summary>A content value's text: the string itself, or the <c>text</c> of its parts, one per line.</summary>
    private static string ContentText(ReadOnlySpan<byte> content)
    {
        var reader = new Utf8JsonReader(content);
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString() ?? string.Empty;
        }

        var text = new StringBuilder();
        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == depth + 2 && reader.ValueTextEquals("text"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    if (text.Length > 0)
                    {
                        text.Append('\n');
                    }

                    text.Append(reader.GetString());
                }
            }
        }

        return text.ToString();
    }
}
