namespace Shepherd.Configuration;

/// <summary>The provider types Shepherd ships adapters for.</summary>
public static class ProviderTypes
{
    public const string OpenAI = "openai";
    public const string Anthropic = "anthropic";
    public const string Gemini = "gemini";
    public const string Simulated = "simulated";

    public static readonly IReadOnlyList<string> All = [OpenAI, Anthropic, Gemini, Simulated];

    public static string? DefaultBaseUrl(string type) => type switch
    {
        Anthropic => "https://api.anthropic.com",
        Gemini => "https://generativelanguage.googleapis.com/v1beta",
        _ => null,
    };
}
