namespace Shepherd.Tests.Webhooks;

using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Testing;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Verification;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary>Operating the pipeline: the admin API, the CLI, readiness, and signed delivery of results.</summary>
public sealed class WebhookOperationsTests
{
    private const string Routing = "routing: { max_attempts: 1, breaker: { consecutive_failures: 1000, min_requests: 1000 } }";

    /// <summary>A gateway with one completed event (c1), one dead (d1), one waiting (w1) and one skipped (s1).</summary>
    private static async Task<(GatewayHost Gateway, FakeOpenAI Upstream)> StartWithEventsAsync()
    {
        var upstream = await FakeOpenAI.StartAsync();
        var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, top: Routing));
        (await SendAsync(gateway.Client, Event("agent.completed", id: "c1"))).Dispose();
        await gateway.Processor().RunOnceAsync();
        upstream.Faults.Always(Fault.WithStatus(422, """{"error":{"message":"unprocessable","type":"invalid_request_error","code":"bad_prompt"}}"""));
        (await SendAsync(gateway.Client, Event("agent.failed", id: "d1"))).Dispose();
        await gateway.Processor().RunOnceAsync();
        upstream.Faults.Always(Fault.None);
        (await SendAsync(gateway.Client, Event("agent.completed", id: "w1"))).Dispose();
        (await SendAsync(gateway.Client, Event("agent.unknown", id: "s1"))).Dispose();
        return (gateway, upstream);
    }

    [Fact]
    public async Task AdminApi_ListShowDeadReplayPurge_MasterKeyOnly()
    {
        var (gateway, upstream) = await StartWithEventsAsync();
        await using var ownedGateway = gateway;
        await using var ownedUpstream = upstream;

        using (var anonymous = await gateway.CreateClient(null).GetAsync("/admin/webhooks"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var list = JsonNode.Parse(await gateway.Client.GetStringAsync("/admin/webhooks"))!;
        Assert.Equal(["s1:skipped", "w1:waiting", "d1:dead", "c1:completed"], list["data"]!.AsArray().Select(e => $"{e!["id"]}:{e["status"]}"));
        Assert.False(list["has_more"]!.GetValue<bool>());

        var page = JsonNode.Parse(await gateway.Client.GetStringAsync("/admin/webhooks?limit=2"))!;
        Assert.True(page["has_more"]!.GetValue<bool>());
        var rest = JsonNode.Parse(await gateway.Client.GetStringAsync($"/admin/webhooks?limit=2&before={page["next_before"]}"))!;
        Assert.Equal(["d1", "c1"], rest["data"]!.AsArray().Select(e => e!["id"]!.GetValue<string>()));

        using (var bad = await gateway.Client.GetAsync("/admin/webhooks?status=sleeping"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var dead = JsonNode.Parse(await gateway.Client.GetStringAsync("/admin/webhooks/dead"))!;
        var deadEvent = Assert.Single(dead["data"]!.AsArray())!;
        Assert.Equal("d1", deadEvent["id"]!.GetValue<string>());
        Assert.Equal("422 bad_prompt: unprocessable", deadEvent["last_error"]!.GetValue<string>());

        var shown = JsonNode.Parse(await gateway.Client.GetStringAsync("/admin/webhooks/events/c1"))!;
        Assert.Equal("agent.completed", shown["payload"]!["event_type"]!.GetValue<string>());
        Assert.Equal("completed", shown["status"]!.GetValue<string>());
        Assert.Equal("deepseek-v3.2", shown["result"]!["model"]!.GetValue<string>());
        var attempt = Assert.Single(shown["jobs"]![0]!["history"]!.AsArray())!;
        Assert.Equal("success", attempt["outcome"]!.GetValue<string>());
        Assert.Equal("wh-twill-c1-1", attempt["request_id"]!.GetValue<string>());

        using (var missing = await gateway.Client.GetAsync("/admin/webhooks/events/nope"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        using (var completed = await gateway.Client.PostAsync("/admin/webhooks/events/c1/replay", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, completed.StatusCode);
        }

        using (var replayAll = await gateway.Client.PostAsync("/admin/webhooks/dead/replay", null))
        {
            Assert.Equal(1, JsonNode.Parse(await replayAll.Content.ReadAsStringAsync())!["replayed"]!.GetValue<int>());
        }

        Assert.Equal(2, await gateway.Processor().RunOnceAsync());
        Assert.Equal(WebhookJobStatus.Completed, (await gateway.EventAsync("d1")).Jobs.Single().Status);

        upstream.Faults.Always(Fault.WithStatus(400));
        (await SendAsync(gateway.Client, Event("agent.completed", id: "p1"))).Dispose();
        await gateway.Processor().RunOnceAsync();
        using (var purge = await gateway.Client.PostAsync("/admin/webhooks/dead/purge", null))
        {
            Assert.Equal(1, JsonNode.Parse(await purge.Content.ReadAsStringAsync())!["purged"]!.GetValue<int>());
        }

        Assert.DoesNotContain(await gateway.EventsAsync(), e => e.EventId == "p1");

        var openApi = JsonNode.Parse(await gateway.Client.GetStringAsync("/admin/openapi.json"))!["paths"]!.AsObject().Select(p => p.Key).ToArray();
        Assert.Contains("/admin/webhooks", openApi);
        Assert.Contains("/admin/webhooks/events/{id}/replay", openApi);
        Assert.Contains("/admin/webhooks/dead/purge", openApi);
    }

    [Fact]
    public async Task Cli_WebhooksListShowDeadReplayPurge_AgainstRunningGateway()
    {
        var (gateway, upstream) = await StartWithEventsAsync();
        await using var ownedGateway = gateway;
        await using var ownedUpstream = upstream;
        var env = new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = GatewayHost.TestMasterKey, ["SHEPHERD_URL"] = gateway.BaseUrl };

        var (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "list");
        Assert.True(code == 0, error);
        Assert.Contains("c1", output, StringComparison.Ordinal);
        Assert.Contains("waiting", output, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "dead", "--json");
        Assert.True(code == 0, error);
        Assert.Equal("d1", JsonNode.Parse(output)!["data"]![0]!["id"]!.GetValue<string>());

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "show", "d1");
        Assert.True(code == 0, error);
        Assert.Contains("agent.failed", output, StringComparison.Ordinal);
        Assert.Contains("bad_prompt", output, StringComparison.Ordinal);

        (code, _, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "replay");
        Assert.Equal(1, code);
        Assert.Contains("--all-dead", error, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "replay", "d1", "--json");
        Assert.True(code == 0, error);
        Assert.Equal("replayed", JsonNode.Parse(output)!["status"]!.GetValue<string>());

        (code, _, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "replay", "c1");
        Assert.Equal(1, code);
        Assert.Contains("409", error, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "replay", "--all-dead");
        Assert.True(code == 0, error);
        Assert.Contains("Replayed 0 dead job(s)", output, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "webhooks", "purge-dead", "--json");
        Assert.True(code == 0, error);
        Assert.Equal(0, JsonNode.Parse(output)!["purged"]!.GetValue<int>());
    }

    [Fact]
    public async Task Ready_WebhooksSection_CountsPerSource()
    {
        var (gateway, upstream) = await StartWithEventsAsync();
        await using var ownedGateway = gateway;
        await using var ownedUpstream = upstream;

        var ready = JsonNode.Parse(await gateway.Client.GetStringAsync("/health/ready"))!;

        var source = Assert.Single(ready["webhooks"]!["sources"]!.AsArray())!;
        Assert.Equal("twill", source["name"]!.GetValue<string>());
        Assert.Equal(
            (1, 0, 1, 0, 1, 1),
            (source["waiting"]!.GetValue<int>(), source["leased"]!.GetValue<int>(), source["completed"]!.GetValue<int>(),
             source["failed"]!.GetValue<int>(), source["dead"]!.GetValue<int>(), source["skipped"]!.GetValue<int>()));
        Assert.True(source["oldest_waiting_age_s"]!.GetValue<double>() >= 0);
        Assert.Null(source["deliveries"]);
    }

    [Fact]
    public async Task Ready_NoWebhooksConfigured_NoSection()
    {
        await using var gateway = await GatewayHost.StartAsync("providers: [ { name: sim, type: simulated } ]\nmodels: [ { name: m, deployments: [ { provider: sim } ] } ]");

        var ready = JsonNode.Parse(await gateway.Client.GetStringAsync("/health/ready"))!;

        Assert.Null(ready["webhooks"]);
    }

    [Fact]
    public async Task Deliver_ResultPostedSignedRetriedUntilAccepted()
    {
        const string DeliverSecret = "whsec-deliver-0123456789abcdef";
        var answers = new Queue<int>([500, 200]);
        await using var receiver = await FakeUpstream.StartAsync((context, _) =>
        {
            context.Response.StatusCode = answers.Count > 0 ? answers.Dequeue() : 200;
            return Task.CompletedTask;
        });
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await GatewayHost.StartAsync(Config(sourceExtra: $"deliver: {{ url: \"{receiver.BaseUrl}/results\", secret: \"{DeliverSecret}\" }}"), time);
        var processor = gateway.Processor();
        processor.Jitter = () => 0.5;
        (await SendAsync(gateway.Client, Event("agent.completed", id: "dl1"))).Dispose();

        Assert.Equal(1, await processor.RunOnceAsync()); // processed; the delivery is queued
        Assert.Equal(1, await processor.RunOnceAsync()); // delivery refused (500): retried
        Assert.Equal(0, await processor.RunOnceAsync());
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(1, await processor.RunOnceAsync()); // delivered

        var detail = await gateway.EventAsync("dl1");
        var delivery = detail.Jobs.Single(j => j.Kind == WebhookJobKind.Deliver);
        Assert.Equal(WebhookJobStatus.Completed, delivery.Status);
        Assert.Equal(["retry", "success"], delivery.History.Select(a => a.Outcome));
        Assert.Equal(2, receiver.Requests.Count);
        var request = receiver.Requests.Last();
        Assert.Equal("/results", request.Path);
        var timestamp = request.Headers["x-shepherd-timestamp"];
        Assert.Equal(time.GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), timestamp);
        Assert.True(WebhookSignature.Verify(request.Body, timestamp, request.Headers["x-shepherd-signature"], [Encoding.UTF8.GetBytes(DeliverSecret)]));
        Assert.Equal("dl1", request.Headers["x-shepherd-event-id"]);
        var body = JsonNode.Parse(request.Body)!;
        Assert.Equal("dl1", body["id"]!.GetValue<string>());
        Assert.Equal("agent.completed", body["type"]!.GetValue<string>());
        Assert.Equal(detail.Result!.Text, body["result"]!["text"]!.GetValue<string>());
        Assert.Equal("deepseek-v3.2", body["result"]!["model"]!.GetValue<string>());

        var ready = JsonNode.Parse(await gateway.Client.GetStringAsync("/health/ready"))!;
        Assert.Equal(1, ready["webhooks"]!["sources"]![0]!["deliveries"]!["completed"]!.GetValue<int>());
    }
}
