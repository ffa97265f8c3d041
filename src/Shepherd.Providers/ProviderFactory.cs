namespace Shepherd.Providers;

using Shepherd.Configuration;
using Shepherd.Providers.Anthropic;
using Shepherd.Providers.Gemini;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Simulated;

/// <summary>Creates the adapter for a provider entry, by its type.</summary>
public static class ProviderFactory
{
    public static IChatProvider Create(ProviderConfig config, TimeProvider time) => config.Type switch
    {
        ProviderTypes.OpenAI => new OpenAIProvider(config, time),
        ProviderTypes.Anthropic => new AnthropicProvider(config, time),
        ProviderTypes.Gemini => new GeminiProvider(config, time),
        ProviderTypes.Simulated => new SimulatedProvider(config, time),
        _ => throw new ArgumentException($"Unknown provider type '{config.Type}'.", nameof(config)),
    };
}
