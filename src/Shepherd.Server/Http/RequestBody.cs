namespace Shepherd.Server.Http;

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>Reads a JSON request body into a pooled buffer, enforcing the content type and the size limit.</summary>
public static class RequestBody
{
    /// <summary>Largest buffer rented up front on the strength of a declared <c>Content-Length</c>.</summary>
    /// <remarks>A client may declare 10 MB and send nothing; renting it all before the first byte arrives would
    /// let a few idle connections pin a lot of memory. Larger bodies grow the buffer as their bytes arrive.</remarks>
    private const int MaxInitialCapacity = 256 * 1024;

    /// <summary>415 unless the body is (uncompressed) JSON.</summary>
    public static GatewayError? CheckContentType(HttpRequest request)
    {
        // Kestrel does not decompress request bodies: gzip bytes would only reach the parser as "invalid JSON".
        var encoding = request.Headers.ContentEncoding;
        if (encoding.Count > 0 && !(encoding.Count == 1 && (string.IsNullOrWhiteSpace(encoding[0]) || encoding[0]!.Trim().Equals("identity", StringComparison.OrdinalIgnoreCase))))
        {
            return new GatewayError(
                415,
                "Unsupported Content-Encoding: send the request body uncompressed.",
                "invalid_request_error",
                "unsupported_media_type");
        }

        var contentType = request.ContentType;

        // No content type at all is accepted as JSON (some minimal clients omit it); anything else must say JSON.
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }

        var mediaType = contentType.AsSpan();
        var parameters = ReadOnlySpan<char>.Empty;
        var semicolon = mediaType.IndexOf(';');
        if (semicolon >= 0)
        {
            parameters = mediaType[(semicolon + 1)..];
            mediaType = mediaType[..semicolon];
        }

        mediaType = mediaType.Trim();
        if (!(mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) ||
              (mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase) && mediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase))))
        {
            return ErrorResponses.UnsupportedMediaType();
        }

        // JSON is UTF-8 (RFC 8259); a body declared as UTF-16 or Latin-1 would only fail later as "invalid JSON".
        return IsUtf8OrUnspecified(parameters)
            ? null
            : new GatewayError(
                415,
                "Unsupported charset: the request body must be UTF-8 JSON ('Content-Type: application/json; charset=utf-8' or no charset).",
                "invalid_request_error",
                "unsupported_media_type");
    }

    private static bool IsUtf8OrUnspecified(ReadOnlySpan<char> parameters)
    {
        foreach (var range in parameters.Split(';'))
        {
            var parameter = parameters[range].Trim();
            var equals = parameter.IndexOf('=');
            if (equals < 0 || !parameter[..equals].Trim().Equals("charset", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var value = parameter[(equals + 1)..].Trim().Trim('"');
            return value.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || value.Equals("utf8", StringComparison.OrdinalIgnoreCase);
        }

        return true;
    }

    /// <summary>The 413, and the connection closed after it: the rest of an oversized body is not worth reading.</summary>
    private static GatewayError TooLarge(HttpRequest request, long limit)
    {
        request.HttpContext.Response.Headers.Connection = "close";
        return ErrorResponses.PayloadTooLarge(limit);
    }

    /// <returns>The body (dispose it), or an error (413, 400).</returns>
    public static async ValueTask<(PooledBuffer? Body, GatewayError? Error)> ReadAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        var declared = request.ContentLength;
        if (declared > limit)
        {
            return (null, TooLarge(request, limit));
        }

        // Kestrel counts a chunked body's framing (sizes, CRLFs, the last chunk) against its own limit, so a body
        // just under ours would be refused. Ours is checked below on the body bytes alone, so lift Kestrel's for
        // this request (a 413 then closes the connection rather than letting Kestrel drain an endless body).
        if (declared is null && request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = null;
        }

        // Sized for the declared body (and one byte to see its end): the buffer lives as long as the request, which
        // for a stream can be minutes, so a small prompt must not pin a large block.
        var buffer = new PooledBuffer(declared is > 0 ? (int)Math.Min(declared.Value + 1, MaxInitialCapacity) : 4096);
        try
        {
            if (!await buffer.ReadFromAsync(request.Body, limit, declared, null, cancellationToken).ConfigureAwait(false))
            {
                buffer.Dispose();
                return (null, TooLarge(request, limit));
            }

            return (buffer, null);
        }
        catch (BadHttpRequestException ex)
        {
            // Kestrel's own verdicts: too large (its limit is ours), too slow (408), truncated or bad chunking (400).
            buffer.Dispose();
            return (null, ex.StatusCode switch
            {
                StatusCodes.Status413PayloadTooLarge => TooLarge(request, limit),
                StatusCodes.Status408RequestTimeout => ErrorResponses.ForStatus(StatusCodes.Status408RequestTimeout, request.HttpContext),
                _ => new GatewayError(
                    ex.StatusCode is >= 400 and < 500 ? ex.StatusCode : StatusCodes.Status400BadRequest,
                    "The request body could not be read: it ended before its declared length or its chunked encoding is malformed.",
                    "invalid_request_error",
                    "bad_request_body"),
            });
        }
        catch (IOException) when (!cancellationToken.IsCancellationRequested)
        {
            // The connection broke mid-body (a reset, not a clean end). The answer probably reaches no one, but
            // this is the client's doing, not a gateway failure to log as one.
            buffer.Dispose();
            return (null, new GatewayError(
                StatusCodes.Status400BadRequest,
                "The request body could not be read: the connection was closed before the whole body arrived.",
                "invalid_request_error",
                "bad_request_body"));
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }
}
