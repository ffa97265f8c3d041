namespace Shepherd.Keys;

using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Shepherd.Errors;
using Shepherd.Limits;
using Shepherd.Security;

/// <summary>
/// Every virtual key, in memory, found by the SHA-256 of the presented key; plus the master key. This is where a
/// request is authenticated. No database call: the admin API updates the store and this registry together, so an
/// update or revocation takes effect on the very next request.
/// </summary>
public sealed class KeyRegistry : ICallerAuthenticator
{
    public const string KeyPrefix = "sk-shp-";

    private static readonly CallerResult Missing = CallerResult.Fail(GatewayError.Unauthorized(
        "You didn't provide an API key. Provide it in the Authorization header as 'Bearer <key>'."));

    private static readonly CallerResult Unknown = CallerResult.Fail(GatewayError.Unauthorized(
        "Incorrect API key provided. Check the key you are using."));

    private static readonly CallerResult Revoked = CallerResult.Fail(GatewayError.Unauthorized(
        "This API key has been revoked."));

    private static readonly CallerResult Disabled = CallerResult.Fail(GatewayError.Unauthorized(
        "This API key is disabled."));

    private static readonly CallerResult MasterResult = CallerResult.Ok(Caller.Master);

    // Looked up by the first 8 bytes of the digest; the full digest is then compared in constant time.
    private readonly ConcurrentDictionary<ulong, KeyEntry> _byDigest = new();
    private readonly ConcurrentDictionary<string, KeyEntry> _byId = new(StringComparer.Ordinal);
    private readonly MasterKey _master;
    private readonly TimeProvider _time;

    public KeyRegistry(MasterKey master, TimeProvider time)
    {
        _master = master;
        _time = time;
    }

    public IEnumerable<KeyEntry> All => _byId.Values;

    public int Count => _byId.Count;

    public bool TryGet(string id, out KeyEntry entry) => _byId.TryGetValue(id, out entry!);

    /// <summary>Adds or replaces a key; the live counters of an existing key are kept.</summary>
    public void Put(KeyEntry entry)
    {
        _byId[entry.Id] = entry;
        _byDigest[Bucket(entry.Digest)] = entry;
    }

    public CallerResult Authenticate(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty)
        {
            return Missing;
        }

        Span<byte> digest = stackalloc byte[32];
        Digest(token, digest);
        if (_master.MatchesDigest(digest))
        {
            return MasterResult;
        }

        if (!_byDigest.TryGetValue(Bucket(digest), out var entry) || !CryptographicOperations.FixedTimeEquals(digest, entry.Digest))
        {
            return Unknown;
        }

        var record = entry.Record;
        if (record.RevokedAt is not null)
        {
            return Revoked;
        }

        if (!record.Enabled)
        {
            return Disabled;
        }

        if (record.ExpiresAt is { } expires && _time.GetUtcNow() >= expires)
        {
            return CallerResult.Fail(GatewayError.Unauthorized($"This API key expired at {expires:yyyy-MM-dd HH:mm:ss} UTC."));
        }

        return CallerResult.Ok(entry.Caller);
    }

    /// <summary>SHA-256 of the key's UTF-8 bytes.</summary>
    public static void Digest(ReadOnlySpan<char> token, Span<byte> destination)
    {
        var max = Encoding.UTF8.GetMaxByteCount(token.Length);
        Span<byte> utf8 = max <= 512 ? stackalloc byte[max] : new byte[max];
        var length = Encoding.UTF8.GetBytes(token, utf8);
        SHA256.HashData(utf8[..length], destination);
    }

    public static string DigestHex(string token)
    {
        Span<byte> digest = stackalloc byte[32];
        Digest(token, digest);
        return Convert.ToHexStringLower(digest);
    }

    private static ulong Bucket(ReadOnlySpan<byte> digest) => BitConverter.ToUInt64(digest[..8]);
}
