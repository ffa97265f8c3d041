namespace Shepherd.Routing;

using Shepherd.Providers;

/// <summary>A live provider with its upstream keys.</summary>
public sealed class ProviderHandle(IChatProvider provider, UpstreamKeyRing keys)
{
    public IChatProvider Provider { get; } = provider;

    public UpstreamKeyRing Keys { get; } = keys;

    public string Name => Provider.Name;
}
