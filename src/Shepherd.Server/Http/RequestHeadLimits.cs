namespace Shepherd.Server.Http;

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Shepherd.Errors;

/// <summary>
/// Limits on a request's head — header bytes, header count, URL length — checked by the gateway itself, so a request
/// over them gets OpenAI's error JSON like every other failure. Kestrel's own limits are set to twice these: Kestrel
/// answers a head it will not parse with a bare 431 or 414 and no body, which clients can only report as "HTTP error".
/// </summary>
public static class RequestHeadLimits
{
    /// <summary>All header lines together, as Kestrel counts them by default (32 KiB).</summary>
    public const int MaxHeaderBytes = 32 * 1024;

    /// <summary>Headers per request (Kestrel's default).</summary>
    public const int MaxHeaderCount = 100;

    /// <summary>Method, path and query (Kestrel's default request-line limit).</summary>
    public const int MaxRequestLineBytes = 8 * 1024;

    /// <summary>Kestrel's limits: twice the gateway's, so everything up to them reaches <see cref="Check"/>.</summary>
    public static void Apply(KestrelServerLimits limits)
    {
        limits.MaxRequestHeadersTotalSize = 2 * MaxHeaderBytes;
        limits.MaxRequestHeaderCount = 2 * MaxHeaderCount;
        limits.MaxRequestLineSize = 2 * MaxRequestLineBytes;
    }

    /// <returns>The error for a head over a limit, or null.</returns>
    public static GatewayError? Check(HttpContext context)
    {
        // "METHOD /raw/target?query HTTP/1.1\r\n", the target as sent (before percent-decoding).
        var request = context.Request;
        var target = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget;
        var line = request.Method.Length + (target?.Length ?? (request.Path.Value?.Length ?? 0) + (request.QueryString.Value?.Length ?? 0)) + 12;
        if (line > MaxRequestLineBytes)
        {
            return new GatewayError(414, $"The request URL is too long (the limit is {MaxRequestLineBytes} bytes with the method).", "invalid_request_error", "url_too_long");
        }

        var headers = request.Headers;
        if (headers.Count > MaxHeaderCount)
        {
            return TooLarge($"The request has {headers.Count} headers; the limit is {MaxHeaderCount}.");
        }

        var bytes = 0;
        foreach (var (name, values) in headers)
        {
            // "Name: value\r\n" per value, as it came over the wire.
            foreach (var value in values)
            {
                bytes += name.Length + (value?.Length ?? 0) + 4;
            }
        }

        return bytes > MaxHeaderBytes ? TooLarge($"The request headers are {bytes} bytes; the limit is {MaxHeaderBytes}.") : null;

        static GatewayError TooLarge(string message) => new(431, message, "invalid_request_error", "headers_too_large");
    }
}
