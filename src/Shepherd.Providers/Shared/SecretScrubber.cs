namespace Shepherd.Providers.Shared;

using System.Text.RegularExpressions;

/// <summary>Removes anything that looks like a key from upstream text before it can reach a client or a log.</summary>
public static partial class SecretScrubber
{
    public static string Scrub(string message, string? apiKey)
    {
        if (!string.IsNullOrEmpty(apiKey) && apiKey.Length >= 4)
        {
            message = message.Replace(apiKey, "***", StringComparison.Ordinal);
        }

        return KeyPattern().Replace(message, "***");
    }

    // OpenAI/Anthropic/DeepSeek style keys (sk-…, sk-ant-…, sk-proj-…) and Google API keys (AIza…), masked or not.
    [GeneratedRegex(@"\b(sk-[A-Za-z0-9_\-\*]{6,}|AIza[0-9A-Za-z_\-]{20,})", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();
}
