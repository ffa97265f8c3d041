namespace Shepherd.Chat;

/// <summary>Token usage in OpenAI's terms: cached tokens are part of prompt tokens, reasoning tokens part of completion tokens.</summary>
public readonly record struct Usage(
    int PromptTokens,
    int CompletionTokens,
    int CachedTokens = 0,
    int ReasoningTokens = 0,
    int CacheWriteTokens = 0)
{
    public int TotalTokens => PromptTokens + CompletionTokens;

    public bool IsEmpty => PromptTokens == 0 && CompletionTokens == 0;
}
