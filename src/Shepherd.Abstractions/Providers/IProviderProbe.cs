namespace Shepherd.Providers;

using Shepherd.Errors;

/// <summary>A cheap request (the provider's models endpoint) that tells whether an upstream key works again.</summary>
public interface IProviderProbe
{
    /// <returns>Null when the key works; the classified failure otherwise.</returns>
    ValueTask<UpstreamFailure?> ProbeAsync(string apiKey, CancellationToken cancellationToken);
}
