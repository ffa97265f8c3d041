namespace Shepherd.Tests.Webhooks;

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Testing;
using Shepherd.Webhooks;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary>
/// Failures with a fault-injecting upstream and a fake clock: exponential backoff with jitter, retry-after honoured,
/// dead letters after the last try or at once for caller faults, and replay once the upstream is healthy.
/// </summary>
public sealed class WebhookRetryTests
{
    /// <summary>No executor retries and a breaker that never opens: each attempt reaches the upstream once.</summary>
    private const string Routing = "routing: { max_attempts: 1, breaker: { consecutive_failures: 1000, min_requests: 1000 } }";

    private static FakeTimeProvider Clock() => new(DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task Retry_UpstreamKeepsFailing_ExponentialBackoffThenDeadLetterThenReplaySucceeds()
    {
        var time = Clock();
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Always(Fault.WithStatus(503));
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, top: Routing), time);
        var processor = gateway.Processor();
        processor.Jitter = () => 0.5;
        using (var response = await SendAsync(gateway.Client, Event("agent.completed", id: "evt-r")))
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        // Tries 1 to 4 fail and are rescheduled at half the exponential ceiling (1 s base): 0.5 s, 1 s, 2 s, 4 s.
        var expected = new[] { 500, 1000, 2000, 4000 };
        for (var tryNumber = 1; tryNumber <= 4; tryNumber++)
        {
            Assert.Equal(1, await processor.RunOnceAsync());
            var job = (await gateway.EventAsync("evt-r")).Jobs.Single();
            Assert.Equal(WebhookJobStatus.Failed, job.Status);
            Assert.Equal(time.GetUtcNow().AddMilliseconds(expected[tryNumber - 1]), job.NextAttemptAt);
            Assert.StartsWith("502 ", job.LastError, StringComparison.Ordinal);

            // Not due a moment before its time, due at it.
            time.Advance(TimeSpan.FromMilliseconds(expected[tryNumber - 1] - 1));
            Assert.Equal(0, await processor.RunOnceAsync());
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(1, await processor.RunOnceAsync());
        var dead = await gateway.EventAsync("evt-r");
        var deadJob = dead.Jobs.Single();
        Assert.Equal(WebhookJobStatus.Dead, deadJob.Status);
        Assert.StartsWith("gave up after 5 tries: 502", deadJob.LastError, StringComparison.Ordinal);
        Assert.Equal(["retry", "retry", "retry", "retry", "dead"], deadJob.History.Select(a => a.Outcome));
        Assert.Equal(5, upstream.Server.Requests.Count);
        Assert.Equal(["evt-r"], (await gateway.EventsAsync(WebhookJobStatus.Dead)).Select(e => e.EventId));

        // Nothing runs a dead letter until it is replayed; the replay keeps the id and gets fresh tries.
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(0, await processor.RunOnceAsync());
        upstream.Faults.Always(Fault.None);
        using (var replay = await gateway.Client.PostAsync("/admin/webhooks/events/evt-r/replay", null))
        {
            Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        }

        Assert.Equal(1, await processor.RunOnceAsync());
        var replayed = await gateway.EventAsync("evt-r");
        Assert.Equal("evt-r", replayed.EventId);
        Assert.Equal(WebhookJobStatus.Completed, replayed.Jobs.Single().Status);
        Assert.Equal(6, replayed.Jobs.Single().Attempts);
        Assert.Equal(1, replayed.Jobs.Single().Tries);
        Assert.Equal("wh-twill-evt-r-6", replayed.Result!.RequestId);
        Assert.Empty(await gateway.EventsAsync(WebhookJobStatus.Dead));
    }

    [Fact]
    public async Task Retry_RateLimitedWithRetryAfter_NextAttemptNotBeforeIt()
    {
        var time = Clock();
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Then(Fault.WithStatus(429, null, ("retry-after", "30")));
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, top: Routing), time);
        var processor = gateway.Processor();
        processor.Jitter = () => 0.5;
        (await SendAsync(gateway.Client, Event("agent.completed", id: "evt-429"))).Dispose();

        Assert.Equal(1, await processor.RunOnceAsync());

        var job = (await gateway.EventAsync("evt-429")).Jobs.Single();
        Assert.Equal(WebhookJobStatus.Failed, job.Status);
        Assert.Equal(time.GetUtcNow().AddSeconds(30), job.NextAttemptAt);
        Assert.Equal(429, job.History.Single().Status);
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, await processor.RunOnceAsync());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await processor.RunOnceAsync());
        Assert.Equal(WebhookJobStatus.Completed, (await gateway.EventAsync("evt-429")).Jobs.Single().Status);
    }

    [Fact]
    public async Task Retry_CallerFault_DeadLetterAtOnceWithTheError()
    {
        var time = Clock();
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Always(Fault.WithStatus(400, """{"error":{"message":"'max_tokens' is too large","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}"""));
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, top: Routing), time);
        (await SendAsync(gateway.Client, Event("agent.completed", id: "evt-400"))).Dispose();

        Assert.Equal(1, await gateway.Processor().RunOnceAsync());

        var job = (await gateway.EventAsync("evt-400")).Jobs.Single();
        Assert.Equal(WebhookJobStatus.Dead, job.Status);
        Assert.Equal("400 invalid_value: 'max_tokens' is too large", job.LastError);
        Assert.Single(upstream.Server.Requests);
    }

    [Fact]
    public async Task Retry_SourceKeyUnknown_DeadLetterAtOnceWithout()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, top: Routing, sourceExtra: "key: sk-shp-not-a-real-key-0123456789"), Clock());
        (await SendAsync(gateway.Client, Event("agent.completed", id: "evt-401"))).Dispose();

        Assert.Equal(1, await gateway.Processor().RunOnceAsync());

        var job = (await gateway.EventAsync("evt-401")).Jobs.Single();
        Assert.Equal(WebhookJobStatus.Dead, job.Status);
        Assert.StartsWith("401 ", job.LastError, StringComparison.Ordinal);
        Assert.Empty(upstream.Server.Requests);
    }

    [Fact]
    public async Task Process_SourceKey_CallMadeUnderThatKeyWithItsSpendAndModelAccess()
    {
        var directory = Directory.CreateTempSubdirectory("shepherd-webhook-key-").FullName;
        var storage = $"storage: sqlite:{Path.Combine(directory, "shepherd.db")}";
        try
        {
            string id, secret;
            await using (var setup = await GatewayHost.StartAsync(Config(top: storage)))
            {
                using var created = await setup.Client.PostAsJsonAsync("/admin/keys", new { name = "twill", allowed_models = new[] { "deepseek-*" }, rpm = 1000, total_budget = 100 });
                var key = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
                (id, secret) = (key["id"]!.GetValue<string>(), key["key"]!.GetValue<string>());
            }

            await using var gateway = await GatewayHost.StartAsync(Config(top: storage, sourceExtra: $"key: {secret}"));
            (await SendAsync(gateway.Client, Event("agent.completed", id: "allowed"))).Dispose();
            (await SendAsync(gateway.Client, Event("agent.failed", id: "not-allowed"))).Dispose();

            Assert.Equal(2, await gateway.Processor().RunOnceAsync());

            Assert.Equal(WebhookJobStatus.Completed, (await gateway.EventAsync("allowed")).Jobs.Single().Status);
            var refused = (await gateway.EventAsync("not-allowed")).Jobs.Single();
            Assert.Equal(WebhookJobStatus.Dead, refused.Status);
            Assert.StartsWith("403 model_not_allowed", refused.LastError, StringComparison.Ordinal);

            // The gateway settles the key's spend as the request ends, just after the answer went out.
            await WaitUntilAsync(async () =>
                JsonNode.Parse(await gateway.Client.GetStringAsync($"/admin/keys/{id}/usage"))!["spend"]!["total"]!.GetValue<decimal>() > 0);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
