namespace Shepherd.Tests.ScaleOut;

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Shepherd.Accounting;
using Shepherd.Testing;
using Shepherd.Tests.Webhooks;

/// <summary>
/// When Redis or PostgreSQL do not answer: nothing crashes, readiness says "degraded" (still 200), limits follow
/// <c>state.on_failure</c>, usage spills to the local file and is replayed exactly once when the database is back,
/// and webhooks are refused with 503 (never acknowledged unless stored) until it is.
/// </summary>
public sealed class DegradedStateTests
{
    private const string Models = """
        providers:
          - name: sim
            type: simulated
            simulated: { completion_tokens: 10 }
        models:
          - name: sim-model
            price: { input: 1.00, output: 2.00 }
            deployments: [ { provider: sim } ]
        """;

    private static StringContent Chat() =>
        new("""{"model":"sim-model","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");

    private static string DeadRedis() => $"\"127.0.0.1:{RedisServer.FreePort()},connectTimeout=200\"";

    private static async Task<(HttpStatusCode Status, JsonElement Body)> ReadyAsync(GatewayHost gateway)
    {
        var response = await gateway.Client.GetAsync("/health/ready");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, document.RootElement.Clone());
    }

    private static async Task<string> CreateKeyAsync(GatewayHost gateway, object settings)
    {
        var response = await gateway.Client.PostAsJsonAsync("/admin/keys", settings);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!.GetValue<string>();
    }

    private static Task EventuallyAsync(Func<Task<bool>> condition, int seconds = 10) =>
        Eventually.HoldsAsync(condition, "the expected state", TimeSpan.FromSeconds(seconds));

    [Fact]
    public async Task RedisUnreachable_FailOpen_StartsServesWithLocalLimitsAndReportsDegraded()
    {
        await using var gateway = await GatewayHost.StartAsync($"state: {{ redis: {DeadRedis()}, on_failure: open }}\n{Models}");
        var secret = await CreateKeyAsync(gateway, new { name = "limited", rpm = 2 });
        using var client = gateway.CreateClient(secret);

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsync("/v1/chat/completions", Chat())).StatusCode);

        var (status, ready) = await ReadyAsync(gateway);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("degraded", ready.GetProperty("status").GetString());
        Assert.Equal("degraded", ready.GetProperty("checks").GetProperty("state").GetString());
        Assert.Equal("ok", ready.GetProperty("checks").GetProperty("storage").GetString());
    }

    [Fact]
    public async Task RedisUnreachable_FailClosed_LimitedKeysGet503OthersServed()
    {
        await using var gateway = await GatewayHost.StartAsync($"state: {{ redis: {DeadRedis()}, on_failure: closed }}\n{Models}");
        var limited = await CreateKeyAsync(gateway, new { name = "limited", rpm = 100 });
        var unlimited = await CreateKeyAsync(gateway, new { name = "unlimited" });

        using var limitedClient = gateway.CreateClient(limited);
        var refused = await limitedClient.PostAsync("/v1/chat/completions", Chat());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
        {
            Assert.Equal("limits_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        using var unlimitedClient = gateway.CreateClient(unlimited);
        Assert.Equal(HttpStatusCode.OK, (await unlimitedClient.PostAsync("/v1/chat/completions", Chat())).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
    }

    [Fact]
    public async Task RedisRestarted_Resynced_ReadyAgainAndLimitsSharedAgain()
    {
        var redis = await RedisServer.StartPrivateAsync();
        var port = redis.Port;
        try
        {
            await using var gateway = await GatewayHost.StartAsync($"state: {{ redis: \"{redis.Endpoint}\" }}\n{Models}");
            Assert.Equal("ready", (await ReadyAsync(gateway)).Body.GetProperty("status").GetString());

            await redis.DisposeAsync();
            await EventuallyAsync(async () => (await ReadyAsync(gateway)).Body.GetProperty("checks").GetProperty("state").GetString() == "degraded");
            Assert.Equal(HttpStatusCode.OK, (await gateway.Client.PostAsync("/v1/chat/completions", Chat())).StatusCode);

            // An empty Redis comes back: the instance reconnects, resubscribes and re-seeds its keys' counters.
            redis = await RedisServer.StartPrivateAsync(port);
            await EventuallyAsync(async () => (await ReadyAsync(gateway)).Body.GetProperty("status").GetString() == "ready", 20);
            var secret = await CreateKeyAsync(gateway, new { name = "after", rpm = 1 });
            using var client = gateway.CreateClient(secret);
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
            Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
            Assert.False(gateway.Services.GetRequiredService<Shepherd.Storage.Redis.RedisLimiter>().Degraded);
        }
        finally
        {
            await redis.DisposeAsync();
        }
    }

    [Fact]
    public async Task PostgresUnavailable_RequestsServedUsageSpilledThenReplayedOnce()
    {
        var server = await PostgresServer.StartAsync();
        await using var database = await server.CreateDatabaseAsync();
        var directory = Directory.CreateTempSubdirectory("shepherd-spill-").FullName;
        try
        {
            await using var gateway = await GatewayHost.StartAsync($"""
                storage: "{database.ConnectionString}"
                usage: {"{"} spill_path: "{Path.Combine(directory, "spill.jsonl")}", write_timeout_ms: 1000 {"}"}
                {Models}
                """);
            var recorder = gateway.Services.GetRequiredService<UsageRecorder>();
            Assert.Equal(HttpStatusCode.OK, (await gateway.Client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
            await EventuallyAsync(async () => await CountAsync(database) == 1);

            await SetAvailableAsync(server, database, available: false);
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await gateway.Client.PostAsync("/v1/chat/completions", Chat())).StatusCode);
            }

            await EventuallyAsync(() => Task.FromResult(recorder.Spilled >= 5));
            var (status, ready) = await ReadyAsync(gateway);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("degraded", ready.GetProperty("status").GetString());
            Assert.Equal("unreachable", ready.GetProperty("checks").GetProperty("storage").GetString());

            await SetAvailableAsync(server, database, available: true);
            await EventuallyAsync(async () => recorder.Replayed >= 5 && await CountAsync(database) == 6);
            Assert.Equal("ready", (await ReadyAsync(gateway)).Body.GetProperty("status").GetString());
            Assert.Equal(0, recorder.Dropped);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task PostgresUnavailable_WebhooksAnswered503AndReadinessSaysSoThenAcceptedAndProcessedOnceWhenBack()
    {
        var server = await PostgresServer.StartAsync();
        await using var database = await server.CreateDatabaseAsync();
        var directory = Directory.CreateTempSubdirectory("shepherd-spill-").FullName;
        try
        {
            await using var gateway = await GatewayHost.StartAsync(WebhookFixtures.Config(
                webhooksExtra: "workers: 2",
                top: $"storage: \"{database.ConnectionString}\"\nusage: {{ spill_path: \"{Path.Combine(directory, "spill.jsonl")}\" }}"));
            using var client = gateway.CreateClient(null);
            var before = WebhookFixtures.Event("agent.completed", id: "before");
            var during = WebhookFixtures.Event("agent.completed", id: "during");
            Assert.Equal(HttpStatusCode.Accepted, (await WebhookFixtures.SendAsync(client, before)).StatusCode);
            await EventuallyAsync(async () => await CountAsync(database, "webhook_results") == 1);

            await SetAvailableAsync(server, database, available: false);
            using (var refused = await WebhookFixtures.SendAsync(client, during))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
                using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
                Assert.Equal("unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
            }

            var (status, ready) = await ReadyAsync(gateway);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("degraded", ready.GetProperty("status").GetString());
            Assert.Equal("unreachable", ready.GetProperty("checks").GetProperty("storage").GetString());
            Assert.Equal("unavailable", ready.GetProperty("webhooks").GetProperty("intake").GetString());

            await SetAvailableAsync(server, database, available: true);
            await EventuallyAsync(async () => (await ReadyAsync(gateway)).Body.GetProperty("status").GetString() == "ready");
            Assert.Equal("ok", (await ReadyAsync(gateway)).Body.GetProperty("webhooks").GetProperty("intake").GetString());

            // The sender retries what was refused (pooled connections cut by the outage may still refuse one or two
            // tries: 503 again, never anything else); the event acknowledged before the outage is a duplicate.
            await EventuallyAsync(async () =>
            {
                using var retried = await WebhookFixtures.SendAsync(client, during);
                Assert.True(retried.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.ServiceUnavailable, retried.StatusCode.ToString());
                return retried.StatusCode == HttpStatusCode.Accepted;
            });
            Assert.Equal(HttpStatusCode.OK, (await WebhookFixtures.SendAsync(client, before)).StatusCode);
            await EventuallyAsync(async () => await CountAsync(database, "webhook_results") == 2);
            Assert.Equal(2, await CountAsync(database, "webhook_events"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<long> CountAsync(TestDatabase database, string table = "usage_records")
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT count(*) FROM {table}", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>An outage of one database: new connections refused and every open one cut (the server stays up for other tests).</summary>
    private static async Task SetAvailableAsync(PostgresServer server, TestDatabase database, bool available)
    {
        await using var connection = new NpgsqlConnection(server.AdminConnectionString);
        await connection.OpenAsync();
        await using var alter = new NpgsqlCommand($"ALTER DATABASE {database.Name} ALLOW_CONNECTIONS {(available ? "true" : "false")}", connection);
        await alter.ExecuteNonQueryAsync();
        if (!available)
        {
            await using var cut = new NpgsqlCommand($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database.Name}'", connection);
            await cut.ExecuteNonQueryAsync();
        }
    }
}
