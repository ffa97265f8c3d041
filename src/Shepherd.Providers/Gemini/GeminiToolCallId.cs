namespace Shepherd.Providers.Gemini;

using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;

/// <summary>
/// Tool-call ids for Gemini function calls, which carry the call's thought signature so the gateway stays stateless
/// (PROTOCOLS.md §3.6, §5.5): <c>call_&lt;8 random&gt;</c>, then <see cref="Separator"/> and the signature's bytes as
/// base64url when Gemini sent one. Every character is in <c>[A-Za-z0-9_-]</c>, so the id is also valid for Anthropic.
/// </summary>
public static class GeminiToolCallId
{
    /// <summary>Gemini's documented stand-in for a lost signature: validation is skipped for that part.</summary>
    public const string SkipSignature = "skip_thought_signature_validator";

    public const string Separator = "__sig_";

    private const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    /// <summary>A new id, carrying <paramref name="signature"/> (Gemini's base64 <c>thoughtSignature</c>) when given.</summary>
    public static string Create(string? signature)
    {
        var random = RandomNumberGenerator.GetString(Alphabet, 8);
        if (string.IsNullOrEmpty(signature))
        {
            return "call_" + random;
        }

        // The signature is opaque bytes sent as base64; re-encode them as base64url so the id needs no escaping.
        var maxBytes = (signature.Length * 3 / 4) + 3;
        var rented = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            if (!Convert.TryFromBase64String(signature, rented, out var written))
            {
                // Not base64 (never seen from Gemini): carry nothing; the replay then uses the sentinel.
                return "call_" + random;
            }

            return string.Concat("call_", random, Separator, Base64Url.EncodeToString(rented.AsSpan(0, written)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The thought signature (standard base64, as Gemini sent it) carried by <paramref name="id"/>, if any.</summary>
    public static string? Signature(string? id)
    {
        if (id is null)
        {
            return null;
        }

        var at = id.IndexOf(Separator, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var encoded = id.AsSpan(at + Separator.Length);
        if (encoded.IsEmpty || !Base64Url.IsValid(encoded, out var length))
        {
            return null;
        }

        var bytes = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            return Base64Url.TryDecodeFromChars(encoded, bytes, out var written) ? Convert.ToBase64String(bytes, 0, written) : null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }
}
