namespace Shepherd.Server.Http;

using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Chat;
using Shepherd.Errors;

/// <summary>Writes every error the client sees as OpenAI's error JSON, with the right status and headers.</summary>
public static class ErrorResponses
{
    public static Task WriteAsync(HttpContext context, GatewayError error)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return Task.CompletedTask;
        }

        response.StatusCode = error.Status;
        response.ContentType = "application/json";
        if (error.RetryAfter is { } retryAfter)
        {
            var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
            response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);

            // The OpenAI SDKs prefer the precise value when it is there.
            response.Headers["retry-after-ms"] = ((long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (context.Features.Get<RequestContext>() is { } request)
        {
            request.ErrorCode ??= error.Code ?? error.Type;
        }

        var body = Serialize(error);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }

    /// <summary>The error object alone, <c>{"error":{...}}</c>, for in-stream errors and tests.</summary>
    public static byte[] Serialize(GatewayError error)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            w.WriteStartObject();
            w.WriteStartObject("error"u8);
            w.WriteString("message"u8, error.Message);
            w.WriteString("type"u8, error.Type);
            if (error.Param is null)
            {
                w.WriteNull("param"u8);
            }
            else
            {
                w.WriteString("param"u8, error.Param);
            }

            if (error.Code is null)
            {
                w.WriteNull("code"u8);
            }
            else
            {
                w.WriteString("code"u8, error.Code);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The error for a status with no more specific cause (404 route, 405 method, …).</summary>
    public static GatewayError ForStatus(int status, HttpContext context) => status switch
    {
        404 => new GatewayError(404, $"Unknown request URL: {context.Request.Method} {Sanitise(context.Request.Path)}. See the API reference for valid endpoints.", "invalid_request_error", "unknown_url"),
        405 => new GatewayError(405, $"Method {Sanitise(context.Request.Method)} is not allowed for {Sanitise(context.Request.Path)}.", "invalid_request_error", "method_not_allowed"),
        408 => new GatewayError(408, "The request body was not received in time.", "invalid_request_error", "request_timeout"),
        413 => PayloadTooLarge(0),
        415 => UnsupportedMediaType(),
        431 => new GatewayError(431, "The request headers are too large.", "invalid_request_error", "headers_too_large"),
        >= 500 => new GatewayError(status, "The gateway failed to process the request.", "server_error", "internal_error"),
        _ => new GatewayError(status, "The request could not be processed.", "invalid_request_error"),
    };

    public static GatewayError PayloadTooLarge(long limit) =>
        new(413, limit > 0 ? $"The request body is larger than the limit of {limit} bytes." : "The request body is too large.", "invalid_request_error", "request_too_large");

    public static GatewayError UnsupportedMediaType() =>
        new(415, "Unsupported content type: send the request body as JSON with 'Content-Type: application/json'.", "invalid_request_error", "unsupported_media_type");

    private static string Sanitise(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "/";
        }

        var trimmed = value.Length > 200 ? value[..200] : value;
        return string.Create(trimmed.Length, trimmed, static (span, s) =>
        {
            for (var i = 0; i < s.Length; i++)
            {
                span[i] = char.IsControl(s[i]) ? '?' : s[i];
            }
        });
    }
}
