namespace Shepherd.Webhooks.Verification;

using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

/// <summary>
/// HMAC-SHA256 signatures over the exact raw body: <c>sha256=&lt;hex&gt;</c> (or bare hex) of the body, or, when the
/// source uses a timestamp header, of <c>{timestamp}.{body}</c> (Stripe's scheme: the timestamp is signed, so it
/// cannot be replaced to replay an old request).
/// </summary>
public static class WebhookSignature
{
    public const string Prefix = "sha256=";

    private const int DigestBytes = 32;

    /// <summary>
    /// Whether <paramref name="header"/> holds a valid signature of the payload under any of <paramref name="secrets"/>.
    /// The header may list several signatures separated by commas (a sender signing with an old and a new secret).
    /// </summary>
    /// <remarks>Every candidate is compared with every secret's digest in constant time; nothing returns early on
    /// the first differing byte.</remarks>
    public static bool Verify(ReadOnlySpan<byte> body, string? timestamp, string header, IReadOnlyList<byte[]> secrets)
    {
        Span<byte> expected = stackalloc byte[DigestBytes * 4];
        var digests = secrets.Count <= 4 ? expected[..(secrets.Count * DigestBytes)] : new byte[secrets.Count * DigestBytes];
        for (var i = 0; i < secrets.Count; i++)
        {
            Compute(secrets[i], timestamp, body, digests.Slice(i * DigestBytes, DigestBytes));
        }

        Span<byte> presented = stackalloc byte[DigestBytes];
        var valid = false;
        foreach (var range in header.AsSpan().Split(','))
        {
            var candidate = header.AsSpan()[range].Trim();
            if (candidate.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
            {
                candidate = candidate[Prefix.Length..];
            }

            if (candidate.Length != DigestBytes * 2 ||
                Convert.FromHexString(candidate, presented, out _, out var written) != OperationStatus.Done ||
                written != DigestBytes)
            {
                continue;
            }

            for (var i = 0; i < secrets.Count; i++)
            {
                valid |= CryptographicOperations.FixedTimeEquals(presented, digests.Slice(i * DigestBytes, DigestBytes));
            }
        }

        return valid;
    }

    /// <summary>The header value (<c>sha256=&lt;hex&gt;</c>) for a payload.</summary>
    public static string Sign(byte[] secret, string? timestamp, ReadOnlySpan<byte> body)
    {
        Span<byte> digest = stackalloc byte[DigestBytes];
        Compute(secret, timestamp, body, digest);
        return Prefix + Convert.ToHexStringLower(digest);
    }

    /// <summary>Parses a unix-seconds timestamp and checks it is within <paramref name="tolerance"/> of now.</summary>
    public static bool IsFresh(string? timestamp, DateTimeOffset now, TimeSpan tolerance)
    {
        if (timestamp is null || timestamp.Length > 20 ||
            !long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) ||
            seconds > 253_402_300_799)
        {
            return false;
        }

        return (now - DateTimeOffset.FromUnixTimeSeconds(seconds)).Duration() <= tolerance;
    }

    private static void Compute(byte[] secret, string? timestamp, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, secret);
        if (timestamp is not null)
        {
            hmac.AppendData(Encoding.UTF8.GetBytes(timestamp));
            hmac.AppendData("."u8);
        }

        hmac.AppendData(body);
        hmac.GetHashAndReset(destination);
    }
}
