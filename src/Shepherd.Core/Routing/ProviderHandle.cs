namespace Shepherd.Routing;

using Shepherd.Providers;

/// <summary>A live provider with its upstream keys.</summary>
public sealed class ProviderHandle(IChatProvider provider, UpstreamKeyRing keys, TimeSpan? firstByteTimeout = null)
{
    public IChatProvider Provider { get; } = provider;

    public UpstreamKeyRing Keys { get; } = keys;

    public string Name => Provider.Name;

    /// <summary>How long a stream may take to its first content chunk before the attempt fails over.</summary>
    public TimeSpan FirstByteTimeout { get; } = firstByteTimeout ?? TimeSpan.FromSeconds(65);
}
