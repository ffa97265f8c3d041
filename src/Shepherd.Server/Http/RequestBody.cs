namespace Shepherd.Server.Http;

using Microsoft.AspNetCore.Http;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>Reads a JSON request body into a pooled buffer, enforcing the content type and the size limit.</summary>
public static class RequestBody
{
    public static GatewayError? CheckContentType(HttpRequest request)
    {
        var contentType = request.ContentType;

        // No content type at all is accepted as JSON (some minimal clients omit it); anything else must say JSON.
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }

        var mediaType = contentType.AsSpan();
        var semicolon = mediaType.IndexOf(';');
        if (semicolon >= 0)
        {
            mediaType = mediaType[..semicolon];
        }

        mediaType = mediaType.Trim();
        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) ||
               (mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase) && mediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase))
            ? null
            : ErrorResponses.UnsupportedMediaType();
    }

    /// <returns>The body (dispose it), or an error (413, 400).</returns>
    public static async ValueTask<(PooledBuffer? Body, GatewayError? Error)> ReadAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        var declared = request.ContentLength;
        if (declared > limit)
        {
            return (null, ErrorResponses.PayloadTooLarge(limit));
        }

        var buffer = new PooledBuffer(declared is > 0 ? (int)declared.Value : 4096);
        try
        {
            if (!await buffer.ReadFromAsync(request.Body, limit, null, cancellationToken).ConfigureAwait(false))
            {
                buffer.Dispose();
                return (null, ErrorResponses.PayloadTooLarge(limit));
            }

            return (buffer, null);
        }
        catch (BadHttpRequestException ex)
        {
            buffer.Dispose();
            return (null, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? ErrorResponses.PayloadTooLarge(limit)
                : new GatewayError(ex.StatusCode, "The request body could not be read.", "invalid_request_error", "bad_request_body"));
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }
}
