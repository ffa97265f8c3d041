namespace Shepherd.Providers.Shared;

using Shepherd.Errors;

/// <summary>The status-code part of failure classification, shared by every adapter (PROTOCOLS.md §4.7).</summary>
public static class FailureClassifier
{
    public static FailureClass FromStatus(int status) => status switch
    {
        // A redirect (or any other non-error the adapter cannot use) is the upstream's or the configuration's fault.
        < 400 => FailureClass.Transient,
        401 or 403 => FailureClass.BadCredential,

        // 402: out of credit (DeepSeek "Insufficient Balance", OpenRouter): a quota, like OpenAI's insufficient_quota.
        402 or 429 or 529 => FailureClass.RateLimited,
        408 or 409 => FailureClass.Transient,
        >= 500 => FailureClass.Transient,
        _ => FailureClass.CallerFault,
    };

    /// <summary>Messages providers use for prompts that are too long.</summary>
    public static bool LooksLikeContextOverflow(string? code, string? message) =>
        code is "context_length_exceeded" or "string_above_max_length" ||
        (message is not null &&
         (message.Contains("maximum context length", StringComparison.OrdinalIgnoreCase) ||
          message.Contains("prompt is too long", StringComparison.OrdinalIgnoreCase) ||
          message.Contains("context window", StringComparison.OrdinalIgnoreCase) ||
          message.Contains("input token count", StringComparison.OrdinalIgnoreCase) ||
          message.Contains("too many tokens", StringComparison.OrdinalIgnoreCase)));

    public static UpstreamFailure ConnectFailure(string provider, Exception ex) =>
        new(FailureClass.Transient, 0, $"Could not reach the upstream provider '{provider}': {Describe(ex)}.", "server_error", "upstream_unreachable");

    public static UpstreamFailure Timeout(string provider, string what) =>
        new(FailureClass.Timeout, 0, $"The upstream provider '{provider}' did not answer in time ({what}).", "server_error", "timeout");

    public static UpstreamFailure Unusable(string provider, string what) =>
        new(FailureClass.Transient, 0, $"The upstream provider '{provider}' returned an unusable answer: {what}.", "server_error", "bad_upstream_response");

    private static string Describe(Exception ex)
    {
        // Only the innermost socket-level reason: never a URL with credentials, never a stack.
        var inner = ex;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }

        return inner switch
        {
            System.Net.Sockets.SocketException socket => socket.SocketErrorCode.ToString(),
            TimeoutException => "connect timeout",
            _ => inner.GetType().Name,
        };
    }
}
