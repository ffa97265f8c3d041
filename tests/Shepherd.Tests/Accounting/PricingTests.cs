namespace Shepherd.Tests.Accounting;

using System.Text;
using System.Text.Json;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers.Anthropic;
using Shepherd.Providers.Gemini;
using Shepherd.Providers.OpenAI;

/// <summary>
/// Cost arithmetic against recorded provider answers: each provider's usage is read the way the adapter reads it, then
/// priced; every expected value is worked out by hand in the comment beside it.
/// </summary>
public sealed class PricingTests
{
    private static string Transcript(string provider, string name) =>
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Transcripts", provider, name));

    [Fact]
    public void Cost_OpenAIUsageWithCachedAndReasoning_HandComputed()
    {
        var json = """{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":192}}"""u8;
        var reader = new Utf8JsonReader(json);
        reader.Read();
        var usage = OpenAIWire.ReadUsage(ref reader);
        Assert.Equal(new Usage(2006, 300, 1920, 192), usage);

        // 86 uncached × 2.00 + 1920 cached × 0.50 + 300 output × 8.00 = 172 + 960 + 2400 = 3532 per million.
        Assert.Equal(0.003532m, Pricing.Cost(usage, new PriceConfig { Input = 2.00m, Output = 8.00m, CachedInput = 0.50m }));

        // With a reasoning rate: 108 plain output × 8.00 + 192 reasoning × 12.00 = 864 + 2304; 172 + 960 + 3168 = 4300.
        Assert.Equal(0.0043m, Pricing.Cost(usage, new PriceConfig { Input = 2.00m, Output = 8.00m, CachedInput = 0.50m, Reasoning = 12.00m }));

        // Without a cached rate, cached tokens are charged at the input rate: 2006 × 2 + 300 × 8 = 4012 + 2400.
        Assert.Equal(0.006412m, Pricing.Cost(usage, new PriceConfig { Input = 2.00m, Output = 8.00m }));
    }

    [Fact]
    public void Cost_DeepSeekCacheHitTokens_CountAsCached()
    {
        var json = """{"prompt_tokens":1000,"completion_tokens":100,"prompt_cache_hit_tokens":800,"prompt_cache_miss_tokens":200}"""u8;
        var reader = new Utf8JsonReader(json);
        reader.Read();
        var usage = OpenAIWire.ReadUsage(ref reader);
        Assert.Equal(new Usage(1000, 100, 800), usage);

        // 200 × 0.28 + 800 × 0.028 + 100 × 0.42 = 56 + 22.4 + 42 = 120.4 per million.
        Assert.Equal(0.0001204m, Pricing.Cost(usage, new PriceConfig { Input = 0.28m, Output = 0.42m, CachedInput = 0.028m }));
    }

    [Fact]
    public void Cost_AnthropicCacheReadAndCreation_HandComputed()
    {
        Assert.True(AnthropicMapping.TryTranslateResponse(
            Encoding.UTF8.GetBytes(Transcript("anthropic", "response_text_cache.anthropic.json")), null, 1760000000, "m", out _, out var usage, out var missing));
        Assert.False(missing);

        // Anthropic's input_tokens (42) excludes cache reads (1200) and cache writes (100): prompt = 1342.
        Assert.Equal(new Usage(1342, 31, CachedTokens: 1200, ReasoningTokens: 0, CacheWriteTokens: 100), usage);

        // 42 × 3.00 + 1200 × 0.30 + 100 × 3.75 + 31 × 15.00 = 126 + 360 + 375 + 465 = 1326 per million.
        var price = new PriceConfig { Input = 3.00m, Output = 15.00m, CachedInput = 0.30m, CacheWrite = 3.75m };
        Assert.Equal(0.001326m, Pricing.Cost(usage, price));

        // Without a cache-write rate the writes are charged as input: 142 × 3 + 360 + 465 = 1251.
        Assert.Equal(0.001251m, Pricing.Cost(usage, price with { CacheWrite = null }));
    }

    [Fact]
    public void Cost_GeminiCachedContentAndThoughts_HandComputed()
    {
        using var doc = JsonDocument.Parse(Transcript("gemini", "response-text.json"));
        var usage = GeminiMapping.ReadUsage(doc.RootElement.GetProperty("usageMetadata"));

        // prompt = 57 + 3 tool-use prompt tokens; completion = 18 candidates + 40 thoughts; 32 of the prompt cached.
        Assert.Equal(new Usage(60, 58, 32, 40), usage);

        // 28 × 0.30 + 32 × 0.075 + 18 × 2.50 + 40 × 3.50 = 8.4 + 2.4 + 45 + 140 = 195.8 per million.
        var price = new PriceConfig { Input = 0.30m, Output = 2.50m, CachedInput = 0.075m, Reasoning = 3.50m };
        Assert.Equal(0.0001958m, Pricing.Cost(usage, price));
    }

    [Fact]
    public void Cost_BelowANanoDollar_RoundsHalfAwayFromZeroToNineDecimals()
    {
        // 1 token at $0.0015 per million = $0.0000000015 → 0.000000002; 1 at 0.0014 → 0.000000001.
        Assert.Equal(0.000000002m, Pricing.Cost(new Usage(1, 0), new PriceConfig { Input = 0.0015m }));
        Assert.Equal(0.000000001m, Pricing.Cost(new Usage(1, 0), new PriceConfig { Input = 0.0014m }));
        Assert.Equal(0m, Pricing.Cost(new Usage(0, 0), new PriceConfig { Input = 5m, Output = 5m }));
        Assert.Equal(0m, Pricing.Cost(new Usage(1000, 1000), null));
    }

    [Fact]
    public void At_PriceHistory_LatestEffectiveEntryWins()
    {
        var current = new PriceConfig { Input = 3m, Output = 15m };
        var history = new List<PriceConfig>
        {
            new() { EffectiveFrom = "2026-12-01", Input = 2m, Output = 10m },
            new() { EffectiveFrom = "2026-06-01T12:00:00Z", Input = 4m, Output = 20m },
        };

        Assert.Same(current, Pricing.At(current, history, new DateTimeOffset(2026, 6, 1, 11, 59, 59, TimeSpan.Zero)));
        Assert.Same(history[1], Pricing.At(current, history, new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero)));
        Assert.Same(history[0], Pricing.At(current, history, new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero)));
    }
}
