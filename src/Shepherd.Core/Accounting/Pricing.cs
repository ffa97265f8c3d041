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

    /// <summary>Costs are kept to the nano-dollar (9 decimals): the unit usage records store, so every sum reconciles exactly.</summary>
    public const int Decimals = 9;

    /// <summary>The price in effect at <paramref name="at"/>: the latest dated entry of the history not after it, else the undated price.</summary>
    public static PriceConfig? At(PriceConfig? current, IReadOnlyList<PriceConfig> history, DateTimeOffset at)
    {
        PriceConfig? chosen = current is { EffectiveFrom: { } from } && ParseEffective(from) > at ? null : current;
        var chosenFrom = current?.EffectiveFrom is { } currentFrom ? ParseEffective(currentFrom) : DateTimeOffset.MinValue;
        foreach (var price in history)
        {
            var effective = price.EffectiveFrom is { } text ? ParseEffective(text) : DateTimeOffset.MinValue;
            if (effective <= at && (chosen is null || effective >= chosenFrom))
            {
                chosen = price;
                chosenFrom = effective;
            }
        }

        return chosen;
    }

    /// <summary>Parses an <c>effective_from</c>: a date (midnight UTC) or an ISO 8601 date-time.</summary>
    public static DateTimeOffset ParseEffective(string text) =>
        DateOnly.TryParseExact(text, "yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var day)
            ? new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)
            : DateTimeOffset.Parse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);

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
        return Math.Round(total / PerMillion, Decimals, MidpointRounding.AwayFromZero);
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
        // Rounded up, so a reservation is never below the cost it stands for.
        var worst = ((promptTokens * input) + (maxOutputTokens * output)) / PerMillion;
        return Math.Round(worst, Decimals, MidpointRounding.ToPositiveInfinity);
    }
}
