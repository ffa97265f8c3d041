namespace Shepherd.Providers.Shared;

using Shepherd.Errors;

/// <summary>
/// The HTTP exchange every adapter makes, with its failures already classified: send (connect errors, connect and
/// first-byte timeouts), read a whole answer (idle timeout, size limit, dropped connection), read an error body, and
/// check that a stream is an event stream. Adapters differ only in what they send and how they read the answer.
/// </summary>
public static class UpstreamExchange
{
    /// <summary>Largest answer an adapter buffers; a bigger one is refused rather than held in memory.</summary>
    public const int MaxAnswerBytes = 64 * 1024 * 1024;

    private const int MaxErrorBytes = 1024 * 1024;

    /// <summary>Sends and waits for the response headers.</summary>
    /// <returns>The response (the caller disposes it), or the classified failure.</returns>
    /// <exception cref="OperationCanceledException">The client went away.</exception>
    public static async ValueTask<(HttpResponseMessage? Response, UpstreamFailure? Failure)> SendAsync(
        HttpMessageInvoker http,
        HttpRequestMessage request,
        UpstreamCancellation cancel,
        string provider)
    {
        try
        {
            return (await http.SendAsync(request, cancel.Token).ConfigureAwait(false), null);
        }
        catch (OperationCanceledException ex) when (!cancel.ClientGone)
        {
            // Our deadline, or the handler's connect timeout (a TaskCanceledException around a TimeoutException).
            return (null, cancel.TimedOut ? FailureClassifier.Timeout(provider, "no response headers") : FailureClassifier.ConnectFailure(provider, ex));
        }
        catch (HttpRequestException ex) when (!cancel.ClientGone)
        {
            return (null, FailureClassifier.ConnectFailure(provider, ex));
        }
    }

    /// <summary>Reads a whole answer into a pooled buffer, restarting the idle timeout on every read.</summary>
    /// <returns>The buffer (the caller disposes it), or the classified failure.</returns>
    public static async ValueTask<(PooledBuffer? Answer, UpstreamFailure? Failure)> ReadAnswerAsync(HttpResponseMessage response, UpstreamCancellation cancel, string provider)
    {
        cancel.Touch();
        var answer = new PooledBuffer(response.Content.Headers.ContentLength is { } length and > 0 and < MaxAnswerBytes ? (int)length + 1 : 8192);
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            if (await answer.ReadFromAsync(stream, MaxAnswerBytes, response.Content.Headers.ContentLength, cancel.Touch, cancel.Token).ConfigureAwait(false))
            {
                return (answer, null);
            }

            answer.Dispose();
            return (null, FailureClassifier.Unusable(provider, "the answer is larger than 64 MiB"));
        }
        catch (OperationCanceledException) when (cancel.TimedOut)
        {
            answer.Dispose();
            return (null, FailureClassifier.Timeout(provider, "the answer stalled"));
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException && !cancel.ClientGone)
        {
            answer.Dispose();
            return (null, FailureClassifier.Unusable(provider, "the connection dropped while reading the answer"));
        }
        catch
        {
            answer.Dispose();
            throw;
        }
    }

    /// <summary>Reads an error answer (at most 1 MiB); a body that cannot be read leaves the status to classify it.</summary>
    public static async ValueTask<PooledBuffer> ReadErrorAsync(HttpResponseMessage response, UpstreamCancellation cancel)
    {
        var error = new PooledBuffer(1024);
        try
        {
            cancel.Touch();
            var stream = await response.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            await error.ReadFromAsync(stream, MaxErrorBytes, response.Content.Headers.ContentLength, cancel.Touch, cancel.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException && !cancel.ClientGone)
        {
            // The status alone classifies it.
        }

        return error;
    }

    /// <summary>A streamed answer must be an event stream (a JSON answer to a stream request cannot be decoded).</summary>
    public static UpstreamFailure? CheckEventStream(HttpResponseMessage response, string provider)
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        return mediaType is not null && !mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase)
            ? FailureClassifier.Unusable(provider, $"expected an event stream, got {mediaType}")
            : null;
    }

    public static bool IsSuccess(HttpResponseMessage response) => (int)response.StatusCode is >= 200 and <= 299;
}
