namespace Shepherd.Accounting;

using Shepherd.Chat;
using Shepherd.Configuration;

/// <summary>Turns usage into money with a model's price (USD per 1M tokens). Money is <c>decimal</c>, never a float.</summary>
/// <remarks>Cached tokens are part of prompt tokens (charged at the cached rate, not added); cache-write tokens are
/// part of prompt tokens too (charged at the cache-write rate when set); reasoning tokens are part of completion
/// tokens (charged at the reasoning rate when set).</remarks>
public static class Pricing
{
    private const decimal PerMillion = 1_000_000m;

    public static decimal Cost(Usage usage, PriceConfig? price)
    {
        if (price is null)
        {
            return 0m;
        }

        var cached = Math.Min(usage.CachedTokens, usage.PromptTokens);
        var cacheWrite = Math.Min(usage.CacheWriteTokens, usage.PromptTokens - cached);
        var plainInput = usage.PromptTokens - cached - cacheWrite;
        var reasoning = price.Reasoning is null ? 0 : Math.Min(usage.ReasoningTokens, usage.CompletionTokens);
        var plainOutput = usage.CompletionTokens - reasoning;

        var total =
            (plainInput * price.Input) +
            (cached * (price.CachedInput ?? price.Input)) +
            (cacheWrite * (price.CacheWrite ?? price.Input)) +
            (plainOutput * price.Output) +
            (reasoning * (price.Reasoning ?? price.Output));
        return total / PerMillion;
    }

    /// <summary>The most a request can cost: every prompt token uncached, every allowed output token generated.</summary>
    public static decimal WorstCase(int promptTokens, int maxOutputTokens, PriceConfig? price)
    {
        if (price is null)
        {
            return 0m;
        }

        var input = Math.Max(price.Input, Math.Max(price.CacheWrite ?? 0m, price.CachedInput ?? 0m));
        var output = Math.Max(price.Output, price.Reasoning ?? 0m);
        return ((promptTokens * input) + (maxOutputTokens * output)) / PerMillion;
    }
}
