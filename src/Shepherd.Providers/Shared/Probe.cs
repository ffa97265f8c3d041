namespace Shepherd.Providers.Shared;

using Shepherd.Errors;

/// <summary>The shared body of every adapter's health probe: one GET with the key, a short timeout, the status classified.</summary>
public static class Probe
{
    public static async ValueTask<UpstreamFailure?> GetAsync(
        HttpMessageInvoker http,
        Uri uri,
        Action<HttpRequestMessage> authorise,
        string provider,
        CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        authorise(request);
        try
        {
            using var response = await http.SendAsync(request, timeout.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            return status is >= 200 and <= 299
                ? null
                : new UpstreamFailure(FailureClassifier.FromStatus(status), status, $"The health probe of '{provider}' answered HTTP {status}.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return FailureClassifier.Timeout(provider, "health probe");
        }
        catch (HttpRequestException ex)
        {
            return FailureClassifier.ConnectFailure(provider, ex);
        }
    }
}
