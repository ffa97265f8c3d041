namespace Shepherd.Providers.Gemini;

using Shepherd.Chat;
using Shepherd.Configuration;

/// <summary>Placeholder: replaced by the Gemini Messages adapter.</summary>
public sealed class GeminiProvider(ProviderConfig config, TimeProvider time) : IChatProvider
{
    public string Name => config.Name;

    public string Type => ProviderTypes.Gemini;

    public ProviderCapabilities Capabilities { get; } = new(true, true, true);

    public ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken) => throw new NotImplementedException(time.ToString());

    public ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken) => throw new NotImplementedException();
}
