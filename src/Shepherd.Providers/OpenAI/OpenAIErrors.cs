namespace Shepherd.Providers.OpenAI;

using System.Text;
using System.Text.Json;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>Normalises the error bodies of OpenAI-compatible servers (OpenAI, DeepSeek, vLLM old and new, Ollama, proxies).</summary>
public static class OpenAIErrors
{
    public readonly record struct ErrorFields(string? Message, string? Type, string? Code, string? Param);

    /// <summary>Reads <c>{"error":{...}}</c>, vLLM's flat <c>{"object":"error","message":..,"code":400}</c>, a bare string error, or nothing usable.</summary>
    public static ErrorFields Read(ReadOnlySpan<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body.Length > 65536 ? body[..65536].ToArray() : body.ToArray());
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() > 0)
            {
                root = root[0];
            }

            if (root.ValueKind != JsonValueKind.Object)
            {
                return default;
            }

            var source = root;
            if (root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.String)
                {
                    return new ErrorFields(error.GetString(), null, null, null);
                }

                if (error.ValueKind == JsonValueKind.Object)
                {
                    source = error;
                }
            }

            // vLLM (flat or wrapped) puts a Python exception name in "type" ("BadRequestError") and the HTTP status as
            // an integer "code": neither is OpenAI vocabulary, so both are dropped and the status decides.
            return new ErrorFields(Text(source, "message"), OpenAIType(Text(source, "type")), Text(source, "code"), Text(source, "param"));
        }
        catch (JsonException)
        {
            return default;
        }
    }

    /// <summary>OpenAI error types are snake_case (<c>invalid_request_error</c>, <c>insufficient_quota</c>); others are not passed on.</summary>
    private static string? OpenAIType(string? type)
    {
        if (string.IsNullOrEmpty(type) || type.Length > 64)
        {
            return null;
        }

        foreach (var c in type)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            {
                return null;
            }
        }

        return type;
    }

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>Classifies an error answer and builds the failure the client may see.</summary>
    public static UpstreamFailure Classify(string provider, int status, ReadOnlySpan<byte> body, TimeSpan? retryAfter, string apiKey)
    {
        var fields = Read(body);
        var message = fields.Message;
        if (string.IsNullOrWhiteSpace(message))
        {
            message = $"The upstream provider '{provider}' answered HTTP {status}{DescribeBody(body)}.";
        }

        message = SecretScrubber.Scrub(message, apiKey);
        var @class = FailureClassifier.FromStatus(status);
        if (fields.Code == "insufficient_quota" || fields.Type == "insufficient_quota")
        {
            @class = FailureClass.RateLimited;
        }
        else if (@class == FailureClass.CallerFault && FailureClassifier.LooksLikeContextOverflow(fields.Code, message))
        {
            @class = FailureClass.ContextOverflow;
        }

        return new UpstreamFailure(@class, status, message, fields.Type, fields.Code, fields.Param, retryAfter);
    }

    internal static string DescribeBody(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return " with an empty body";
        }

        // A proxy's HTML page is no use to the client; a short text body may be.
        var trimmed = body.TrimStart(" \t\r\n"u8);
        if (!trimmed.IsEmpty && trimmed[0] == '<')
        {
            return " with an HTML page";
        }

        var text = Encoding.UTF8.GetString(trimmed.Length > 200 ? trimmed[..200] : trimmed).ReplaceLineEndings(" ");
        return $": {text}";
    }
}
