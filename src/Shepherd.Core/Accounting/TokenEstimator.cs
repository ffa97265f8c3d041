namespace Shepherd.Accounting;

using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Shepherd.Chat;

/// <summary>
/// Counts prompt tokens before a request is sent (for TPM and budget reservations) and output tokens when a
/// provider reports none, with OpenAI's o200k_base encoding (Microsoft.ML.Tokenizers).
/// </summary>
/// <remarks>The message overhead follows OpenAI's published counting recipe (3 tokens per message, 1 per name,
/// 3 to prime the reply); images count a flat 765 tokens (a high-detail 512px tile set). Text is decoded into a
/// pooled buffer, and split into pieces here (see <see cref="Pieces"/>), so estimating allocates nothing per request.</remarks>
public sealed partial class TokenEstimator
{
    public const int TokensPerMessage = 3;
    public const int TokensPerName = 1;
    public const int ReplyPriming = 3;
    public const int TokensPerImage = 765;

    private static readonly Lazy<Tokenizer> SharedTokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    public static TokenEstimator Default { get; } = new();

    private static Tokenizer Tokenizer => SharedTokenizer.Value;

    /// <summary>Tokens of a piece of text.</summary>
    public int Count(ReadOnlySpan<char> text)
    {
        var tokens = 0;
        foreach (var piece in Pieces().EnumerateMatches(text))
        {
            tokens += Tokenizer.CountTokens(text.Slice(piece.Index, piece.Length), considerPreTokenization: false, considerNormalization: false);
        }

        return tokens;
    }

    /// <summary>o200k_base's pre-tokenization pattern, as tiktoken and Microsoft.ML.Tokenizers define it.</summary>
    /// <remarks>
    /// The tokenizer's own pre-tokenizer hands out the pieces through an enumerator (about 100 bytes and 1.5 µs per
    /// call); enumerating the matches here and counting each piece without pre-tokenization gives the same counts
    /// (checked against the library on mixed-script text in the tests) with no allocation. One difference: a special
    /// token's text inside a message (<c>&lt;|endoftext|&gt;</c>) counts as the plain text it is to a chat model.
    /// </remarks>
    [GeneratedRegex(@"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")]
    private static partial Regex Pieces();

    public int Count(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty)
        {
            return 0;
        }

        var chars = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(utf8.Length));
        try
        {
            var length = Encoding.UTF8.GetChars(utf8, chars);
            return Count(chars.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    /// <summary>Estimated prompt tokens of a validated request: message texts, tool calls, tool definitions.</summary>
    public int EstimatePrompt(ChatRequest request)
    {
        var body = request.Body.Span;
        var tokens = ReplyPriming + (request.MessageCount * TokensPerMessage);
        tokens += CountStrings(request.MessagesRange.Slice(request.Body).Span, countImages: true);
        if (request.ToolsRange.IsPresent)
        {
            // Tool schemas are sent to the model as text too; their JSON is a fair measure.
            tokens += Count(body.Slice(request.ToolsRange.Start, request.ToolsRange.Length));
        }

        if (request.ResponseFormatRange.IsPresent)
        {
            tokens += Count(body.Slice(request.ResponseFormatRange.Start, request.ResponseFormatRange.Length));
        }

        return tokens;
    }

    /// <summary>Estimated tokens of one message object (its text plus the per-message overhead), counted exactly as
    /// <see cref="EstimatePrompt"/> counts it, so the messages of a request add up to its message part.</summary>
    public int EstimateMessage(ReadOnlySpan<byte> messageJson) => TokensPerMessage + CountStrings(messageJson, countImages: true);

    /// <summary>Sums the tokens of every string value that is text a model reads (content, text, arguments, name, …).</summary>
    private int CountStrings(ReadOnlySpan<byte> json, bool countImages)
    {
        if (json.IsEmpty)
        {
            return 0;
        }

        var reader = new Utf8JsonReader(json);
        var tokens = 0;
        var countNext = false;
        var scratch = ArrayPool<byte>.Shared.Rent(1024);
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        countNext = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("text"u8) ||
                                    reader.ValueTextEquals("arguments"u8) || reader.ValueTextEquals("refusal"u8) ||
                                    reader.ValueTextEquals("reasoning_content"u8);
                        if (reader.ValueTextEquals("name"u8))
                        {
                            tokens += TokensPerName;
                            countNext = true;
                        }
                        else if (countImages && reader.ValueTextEquals("image_url"u8))
                        {
                            tokens += TokensPerImage;
                        }

                        break;
                    case JsonTokenType.String when countNext:
                        if (reader.ValueIsEscaped)
                        {
                            var needed = reader.ValueSpan.Length;
                            if (scratch.Length < needed)
                            {
                                ArrayPool<byte>.Shared.Return(scratch);
                                scratch = ArrayPool<byte>.Shared.Rent(needed);
                            }

                            var written = reader.CopyString(scratch);
                            tokens += Count(scratch.AsSpan(0, written));
                        }
                        else
                        {
                            tokens += Count(reader.ValueSpan);
                        }

                        countNext = false;
                        break;
                    default:
                        countNext = false;
                        break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }

        return tokens;
    }
}
