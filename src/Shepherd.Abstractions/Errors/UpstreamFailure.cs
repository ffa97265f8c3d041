namespace Shepherd.Errors;

/// <summary>A classified upstream failure, already normalised to OpenAI's error vocabulary.</summary>
/// <param name="Class">How the executor should treat it.</param>
/// <param name="UpstreamStatus">The upstream's HTTP status, or 0 when there was no HTTP answer.</param>
/// <param name="Message">A message safe to show the client (never containing an upstream key).</param>
/// <param name="Type">OpenAI error type of the upstream answer when known.</param>
/// <param name="Code">OpenAI error code when known.</param>
/// <param name="Param">The offending parameter when known.</param>
/// <param name="RetryAfter">The upstream's <c>retry-after</c>/<c>retry-after-ms</c>, when given.</param>
public sealed record UpstreamFailure(
    FailureClass Class,
    int UpstreamStatus,
    string Message,
    string? Type = null,
    string? Code = null,
    string? Param = null,
    TimeSpan? RetryAfter = null)
{
    /// <summary>Translates the failure to what the client sees.</summary>
    public GatewayError ToClientError() => Class switch
    {
        FailureClass.CallerFault => new GatewayError(
            UpstreamStatus is 400 or 404 or 413 or 422 ? UpstreamStatus : 400,
            Message,
            Type ?? (UpstreamStatus == 404 ? "invalid_request_error" : "invalid_request_error"),
            Code,
            Param),
        FailureClass.ContextOverflow => new GatewayError(400, Message, "invalid_request_error", Code ?? "context_length_exceeded", Param ?? "messages"),
        FailureClass.RateLimited => new GatewayError(429, Message, Type ?? "rate_limit_error", Code ?? "rate_limit_exceeded", null) { RetryAfter = RetryAfter },
        FailureClass.Timeout => new GatewayError(504, Message, "server_error", "timeout", null),
        FailureClass.BadCredential => new GatewayError(502, "The upstream provider refused the gateway's credentials.", "server_error", "upstream_auth_failed", null),
        _ => new GatewayError(502, Message, "server_error", Code ?? "upstream_error", null),
    };
}
