namespace Shepherd.Tests.Keys;

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Testing;

/// <summary>Virtual keys through a real gateway: created with the admin API, enforced on /v1, exact under concurrency.</summary>
public sealed class VirtualKeyEndToEndTests
{
    private const string Config = """
        providers:
          - name: sim
            type: simulated
            simulated: { completion_tokens: 10 }
        models:
          - name: sim-model
            aliases: [ sim-alias ]
            price: { input: 1.00, output: 2.00 }
            deployments: [ { provider: sim } ]
          - name: other-model
            price: { input: 1.00, output: 2.00 }
            deployments: [ { provider: sim } ]
        """;

    private const string ChatBody = """{"model":"sim-model","max_tokens":10,"messages":[{"role":"user","content":"Count the sheep in the meadow."}]}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<(string Id, string Secret)> CreateKeyAsync(GatewayHost gateway, object settings)
    {
        var response = await gateway.Client.PostAsJsonAsync("/admin/keys", settings);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var key = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (key["id"]!.GetValue<string>(), key["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task Rpm_200ConcurrentAgainstLimit50_Exactly50PassAnd150GetHeaders()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "rpm", rpm = 50 });
        using var client = gateway.CreateClient(secret);

        var responses = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.PostAsync("/v1/chat/completions", Json(ChatBody))));

        Assert.Equal(50, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToArray();
        Assert.Equal(150, refused.Length);
        foreach (var response in refused)
        {
            Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Equal("50", response.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal("0", response.Headers.GetValues("x-ratelimit-remaining-requests").Single());
            Assert.EndsWith("s", response.Headers.GetValues("x-ratelimit-reset-requests").Single(), StringComparison.Ordinal);
            using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("rate_limit_exceeded", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.All(responses.Where(r => r.IsSuccessStatusCode), r => Assert.True(r.Headers.Contains("x-ratelimit-remaining-requests")));
    }

    [Fact]
    public async Task Credit_100ConcurrentAgainstBalanceFor37_Exactly37PassAndBalanceExact()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var prompt = TokenEstimator.Default.EstimatePrompt(ChatRequestParser.Parse(Encoding.UTF8.GetBytes(ChatBody), out _)!);
        var cost = Pricing.Cost(new Usage(prompt, 10), new Shepherd.Configuration.PriceConfig { Input = 1.00m, Output = 2.00m });
        var (id, secret) = await CreateKeyAsync(gateway, new { name = "credit", credit_balance = (37 * cost) + (cost / 2) });
        using var client = gateway.CreateClient(secret);

        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => client.PostAsync("/v1/chat/completions", Json(ChatBody))));

        Assert.Equal(37, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.All(responses.Where(r => !r.IsSuccessStatusCode), r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));
        foreach (var ok in responses.Where(r => r.IsSuccessStatusCode))
        {
            Assert.Equal(cost, decimal.Parse(ok.Headers.GetValues("x-shepherd-cost-usd").Single(), System.Globalization.CultureInfo.InvariantCulture));
        }

        var usage = JsonNode.Parse(await gateway.Client.GetStringAsync($"/admin/keys/{id}/usage"))!;
        Assert.Equal(cost / 2, usage["credit_balance"]!.GetValue<decimal>());
        Assert.Equal(37 * cost, usage["spend"]!["total"]!.GetValue<decimal>());
        Assert.Equal(0m, usage["reserved"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task DailyBudget_FakeClockCrossesMidnight_BlockedBeforeAllowedAfter()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 23, 50, 0, TimeSpan.Zero));
        await using var gateway = await GatewayHost.StartAsync(Config, time);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "daily", daily_budget = 0.00005m });
        using var client = gateway.CreateClient(secret);

        // Each request costs about $0.00003: the first fits, the second would cross the daily budget.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);
        var blocked = await client.PostAsync("/v1/chat/completions", Json(ChatBody));
        Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
        using (var error = JsonDocument.Parse(await blocked.Content.ReadAsStringAsync()))
        {
            Assert.Equal("insufficient_quota", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.Equal(TimeSpan.FromMinutes(10), blocked.Headers.RetryAfter!.Delta);

        time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);
    }

    [Fact]
    public async Task Revoke_KeyRefusedOnTheNextRequest()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var (id, secret) = await CreateKeyAsync(gateway, new { name = "to-revoke" });
        using var client = gateway.CreateClient(secret);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.PostAsync($"/admin/keys/{id}/revoke", null)).StatusCode);

        var refused = await client.PostAsync("/v1/chat/completions", Json(ChatBody));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        var body = await refused.Content.ReadAsStringAsync();
        Assert.Contains("revoked", body, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Expired_KeyRefusedOnceTheClockPassesExpiry()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        await using var gateway = await GatewayHost.StartAsync(Config, time);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "expiring", expires_at = "2026-11-22T13:00:00Z" });
        using var client = gateway.CreateClient(secret);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);

        time.Advance(TimeSpan.FromHours(1));
        var refused = await client.PostAsync("/v1/chat/completions", Json(ChatBody));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("expired", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownKey_401InvalidApiKeyWithoutEchoingIt()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        const string Wrong = "sk-shp-NotARealKeyButLooksLikeOne0123456789abcdefgh";
        using var client = gateway.CreateClient(Wrong);
        var response = await client.PostAsync("/v1/chat/completions", Json(ChatBody));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("invalid_api_key", body, StringComparison.Ordinal);
        Assert.DoesNotContain(Wrong, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IpAllowList_AddressOutside_Gets403()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var (_, outside) = await CreateKeyAsync(gateway, new { name = "office", ip_allowlist = new[] { "10.0.0.0/8", "2001:db8::/32" } });
        var (_, inside) = await CreateKeyAsync(gateway, new { name = "local", ip_allowlist = new[] { "127.0.0.0/8", "::1" } });

        using var outsideClient = gateway.CreateClient(outside);
        var refused = await outsideClient.PostAsync("/v1/chat/completions", Json(ChatBody));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("ip_not_allowed", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var insideClient = gateway.CreateClient(inside);
        Assert.Equal(HttpStatusCode.OK, (await insideClient.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);
    }

    [Fact]
    public async Task IpAllowList_ForwardedForHonouredOnlyFromTrustedProxy()
    {
        await using var trusted = await GatewayHost.StartAsync("server: { trusted_proxies: [ 127.0.0.1 ] }\n" + Config);
        var (_, secret) = await CreateKeyAsync(trusted, new { name = "office", ip_allowlist = new[] { "203.0.113.0/24" } });
        using var client = trusted.CreateClient(secret);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(ChatBody) };
        request.Headers.Add("X-Forwarded-For", "203.0.113.7");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(request)).StatusCode);

        await using var untrusted = await GatewayHost.StartAsync(Config);
        var (_, other) = await CreateKeyAsync(untrusted, new { name = "office", ip_allowlist = new[] { "203.0.113.0/24" } });
        using var otherClient = untrusted.CreateClient(other);
        using var spoofed = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(ChatBody) };
        spoofed.Headers.Add("X-Forwarded-For", "203.0.113.7");
        Assert.Equal(HttpStatusCode.Forbidden, (await otherClient.SendAsync(spoofed)).StatusCode);
    }

    [Fact]
    public async Task AllowedModels_OtherModelGets403AndIsNotListed()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "narrow", allowed_models = new[] { "sim-*" } });
        using var client = gateway.CreateClient(secret);

        var refused = await client.PostAsync("/v1/chat/completions", Json(ChatBody.Replace("sim-model", "other-model", StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
        {
            Assert.Equal("model_not_allowed", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody.Replace("sim-model", "SIM-ALIAS", StringComparison.Ordinal)))).StatusCode);
        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToArray();
        Assert.Equal(["sim-model"], models);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/models/other-model")).StatusCode);
    }

    [Fact]
    public async Task VirtualKey_CannotUseTheAdminApi()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "plain" });
        using var client = gateway.CreateClient(secret);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task Secrets_DatabaseAndLogsNeverHoldTheKey()
    {
        await using var gateway = await GatewayHost.StartAsync("logging: { level: trace, bodies: true }\n" + Config);
        var (_, secret) = await CreateKeyAsync(gateway, new { name = "secret", rpm = 10 });
        using var client = gateway.CreateClient(secret);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ChatBody))).StatusCode);
        using var wrong = gateway.CreateClient(secret + "x");
        await wrong.PostAsync("/v1/chat/completions", Json(ChatBody));

        var random = secret["sk-shp-".Length..];
        Assert.DoesNotContain(gateway.Logs.Lines, line => line.Contains(random, StringComparison.Ordinal));
        Assert.DoesNotContain(gateway.Logs.Lines, line => line.Contains(GatewayHost.TestMasterKey, StringComparison.Ordinal));

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var files = Directory.GetFiles(Path.GetDirectoryName(gateway.DatabasePath)!);
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var bytes = await ReadSharedAsync(file);
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(random)));
        }
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}
