namespace Shepherd.Security;

using Shepherd.Keys;

/// <summary>Who is calling: the master key or a virtual key. Set once by authentication, read by every later stage.</summary>
public sealed class Caller
{
    public static readonly Caller Master = new("master", "master", null, null);

    public Caller(string keyId, string name, string? team, KeyEntry? key)
    {
        KeyId = keyId;
        Name = name;
        Team = team;
        Key = key;
    }

    /// <summary>Stable key id (never the key itself).</summary>
    public string KeyId { get; }

    public string Name { get; }

    public string? Team { get; }

    /// <summary>The virtual key and its limits; null for the master key.</summary>
    public KeyEntry? Key { get; }

    public bool IsMaster => Key is null;
}
