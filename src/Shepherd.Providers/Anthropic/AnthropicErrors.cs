namespace Shepherd.Providers.Anthropic;

using System.Text;
using System.Text.Json;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Normalises Anthropic error answers (PROTOCOLS.md §2.5): <c>{"type":"error","error":{"type","message"}}</c>, and
/// whatever a proxy in front of it sends instead (HTML, plain text, OpenAI-style bodies, nothing).
/// </summary>
public static class AnthropicErrors
{
    /// <summary>The <c>error.type</c> and <c>error.message</c> of an error body, when it has them.</summary>
    public readonly record struct ErrorFields(string? Type, string? Message);

    public static ErrorFields Read(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return default;
        }

        try
        {
            // Error bodies are small; a huge one is not an Anthropic error and only its start matters.
            var reader = new Utf8JsonReader(body.Length > 65536 ? body[..65536] : body, isFinalBlock: body.Length <= 65536, default);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            string? topType = null;
            string? topMessage = null;
            var nested = default(ErrorFields);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        nested = ReadErrorObject(ref reader);
                    }
                    else if (reader.TokenType == JsonTokenType.String)
                    {
                        nested = new ErrorFields(null, reader.GetString());
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("message"u8))
                {
                    topMessage = ReadString(ref reader);
                }
                else if (reader.ValueTextEquals("type"u8))
                {
                    topType = ReadString(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // The nested object is the real error; a flat {"message": ...} is a proxy's.
            return new ErrorFields(nested.Type ?? (topType == "error" ? null : topType), nested.Message ?? topMessage);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    private static ErrorFields ReadErrorObject(ref Utf8JsonReader reader)
    {
        string? type = null;
        string? message = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                type = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                message = ReadString(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new ErrorFields(type, message);
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

    /// <summary>Classifies an HTTP error answer.</summary>
    public static UpstreamFailure Classify(string provider, int status, ReadOnlySpan<byte> body, TimeSpan? retryAfter, string apiKey)
    {
        var fields = Read(body);
        var message = string.IsNullOrWhiteSpace(fields.Message)
            ? $"The upstream provider '{provider}' answered HTTP {status}{DescribeBody(body)}."
            : fields.Message;
        return Build(status, fields.Type, SecretScrubber.Scrub(message, apiKey), retryAfter);
    }

    /// <summary>Classifies an <c>event: error</c> that arrived inside a 200 stream.</summary>
    /// <remarks>A caller fault cannot appear once the answer has begun; anything the upstream calls that is treated as
    /// a transient failure, like the OpenAI adapter does.</remarks>
    public static UpstreamFailure ClassifyStreamError(string provider, ReadOnlySpan<byte> data, string apiKey)
    {
        var fields = Read(data);
        var status = StatusOf(fields.Type);
        var message = string.IsNullOrWhiteSpace(fields.Message)
            ? $"The upstream provider '{provider}' reported an error mid-stream ({fields.Type ?? "unknown"})."
            : fields.Message;
        var failure = Build(status, fields.Type, SecretScrubber.Scrub(message, apiKey), null);
        return failure.Class == FailureClass.CallerFault ? failure with { Class = FailureClass.Transient, Type = "server_error" } : failure;
    }

    /// <summary>The HTTP status Anthropic uses for an error type (for in-stream errors, which carry none).</summary>
    public static int StatusOf(string? errorType) => errorType switch
    {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };

    private static UpstreamFailure Build(int status, string? errorType, string message, TimeSpan? retryAfter)
    {
        var @class = FailureClassifier.FromStatus(status);
        string? type = null;
        string? code = null;
        switch (errorType)
        {
            case "overloaded_error":
                // Overloaded for everyone, not a caller problem: whatever status carried it, back off and retry.
                @class = FailureClass.RateLimited;
                type = "rate_limit_error";
                code = "upstream_overloaded";
                break;
            case "rate_limit_error":
                @class = FailureClass.RateLimited;
                type = "rate_limit_error";
                break;
            case "billing_error":
                // Out of credit: the gateway's account, like OpenAI's insufficient_quota.
                @class = FailureClass.RateLimited;
                type = "insufficient_quota";
                code = "insufficient_quota";
                break;
            case "authentication_error" or "permission_error":
                @class = FailureClass.BadCredential;
                break;
            case "not_found_error":
                type = "invalid_request_error";
                code = message.StartsWith("model:", StringComparison.Ordinal) ? "model_not_found" : "not_found";
                break;
            case "request_too_large":
                type = "invalid_request_error";
                code = "request_too_large";
                break;
            case "invalid_request_error":
                type = "invalid_request_error";
                break;
        }

        if (@class == FailureClass.CallerFault && LooksLikeContextOverflow(message))
        {
            @class = FailureClass.ContextOverflow;
            code = "context_length_exceeded";
        }

        return new UpstreamFailure(@class, status, message, type ?? (@class is FailureClass.Transient ? "server_error" : null), code, null, retryAfter);
    }

    /// <summary>"prompt is too long: 210000 tokens > 200000 maximum", and "input length and `max_tokens` exceed context limit".</summary>
    private static bool LooksLikeContextOverflow(string message) =>
        FailureClassifier.LooksLikeContextOverflow(null, message) ||
        message.Contains("exceed context limit", StringComparison.OrdinalIgnoreCase);

    private static string DescribeBody(ReadOnlySpan<byte> body)
    {
        var trimmed = body.Trim(" \t\r\n"u8);
        if (trimmed.IsEmpty)
        {
            return " with an empty body";
        }

        // A proxy's HTML page is no use to the client; a short text body may be.
        if (trimmed[0] == '<')
        {
            return " with an HTML page";
        }

        var text = Encoding.UTF8.GetString(trimmed.Length > 200 ? trimmed[..200] : trimmed).ReplaceLineEndings(" ");
        return $": {text}";
    }
}
