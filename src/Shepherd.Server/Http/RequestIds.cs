namespace Shepherd.Server.Http;

using System.Security.Cryptography;

/// <summary>Request ids: the client's <c>x-request-id</c> when it is sane, otherwise a new one.</summary>
public static class RequestIds
{
    public const string Header = "x-request-id";
    private const int MaxLength = 128;

    // A random per-process prefix plus a counter: unique across instances, cheap, and sortable per process.
    private static readonly string Prefix = "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
    private static long _counter;

    public static string Next()
    {
        var n = Interlocked.Increment(ref _counter);
        return string.Create(Prefix.Length + 12, n, static (span, value) =>
        {
            Prefix.AsSpan().CopyTo(span);
            ((ulong)value).TryFormat(span[Prefix.Length..], out _, "x12");
        });
    }

    /// <summary>Accepts ids of printable URL-safe characters only, so they cannot forge log lines or headers.</summary>
    public static bool IsAcceptable(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            {
                return false;
            }
        }

        return true;
    }
}
