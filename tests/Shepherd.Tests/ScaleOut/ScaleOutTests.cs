namespace Shepherd.Tests.ScaleOut;

using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Testing;

/// <summary>
/// Three <c>shepherd serve</c> processes, one Redis, one PostgreSQL, requests spread round-robin: every limit, budget,
/// revocation and breaker holds across all of them as if they were one gateway.
/// </summary>
public sealed class ScaleOutTests(ScaleOutCluster cluster) : IClassFixture<ScaleOutCluster>
{
    private const string ChatBody = """{"model":"sim-model","max_tokens":10,"messages":[{"role":"user","content":"Count the sheep in the meadow."}]}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<HttpResponseMessage> ChatAsync(ShepherdProcess instance, string key, string body = ChatBody)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, instance.BaseUrl + "/v1/chat/completions") { Content = Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await Shared.SendAsync(request);
    }

    private static readonly HttpClient Shared = new(new SocketsHttpHandler { MaxConnectionsPerServer = 512 }) { Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task Rpm60_300ConcurrentAcrossThreeInstances_Exactly60Succeed()
    {
        var (_, secret) = await cluster.CreateKeyAsync(0, new { name = "rpm", rpm = 60 });
        await KnownEverywhereAsync(secret);

        var responses = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => ChatAsync(cluster.Next(), secret)));

        Assert.True(60 == responses.Count(r => r.StatusCode == HttpStatusCode.OK), string.Join(", ", responses.GroupBy(r => r.StatusCode).Select(g => $"{g.Key}: {g.Count()}")) + "\n" + cluster.Diagnostics());
        Assert.All(responses.Where(r => r.StatusCode != HttpStatusCode.OK), r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));
        var refused = responses.First(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.Equal("0", refused.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
    }

    [Fact]
    public async Task Credit25_100ConcurrentAcrossThreeInstances_Exactly25AndBalanceExactEverywhere()
    {
        var prompt = TokenEstimator.Default.EstimatePrompt(ChatRequestParser.Parse(Encoding.UTF8.GetBytes(ChatBody), out _)!);
        var cost = Pricing.Cost(new Usage(prompt, 10), new Shepherd.Configuration.PriceConfig { Input = 1.00m, Output = 2.00m });
        var (id, secret) = await cluster.CreateKeyAsync(1, new { name = "credit", credit_balance = (25 * cost) + (cost / 2) });
        await KnownEverywhereAsync(secret);

        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => ChatAsync(cluster.Next(), secret)));

        Assert.True(25 == responses.Count(r => r.StatusCode == HttpStatusCode.OK), string.Join(", ", responses.GroupBy(r => r.StatusCode).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.All(responses.Where(r => !r.IsSuccessStatusCode), r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));

        // The live balance, asked of any instance, is exact; so is what the three saved to PostgreSQL. (Settlements
        // are pipelined after each response: the first read waits until the last one has run.)
        await WaitUntilAsync(async () => JsonNode.Parse(await cluster.Admin[0].GetStringAsync($"/admin/keys/{id}/usage"))!["reserved"]!.GetValue<decimal>() == 0m, TimeSpan.FromSeconds(10));
        foreach (var admin in cluster.Admin)
        {
            var usage = JsonNode.Parse(await admin.GetStringAsync($"/admin/keys/{id}/usage"))!;
            Assert.Equal(cost / 2, usage["credit_balance"]!.GetValue<decimal>());
            Assert.Equal(25 * cost, usage["spend"]!["total"]!.GetValue<decimal>());
            Assert.Equal(0m, usage["reserved"]!.GetValue<decimal>());
        }

        var key = JsonNode.Parse(await cluster.Admin[2].GetStringAsync($"/admin/keys/{id}"))!;
        Assert.Equal(cost / 2, key["credit_balance"]!.GetValue<decimal>());
        await WaitUntilAsync(async () => await StoredBalanceAsync(id) == cost / 2, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Revoke_OnInstance1_RefusedByInstances2And3WithinOneSecond()
    {
        var (id, secret) = await cluster.CreateKeyAsync(0, new { name = "to-revoke" });

        // Created on instance 1 and known to the others (the timing measured is the revocation's, below).
        await WaitUntilAsync(async () => (await ChatAsync(cluster.Instances[1], secret)).IsSuccessStatusCode && (await ChatAsync(cluster.Instances[2], secret)).IsSuccessStatusCode, TimeSpan.FromSeconds(10));

        var revoked = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.OK, (await cluster.Admin[0].PostAsync($"/admin/keys/{id}/revoke", null)).StatusCode);
        var refused = new bool[3];
        while (!(refused[1] && refused[2]) && revoked.Elapsed < TimeSpan.FromSeconds(5))
        {
            for (var i = 1; i < 3; i++)
            {
                refused[i] |= (await ChatAsync(cluster.Instances[i], secret)).StatusCode == HttpStatusCode.Unauthorized;
            }
        }

        var elapsed = revoked.Elapsed;
        Assert.True(refused[1] && refused[2], "the revocation never reached instances 2 and 3\n" + cluster.Diagnostics());
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"took {elapsed.TotalMilliseconds:F0} ms");
        using var error = JsonDocument.Parse(await (await ChatAsync(cluster.Instances[2], secret)).Content.ReadAsStringAsync());
        Assert.Contains("revoked", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Breaker_OpenedByFailuresOnInstance1_OpenOnInstance2AndNothingSent()
    {
        cluster.Flaky.Faults.Always(Fault.WithStatus(500));
        const string Body = """{"model":"flaky-model","messages":[{"role":"user","content":"hi"}]}""";

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.BadGateway, (await ChatAsync(cluster.Instances[0], ScaleOutCluster.MasterKey, Body)).StatusCode);
        }

        var sent = cluster.Flaky.Server.StartedCount;
        await WaitUntilAsync(async () => BreakerState(await cluster.Admin[1].GetStringAsync("/admin/routing"), "flaky/up") == "open", TimeSpan.FromSeconds(5));
        Assert.Equal("open", BreakerState(await cluster.Admin[2].GetStringAsync("/admin/routing"), "flaky/up"));

        // Instance 2 never saw a failure, yet refuses at once without calling the upstream.
        var refused = await ChatAsync(cluster.Instances[1], ScaleOutCluster.MasterKey, Body);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(sent, cluster.Flaky.Server.StartedCount);
        cluster.Flaky.Faults.Clear();
    }

    [Fact]
    public async Task UpstreamKeyRefused_OnInstance1_OutOnInstance3()
    {
        cluster.Keyed.RefuseKey("sk-upstream-refused");
        const string Body = """{"model":"keyed-model","messages":[{"role":"user","content":"hi"}]}""";

        // Round-robin over the two keys: within two requests the refused key is tried and taken out.
        for (var i = 0; i < 2; i++)
        {
            await ChatAsync(cluster.Instances[0], ScaleOutCluster.MasterKey, Body);
        }

        await WaitUntilAsync(async () => KeyState(await cluster.Admin[2].GetStringAsync("/admin/routing"), "keyed#0") == "out", TimeSpan.FromSeconds(5));
        Assert.Equal("active", KeyState(await cluster.Admin[2].GetStringAsync("/admin/routing"), "keyed#1"));
    }

    [Fact]
    public async Task Ready_EveryInstance_ReportsSharedStateAndStorageOk()
    {
        foreach (var admin in cluster.Admin)
        {
            using var ready = JsonDocument.Parse(await admin.GetStringAsync("/health/ready"));
            Assert.Equal("ready", ready.RootElement.GetProperty("status").GetString());
            Assert.Equal("ok", ready.RootElement.GetProperty("checks").GetProperty("state").GetString());
            Assert.Equal("ok", ready.RootElement.GetProperty("checks").GetProperty("storage").GetString());
            Assert.Equal("redis", ready.RootElement.GetProperty("state").GetString());
            Assert.Equal("postgres", ready.RootElement.GetProperty("storage").GetString());
        }
    }

    /// <summary>Waits until every instance knows a key just created on one of them (GET /v1/models uses no limit). A
    /// precondition, not the timing under test: the bound is generous.</summary>
    private async Task KnownEverywhereAsync(string secret)
    {
        foreach (var instance in cluster.Instances)
        {
            using var client = instance.CreateClient(secret);
            await WaitUntilAsync(async () => (await client.GetAsync("/v1/models")).IsSuccessStatusCode, TimeSpan.FromSeconds(10));
        }
    }

    private static string? BreakerState(string routing, string deployment)
    {
        using var json = JsonDocument.Parse(routing);
        return json.RootElement.GetProperty("deployments").EnumerateArray()
            .First(d => d.GetProperty("deployment").GetString() == deployment)
            .GetProperty("breaker").GetProperty("state").GetString();
    }

    private static string? KeyState(string routing, string keyId)
    {
        using var json = JsonDocument.Parse(routing);
        return json.RootElement.GetProperty("providers").EnumerateArray()
            .SelectMany(p => p.GetProperty("keys").EnumerateArray())
            .First(k => k.GetProperty("id").GetString() == keyId)
            .GetProperty("state").GetString();
    }

    private async Task<decimal?> StoredBalanceAsync(string id)
    {
        await using var connection = new NpgsqlConnection(cluster.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT credit_balance FROM virtual_keys WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteScalarAsync() as decimal?;
    }

    private Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout) =>
        Eventually.HoldsAsync(condition, "the cluster's state", timeout, cluster.Diagnostics);
}
