namespace Shepherd.Providers;

using Shepherd.Chat;

/// <summary>
/// One configured upstream (an <c>openai</c>, <c>anthropic</c>, <c>gemini</c> or <c>simulated</c> provider entry).
/// Translates the neutral request to its wire format and back, and classifies failures. Never retries:
/// retries, key rotation and fallbacks belong to the executor.
/// </summary>
public interface IChatProvider
{
    /// <summary>The provider's configured name.</summary>
    string Name { get; }

    /// <summary>The provider type (<c>openai</c>, <c>anthropic</c>, …).</summary>
    string Type { get; }

    ProviderCapabilities Capabilities { get; }

    /// <summary>Sends a non-streamed request.</summary>
    ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken);

    /// <summary>Opens a stream. Returns once the upstream has accepted the request (status and headers seen).</summary>
    ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken);
}

/// <summary>What an upstream can do, so the gateway can refuse early instead of failing upstream.</summary>
public sealed record ProviderCapabilities(bool MultipleChoices, bool Images, bool Tools);
