namespace Shepherd.Tests.Accounting;

using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Testing;

/// <summary>
/// Streams through a real gateway: whatever happens to a stream, the request yields exactly one usage record with the
/// right tokens, cost, status, estimated flag and attempts, and the key's spend moves by exactly that cost.
/// </summary>
public sealed class StreamAccountingTests : IAsyncLifetime
{
    private static readonly PriceConfig Price = new() { Input = 2.00m, Output = 8.00m, CachedInput = 0.50m };

    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _upstream.PromptTokens = 1000;
        _upstream.CachedTokens = 600;
        _upstream.CompletionTokens = 200;
        _upstream.ReasoningTokens = 50;
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
                timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000 }
            models:
              - name: gpt-test
                price: { input: 2.00, output: 8.00, cached_input: 0.50 }
                deployments: [ { provider: fake, model: upstream-model } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static string Body(bool includeUsage) =>
        $$"""{"model":"gpt-test","stream":true{{(includeUsage ? ",\"stream_options\":{\"include_usage\":true}" : "")}},"messages":[{"role":"user","content":"Say hello."}]}""";

    private static HttpRequestMessage Post(string body) => new(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    /// <summary>The reported usage (1000 prompt of which 600 cached, 200 completion): 400×2 + 600×0.5 + 200×8 per million.</summary>
    private const decimal ReportedCost = 0.0027m;

    private static int EstimatedPrompt(string body) =>
        TokenEstimator.Default.EstimatePrompt(ChatRequestParser.Parse(Encoding.UTF8.GetBytes(body), out _)!);

    private static int Tokens(string text) => TokenEstimator.Default.Count(text.AsSpan());

    [Fact]
    public async Task Stream_IncludeUsage_OneRecordAndTheUsageChunkCarriesTheRecordedCost()
    {
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "streams" });
        using var client = _gateway.CreateClient(secret);

        using var response = await client.SendAsync(Post(Body(includeUsage: true)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        var usageChunk = JsonNode.Parse(events[^2])!;
        Assert.Equal(1000, usageChunk["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(ReportedCost, usageChunk["shepherd"]!["cost_usd"]!.GetValue<decimal>());
        var requestId = response.Headers.GetValues("x-request-id").Single();
        Assert.Equal(requestId, usageChunk["shepherd"]!["request_id"]!.GetValue<string>());

        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        Assert.Equal(requestId, record.RequestId);
        Assert.Equal(id, record.KeyId);
        Assert.Equal((1000, 600, 200, 50), (record.PromptTokens, record.CachedTokens, record.CompletionTokens, record.ReasoningTokens));
        Assert.Equal(ReportedCost, record.Cost);
        Assert.Equal(Pricing.Cost(new Usage(1000, 200, 600, 50), Price), record.Cost);
        Assert.Equal((200, null, false, 1, true), (record.Status, record.ErrorClass, record.Estimated, record.Attempts, record.Streamed));
        Assert.Equal(("gpt-test", "gpt-test", "fake", "fake/upstream-model"), (record.RequestedModel, record.ServedModel, record.Provider, record.Deployment));
        Assert.Equal(ReportedCost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task Stream_UsageNotRequested_ChunkStrippedButUsageRecorded()
    {
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "no-usage" });
        using var client = _gateway.CreateClient(secret);

        using var response = await client.SendAsync(Post(Body(includeUsage: false)));
        var body = await response.Content.ReadAsStringAsync();
        var events = Sse.DataEvents(body);
        Assert.Equal("[DONE]", events[^1]);
        Assert.All(events.Take(events.Count - 1), e => Assert.Null(JsonNode.Parse(e)!["usage"]));
        Assert.DoesNotContain("shepherd", body, StringComparison.Ordinal);
        Assert.Contains("include_usage", _upstream.Server.LastRequest.BodyText, StringComparison.Ordinal);

        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        Assert.Equal((1000, 600, 200, 50, false), (record.PromptTokens, record.CachedTokens, record.CompletionTokens, record.ReasoningTokens, record.Estimated));
        Assert.Equal(ReportedCost, record.Cost);
        Assert.Equal(ReportedCost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task Stream_UpstreamReportsNoUsage_EstimatedFromTheRelayedText()
    {
        _upstream.StreamUsage = false;
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "estimated" });
        using var client = _gateway.CreateClient(secret);
        var body = Body(includeUsage: true);

        using var response = await client.SendAsync(Post(body));
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal(_upstream.Reply, Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);

        // The client asked for usage: it gets the gateway's count, marked as estimated, with the cost recorded.
        var usageChunk = JsonNode.Parse(events[^2])!;
        var usage = new Usage(EstimatedPrompt(body), Tokens(_upstream.Reply));
        Assert.Equal("chatcmpl-fake", usageChunk["id"]!.GetValue<string>());
        Assert.Equal("upstream-model", usageChunk["model"]!.GetValue<string>());
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.Equal(usage.PromptTokens, usageChunk["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(usage.CompletionTokens, usageChunk["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.True(usageChunk["shepherd"]!["estimated"]!.GetValue<bool>());
        Assert.Equal(Pricing.Cost(usage, Price), usageChunk["shepherd"]!["cost_usd"]!.GetValue<decimal>());

        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        Assert.True(record.Estimated);
        Assert.Equal((usage.PromptTokens, 0, usage.CompletionTokens, 0), (record.PromptTokens, record.CachedTokens, record.CompletionTokens, record.ReasoningTokens));
        Assert.Equal(Pricing.Cost(usage, Price), record.Cost);
        Assert.Equal((200, null), (record.Status, record.ErrorClass));
        Assert.Equal(record.Cost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task Stream_UpstreamReportsNoUsageAndClientDidNotAsk_NoUsageChunk()
    {
        _upstream.StreamUsage = false;

        using var response = await _gateway.Client.SendAsync(Post(Body(includeUsage: false)));
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());

        Assert.Equal("[DONE]", events[^1]);
        Assert.All(events.Take(events.Count - 1), e => Assert.NotEmpty(JsonNode.Parse(e)!["choices"]!.AsArray()));
        Assert.True(Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1)).Estimated);
    }

    [Fact]
    public async Task Stream_ClientAbandonsMidStream_ChargedForWhatWasRelayed()
    {
        // One event every 5 s: the client reads the first word and leaves long before the second.
        _upstream.Faults.Always(new Fault { DelayBetweenEvents = TimeSpan.FromSeconds(5) });
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "abandoned" });
        using var client = _gateway.CreateClient(secret);
        var body = Body(includeUsage: true);

        using (var response = await client.SendAsync(Post(body), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var stream = await response.Content.ReadAsStreamAsync();
            var seen = new StringBuilder();
            var buffer = new byte[4096];
            while (!seen.ToString().Contains("Hello", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer);
                Assert.True(read > 0);
                seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }

        await _upstream.Server.WaitForCancellationsAsync();
        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        var usage = new Usage(EstimatedPrompt(body), Tokens("Hello"));
        Assert.Equal((499, "client_disconnected", true), (record.Status, record.ErrorClass, record.Estimated));
        Assert.Equal((usage.PromptTokens, usage.CompletionTokens), (record.PromptTokens, record.CompletionTokens));
        Assert.Equal(Pricing.Cost(usage, Price), record.Cost);
        Assert.Equal(record.Cost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task Stream_UpstreamDropsMidStream_ErrorEventAndChargedForWhatWasRelayed()
    {
        // Events: role, "Hello", " from", then the connection drops.
        _upstream.Faults.Always(new Fault { DropAfterEvents = 3, DelayBetweenEvents = TimeSpan.FromMilliseconds(50) });
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "dropped" });
        using var client = _gateway.CreateClient(secret);
        var body = Body(includeUsage: true);

        using var response = await client.SendAsync(Post(body));
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Contains("\"error\"", events[^1], StringComparison.Ordinal);
        Assert.Equal("Hello from", Sse.Content(events.Take(events.Count - 1)));

        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        var usage = new Usage(EstimatedPrompt(body), Tokens("Hello from"));
        Assert.Equal(200, record.Status);
        Assert.NotNull(record.ErrorClass);
        Assert.True(record.Estimated);
        Assert.Equal((usage.PromptTokens, usage.CompletionTokens), (record.PromptTokens, record.CompletionTokens));
        Assert.Equal(Pricing.Cost(usage, Price), record.Cost);
        Assert.Equal(record.Cost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task Stream_FirstDeploymentFails_SecondServesAtItsOwnPriceWithTwoAttempts()
    {
        await using var failing = await FakeOpenAI.StartAsync();
        failing.Faults.Always(Fault.WithStatus(500));
        await using var gateway = await GatewayHost.StartAsync($$"""
            routing: { max_attempts: 3, backoff_base_ms: 1, backoff_max_ms: 5 }
            providers:
              - { name: first, type: openai, base_url: "{{failing.BaseUrl}}", api_keys: [ sk-a ] }
              - { name: second, type: openai, base_url: "{{_upstream.BaseUrl}}", api_keys: [ sk-b ] }
            models:
              - name: gpt-test
                price: { input: 2.00, output: 8.00, cached_input: 0.50 }
                deployments:
                  - { provider: first, model: upstream-model, priority: 0 }
                  - { provider: second, model: upstream-model, priority: 1, price: { input: 1.00, output: 4.00 } }
            """);
        var (id, secret) = await UsageRecords.CreateKeyAsync(gateway, new { name = "fallback", credit_balance = 10 });
        using var client = gateway.CreateClient(secret);

        using var response = await client.SendAsync(Post(Body(includeUsage: true)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("2", response.Headers.GetValues("x-shepherd-attempts").Single());
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        var shown = JsonNode.Parse(events[^2])!["shepherd"]!["cost_usd"]!.GetValue<decimal>();

        var record = Assert.Single(await UsageRecords.WaitForAsync(gateway, 1));
        var cost = Pricing.Cost(new Usage(1000, 200, 600, 50), new PriceConfig { Input = 1.00m, Output = 4.00m });
        Assert.Equal(0.0018m, cost); // 1000×1 + 200×4 per million: the deployment sets no cached rate
        Assert.Equal((2, "second", "second/upstream-model", false), (record.Attempts, record.Provider, record.Deployment, record.Fallback));
        Assert.Equal((200, false), (record.Status, record.Estimated));
        Assert.Equal(cost, record.Cost);
        Assert.Equal(cost, shown);
        Assert.Equal(cost, await UsageRecords.SpendAsync(gateway, id));
        var usage = JsonNode.Parse(await gateway.Client.GetStringAsync($"/admin/keys/{id}/usage"))!;
        Assert.Equal(10m - cost, usage["credit_balance"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task NonStreamed_CostHeaderEqualsTheRecordAndTheSpend()
    {
        var (id, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "plain" });
        using var client = _gateway.CreateClient(secret);

        using var response = await client.SendAsync(Post("""{"model":"gpt-test","messages":[{"role":"user","content":"Say hello."}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var header = decimal.Parse(response.Headers.GetValues("x-shepherd-cost-usd").Single(), CultureInfo.InvariantCulture);

        var record = Assert.Single(await UsageRecords.WaitForAsync(_gateway, 1));
        Assert.Equal((ReportedCost, ReportedCost), (header, record.Cost));
        Assert.False(record.Streamed);
        Assert.Equal(ReportedCost, await UsageRecords.SpendAsync(_gateway, id));
    }

    [Fact]
    public async Task RepeatedClientRequestId_TwoRequests_TwoRecords()
    {
        using var first = Post("""{"model":"gpt-test","messages":[{"role":"user","content":"one"}]}""");
        first.Headers.Add("x-request-id", "client-chosen-id");
        using var second = Post("""{"model":"gpt-test","messages":[{"role":"user","content":"two"}]}""");
        second.Headers.Add("x-request-id", "client-chosen-id");

        Assert.Equal(HttpStatusCode.OK, (await _gateway.Client.SendAsync(first)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.Client.SendAsync(second)).StatusCode);

        var records = await UsageRecords.WaitForAsync(_gateway, 2);
        Assert.All(records, r => Assert.Equal("client-chosen-id", r.RequestId));
        Assert.NotEqual(records[0].RecordId, records[1].RecordId);
    }
}
