namespace Shepherd.Providers;

using Shepherd.Configuration;
using Shepherd.Providers.Anthropic;
using Shepherd.Providers.Gemini;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;
using Shepherd.Providers.Simulated;

/// <summary>Creates the adapter for a provider entry, by its type.</summary>
public static class ProviderFactory
{
    /// <param name="config">The provider entry.</param>
    /// <param name="time">The clock.</param>
    /// <param name="propagateTrace">Send the trace context (<c>traceparent</c>) upstream (<c>telemetry.propagate</c>); off by default.</param>
    public static IChatProvider Create(ProviderConfig config, TimeProvider time, bool propagateTrace = false) => config.Type switch
    {
        ProviderTypes.OpenAI => new OpenAIProvider(config, time, UpstreamHttp.CreateInvoker(config, propagateTrace)),
        ProviderTypes.Anthropic => new AnthropicProvider(config, time, UpstreamHttp.CreateInvoker(config, propagateTrace)),
        ProviderTypes.Gemini => new GeminiProvider(config, time, UpstreamHttp.CreateInvoker(config, propagateTrace)),
        ProviderTypes.Simulated => new SimulatedProvider(config, time),
        _ => throw new ArgumentException($"Unknown provider type '{config.Type}'.", nameof(config)),
    };
}
