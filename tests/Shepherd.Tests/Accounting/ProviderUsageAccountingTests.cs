namespace Shepherd.Tests.Accounting;

using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Shepherd.Testing;

/// <summary>
/// Cached, cache-write and reasoning tokens from each provider's fake, through a real gateway, streamed and not: the
/// usage record holds them in OpenAI's terms and the hand-computed cost, and the client was told the same cost.
/// </summary>
public sealed class ProviderUsageAccountingTests
{
    private static StringContent Chat(string model, bool stream) => new(
        $$"""{"model":"{{model}}",{{(stream ? "\"stream\":true,\"stream_options\":{\"include_usage\":true}," : "")}}"messages":[{"role":"user","content":"What is the weather?"}]}""",
        Encoding.UTF8,
        "application/json");

    /// <summary>Sends one non-streamed and one streamed request; returns the cost the client was told each time.</summary>
    private static async Task<(decimal Plain, decimal Streamed)> SendBothAsync(GatewayHost gateway, string model)
    {
        using var plain = await gateway.Client.PostAsync("/v1/chat/completions", Chat(model, stream: false));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        var plainCost = decimal.Parse(plain.Headers.GetValues("x-shepherd-cost-usd").Single(), CultureInfo.InvariantCulture);

        using var streamed = await gateway.Client.PostAsync("/v1/chat/completions", Chat(model, stream: true));
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var events = Sse.DataEvents(await streamed.Content.ReadAsStringAsync());
        var usageChunk = JsonNode.Parse(events.Last(e => e.Contains("\"shepherd\"", StringComparison.Ordinal)))!;
        return (plainCost, usageChunk["shepherd"]!["cost_usd"]!.GetValue<decimal>());
    }

    private static void AssertRecords(IReadOnlyList<StoredUsage> records, (int Prompt, int Cached, int CacheWrite, int Completion, int Reasoning) tokens, decimal cost)
    {
        Assert.Equal(2, records.Count);
        Assert.Equal(1, records.Count(r => r.Streamed));
        foreach (var record in records)
        {
            Assert.Equal(tokens, (record.PromptTokens, record.CachedTokens, record.CacheWriteTokens, record.CompletionTokens, record.ReasoningTokens));
            Assert.Equal(cost, record.Cost);
            Assert.False(record.Estimated);
            Assert.Equal(200, record.Status);
        }
    }

    [Fact]
    public async Task OpenAI_CachedAndReasoningTokens_RecordedAndPricedAtTheirRates()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        (upstream.PromptTokens, upstream.CachedTokens, upstream.CompletionTokens, upstream.ReasoningTokens) = (2006, 1920, 300, 192);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers: [ { name: oai, type: openai, base_url: "{{upstream.BaseUrl}}", api_keys: [ sk-up ] } ]
            models:
              - name: o-test
                price: { input: 2.00, output: 8.00, cached_input: 0.50, reasoning: 12.00 }
                deployments: [ { provider: oai } ]
            """);

        var told = await SendBothAsync(gateway, "o-test");

        // 86 × 2 + 1920 × 0.5 + 108 × 8 + 192 × 12 = 172 + 960 + 864 + 2304 = 4300 per million.
        Assert.Equal((0.0043m, 0.0043m), told);
        AssertRecords(await UsageRecords.WaitForAsync(gateway, 2), (2006, 1920, 0, 300, 192), 0.0043m);
    }

    [Fact]
    public async Task Anthropic_CacheReadAndCreation_RecordedAndPricedAtTheirRates()
    {
        await using var upstream = await FakeAnthropic.StartAsync();
        (upstream.InputTokens, upstream.CacheReadTokens, upstream.CacheCreationTokens, upstream.OutputTokens) = (42, 1200, 100, 31);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers: [ { name: claude, type: anthropic, base_url: "{{upstream.BaseUrl}}", api_keys: [ {{upstream.ApiKey}} ] } ]
            models:
              - name: c-test
                price: { input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75 }
                deployments: [ { provider: claude, model: claude-sonnet-4-5 } ]
            """);

        var told = await SendBothAsync(gateway, "c-test");

        // Prompt = 42 + 1200 read + 100 written; 42 × 3 + 1200 × 0.3 + 100 × 3.75 + 31 × 15 = 126 + 360 + 375 + 465 = 1326.
        Assert.Equal((0.001326m, 0.001326m), told);
        AssertRecords(await UsageRecords.WaitForAsync(gateway, 2), (1342, 1200, 100, 31, 0), 0.001326m);
    }

    [Fact]
    public async Task Gemini_CachedContentAndThoughts_RecordedAndPricedAtTheirRates()
    {
        await using var upstream = await FakeGemini.StartAsync();
        (upstream.PromptTokens, upstream.CachedTokens, upstream.CandidatesTokens, upstream.ThoughtsTokens) = (60, 32, 18, 40);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers: [ { name: gem, type: gemini, base_url: "{{upstream.BaseUrl}}", api_keys: [ {{upstream.ApiKey}} ] } ]
            models:
              - name: g-test
                price: { input: 0.30, output: 2.50, cached_input: 0.075, reasoning: 3.50 }
                deployments: [ { provider: gem, model: gemini-2.5-flash } ]
            """);

        var told = await SendBothAsync(gateway, "g-test");

        // Completion = 18 + 40 thoughts; 28 × 0.3 + 32 × 0.075 + 18 × 2.5 + 40 × 3.5 = 8.4 + 2.4 + 45 + 140 = 195.8.
        Assert.Equal((0.0001958m, 0.0001958m), told);
        AssertRecords(await UsageRecords.WaitForAsync(gateway, 2), (60, 32, 0, 58, 40), 0.0001958m);
    }
}
