namespace Shepherd.Errors;

/// <summary>An error the client receives, as OpenAI's <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed record GatewayError(int Status, string Message, string Type, string? Code = null, string? Param = null)
{
    /// <summary>Sent as <c>retry-after</c> (whole seconds, rounded up).</summary>
    public TimeSpan? RetryAfter { get; init; }

    public static GatewayError InvalidRequest(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", code, param);

    public static GatewayError NotFound(string message, string? code = null) =>
        new(404, message, "invalid_request_error", code);

    public static GatewayError Unauthorized(string message) =>
        new(401, message, "invalid_request_error", "invalid_api_key");

    public static GatewayError Server(int status, string message, string? code = null) =>
        new(status, message, "server_error", code);
}
