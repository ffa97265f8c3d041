namespace Shepherd.Providers.Anthropic;

using Shepherd.Chat;
using Shepherd.Configuration;

/// <summary>Placeholder: replaced by the Anthropic Messages adapter.</summary>
public sealed class AnthropicProvider(ProviderConfig config, TimeProvider time) : IChatProvider
{
    public string Name => config.Name;

    public string Type => ProviderTypes.Anthropic;

    public ProviderCapabilities Capabilities { get; } = new(false, true, true);

    public ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken) => throw new NotImplementedException(time.ToString());

    public ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken) => throw new NotImplementedException();
}
