namespace Shepherd.Routing;

/// <summary>The upstream keys of one provider, handed out round-robin.</summary>
/// <remarks>Keys come from configuration or the environment and never leave the process: they are not logged,
/// not returned, and <see cref="ToString"/> shows only how many there are.</remarks>
public sealed class UpstreamKeyRing
{
    private readonly string[] _keys;
    private uint _next;

    public UpstreamKeyRing(IReadOnlyList<string> keys)
    {
        _keys = keys.Where(k => !string.IsNullOrEmpty(k)).ToArray();
    }

    public int Count => _keys.Length;

    /// <summary>The next key, or an empty string for a keyless upstream (a local vLLM, the simulator).</summary>
    public (string Key, int Index) Next()
    {
        if (_keys.Length == 0)
        {
            return (string.Empty, -1);
        }

        var i = (int)(Interlocked.Increment(ref _next) % (uint)_keys.Length);
        return (_keys[i], i);
    }

    /// <summary>Every configured key, for scrubbing upstream error messages.</summary>
    internal IReadOnlyList<string> All => _keys;

    public override string ToString() => $"{_keys.Length} key(s)";
}
