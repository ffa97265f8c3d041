namespace Shepherd.Security;

using System.Security.Cryptography;
using System.Text;

/// <summary>The master key, kept only as its SHA-256 digest and compared in constant time.</summary>
public sealed class MasterKey
{
    private readonly byte[] _digest;

    public MasterKey(string key, bool generated)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        _digest = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        Generated = generated;
    }

    /// <summary>The key was generated at start-up (no master key configured): development only.</summary>
    public bool Generated { get; }

    /// <summary>Creates a development key: <c>sk-shp-dev-</c> plus 256 random bits in base62.</summary>
    public static string GenerateDevelopmentKey() => "sk-shp-dev-" + Base62.Random(43);

    /// <summary>Compares a SHA-256 digest of a presented key with the master key's, in constant time.</summary>
    public bool MatchesDigest(ReadOnlySpan<byte> digest) => CryptographicOperations.FixedTimeEquals(digest, _digest);

    public bool Matches(ReadOnlySpan<char> presented)
    {
        // Hash first so the comparison is over equal-length digests: constant time whatever the input length.
        Span<byte> utf8 = presented.Length <= 256 ? stackalloc byte[presented.Length * 3] : new byte[presented.Length * 3];
        var length = Encoding.UTF8.GetBytes(presented, utf8);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(utf8[..length], digest);
        return CryptographicOperations.FixedTimeEquals(digest, _digest);
    }
}

/// <summary>Base62 text from a cryptographic random source.</summary>
public static class Base62
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary><paramref name="length"/> characters, each uniformly chosen (43 characters ≈ 256 bits).</summary>
    public static string Random(int length) => RandomNumberGenerator.GetString(Alphabet, length);
}
