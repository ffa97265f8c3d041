namespace Shepherd.Security;

/// <summary>Who is calling: the master key or a virtual key. Set once by authentication, read by every later stage.</summary>
public sealed class Caller
{
    public static readonly Caller Master = new("master", "master", isMaster: true);

    public Caller(string keyId, string name, bool isMaster = false)
    {
        KeyId = keyId;
        Name = name;
        IsMaster = isMaster;
    }

    /// <summary>Stable key id (never the key itself).</summary>
    public string KeyId { get; }

    public string Name { get; }

    public bool IsMaster { get; }
}
