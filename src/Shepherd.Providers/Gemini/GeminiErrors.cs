namespace Shepherd.Providers.Gemini;

using System.Text.Json;
using Shepherd.Errors;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;

/// <summary>
/// Normalises Gemini error bodies (PROTOCOLS.md §3.5): <c>{"error":{"code","message","status","details"}}</c>,
/// possibly wrapped in a one-element array by the streaming endpoint, or not JSON at all (a proxy's page).
/// </summary>
public static class GeminiErrors
{
    /// <summary>What a Gemini error body says. <see cref="Reason"/> is the first <c>ErrorInfo.reason</c> in <c>details</c>.</summary>
    public readonly record struct ErrorFields(int? Code, string? Message, string? Status, string? Reason, TimeSpan? RetryDelay)
    {
        public bool IsError => Code is not null || Message is not null || Status is not null;
    }

    /// <summary>Reads an error body; returns default when it holds no Gemini error.</summary>
    public static ErrorFields Read(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body.Length > 65536 ? body[..65536] : body, new JsonReaderOptions { MaxDepth = 32 });
            using var document = JsonDocument.ParseValue(ref reader);
            return Read(document.RootElement);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    /// <summary>Reads the error of a parsed body or stream chunk (<c>{"error":…}</c> or <c>[{"error":…}]</c>).</summary>
    public static ErrorFields Read(JsonElement root)
    {
        if (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() > 0)
        {
            root = root[0];
        }

        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error))
        {
            return default;
        }

        if (error.ValueKind == JsonValueKind.String)
        {
            return new ErrorFields(null, error.GetString(), null, null, null);
        }

        if (error.ValueKind != JsonValueKind.Object)
        {
            return default;
        }

        int? code = error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var n) ? n : null;
        string? reason = null;
        TimeSpan? retryDelay = null;
        if (error.TryGetProperty("details", out var details) && details.ValueKind == JsonValueKind.Array)
        {
            foreach (var detail in details.EnumerateArray())
            {
                if (detail.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                reason ??= Text(detail, "reason");
                retryDelay ??= RetryAfter.FromDuration(Text(detail, "retryDelay"));
            }
        }

        return new ErrorFields(code, Text(error, "message"), Text(error, "status"), reason, retryDelay);
    }

    /// <summary>True when a parsed stream chunk is an error object rather than a response.</summary>
    public static bool IsErrorChunk(JsonElement root) =>
        (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out _)) ||
        (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() > 0 && root[0].ValueKind == JsonValueKind.Object && root[0].TryGetProperty("error", out _));

    /// <summary>Classifies an error answer and builds the failure the client may see.</summary>
    /// <param name="provider">The provider's configured name, for messages.</param>
    /// <param name="status">The HTTP status (for an in-stream error: the body's <c>code</c>, else 500).</param>
    /// <param name="body">The error body.</param>
    /// <param name="retryAfterHeader">The <c>Retry-After</c> header, used when the body has no <c>RetryInfo</c>.</param>
    /// <param name="apiKey">The upstream key, scrubbed from every message.</param>
    public static UpstreamFailure Classify(string provider, int status, ReadOnlySpan<byte> body, TimeSpan? retryAfterHeader, string apiKey)
    {
        var fields = Read(body);
        var message = fields.Message;
        if (string.IsNullOrWhiteSpace(message))
        {
            message = $"The upstream provider '{provider}' answered HTTP {status}{OpenAIErrors.DescribeBody(body)}.";
        }

        return Classify(status, fields, SecretScrubber.Scrub(message, apiKey), retryAfterHeader);
    }

    /// <summary>Classifies already-read error fields; <paramref name="message"/> must already be scrubbed.</summary>
    public static UpstreamFailure Classify(int status, ErrorFields fields, string message, TimeSpan? retryAfterHeader)
    {
        // A bad key is a 400 INVALID_ARGUMENT whose details say API_KEY_INVALID (or another API_KEY_* reason):
        // it is the gateway's credential that is wrong, not the client's request.
        if (fields.Reason is { } reason && reason.StartsWith("API_KEY_", StringComparison.Ordinal))
        {
            return new UpstreamFailure(FailureClass.BadCredential, status, message, "authentication_error", "invalid_api_key");
        }

        switch (fields.Status)
        {
            case "RESOURCE_EXHAUSTED":
                return new UpstreamFailure(FailureClass.RateLimited, status, message, RetryAfter: fields.RetryDelay ?? retryAfterHeader);
            case "UNAUTHENTICATED" or "PERMISSION_DENIED":
                return new UpstreamFailure(FailureClass.BadCredential, status, message, "permission_error", Lower(fields.Status));
            case "DEADLINE_EXCEEDED":
                return new UpstreamFailure(FailureClass.Timeout, status, message, "server_error", "timeout");
            case "UNAVAILABLE" or "INTERNAL" or "UNKNOWN" or "ABORTED" or "CANCELLED":
                return new UpstreamFailure(FailureClass.Transient, status, message, "server_error", Lower(fields.Status));
        }

        var @class = status switch
        {
            429 => FailureClass.RateLimited,
            504 => FailureClass.Timeout,
            _ => FailureClassifier.FromStatus(status),
        };

        return @class switch
        {
            FailureClass.CallerFault when FailureClassifier.LooksLikeContextOverflow(null, message) =>
                new UpstreamFailure(FailureClass.ContextOverflow, status, message, "invalid_request_error", "context_length_exceeded", "messages"),
            FailureClass.CallerFault =>
                new UpstreamFailure(FailureClass.CallerFault, status, message, "invalid_request_error", status == 404 || fields.Status == "NOT_FOUND" ? "model_not_found" : Lower(fields.Status)),
            FailureClass.RateLimited => new UpstreamFailure(FailureClass.RateLimited, status, message, RetryAfter: fields.RetryDelay ?? retryAfterHeader),
            FailureClass.Timeout => new UpstreamFailure(FailureClass.Timeout, status, message, "server_error", "timeout"),
            _ => new UpstreamFailure(@class, status, message, @class == FailureClass.BadCredential ? "permission_error" : "server_error", Lower(fields.Status)),
        };
    }

    private static string? Lower(string? status) => status?.ToLowerInvariant();

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
