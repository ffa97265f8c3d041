namespace Shepherd.Tests.Webhooks;

using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Shepherd.Testing;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Telemetry;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary>Idempotency under concurrency, hostile bodies, and the intake's metrics.</summary>
public sealed class WebhookIntakeTests
{
    [Fact]
    public async Task Receive_SameIdFiveTimesConcurrently_OneAcceptedFourDuplicatesProcessedOnce()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl));
        var body = Event("agent.completed", id: "evt-same");

        var responses = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => SendAsync(gateway.Client, body)));

        Assert.Equal(1, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(4, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        foreach (var response in responses)
        {
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal(response.StatusCode == HttpStatusCode.Accepted ? "accepted" : "duplicate", json["status"]!.GetValue<string>());
            Assert.Equal("evt-same", json["id"]!.GetValue<string>());
            response.Dispose();
        }

        Assert.Equal(1, await gateway.Processor().RunOnceAsync());
        Assert.Equal(0, await gateway.Processor().RunOnceAsync());
        using (var late = await SendAsync(gateway.Client, body))
        {
            Assert.Equal(HttpStatusCode.OK, late.StatusCode);
        }

        Assert.Equal(0, await gateway.Processor().RunOnceAsync());
        Assert.Single(upstream.Server.Requests);
        Assert.Single(await gateway.EventsAsync());
    }

    [Fact]
    public async Task Receive_ManyEventsAtOnce_GroupCommittedAndEveryOneStored()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        var responses = await Task.WhenAll(Enumerable.Range(0, 300).Select(i => SendAsync(gateway.Client, Event("agent.completed", id: $"burst-{i % 250}"))));

        Assert.Equal(250, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(50, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(250, (await gateway.EventsAsync()).Count);
        var intake = gateway.Services.GetRequiredService<Shepherd.Webhooks.Intake.WebhookIntake>();
        Assert.Equal(250, intake.Stored);
        Assert.True(intake.Commits < 300, $"{intake.Commits} commits for 300 events: no batching");
    }

    public static TheoryData<string, byte[], string> Malformed() => new()
    {
        { "not JSON", "hello, world"u8.ToArray(), "malformed_json" },
        { "empty", [], "malformed_json" },
        { "truncated", """{"event_type":"agent.completed","data":{"""u8.ToArray(), "malformed_json" },
        { "trailing garbage", """{"event_type":"agent.completed"} {}"""u8.ToArray(), "malformed_json" },
        { "invalid UTF-8", [.. "{\"event_type\":\"agent.completed\",\"data\":\""u8, 0xFF, 0xFE, .. "\"}"u8], "malformed_json" },
        { "deeply nested", Encoding.UTF8.GetBytes("""{"event_type":"agent.completed","data":""" + new string('[', 500) + new string(']', 500) + "}"), "malformed_json" },
        { "lone surrogate in type", """{"event_type":"agent.\ud800"}"""u8.ToArray(), "malformed_json" },
        { "lone surrogate in id", """{"id":"\udc00","event_type":"agent.completed"}"""u8.ToArray(), "malformed_json" },
        { "array", """[{"event_type":"agent.completed"}]"""u8.ToArray(), "not_an_object" },
        { "string", "\"agent.completed\""u8.ToArray(), "not_an_object" },
        { "null", "null"u8.ToArray(), "not_an_object" },
        { "no type", """{"id":"x","data":{}}"""u8.ToArray(), "missing_type" },
        { "numeric type", """{"event_type":42}"""u8.ToArray(), "missing_type" },
        { "object type", """{"event_type":{"name":"agent.completed"}}"""u8.ToArray(), "missing_type" },
        { "empty type", """{"event_type":""}"""u8.ToArray(), "missing_type" },
        { "huge type", Encoding.UTF8.GetBytes($$"""{"event_type":"{{new string('a', 300)}}"}"""), "missing_type" },
        { "object id", """{"id":{"v":1},"event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
        { "array id", """{"id":[1],"event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
        { "fractional id", """{"id":1.5,"event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
        { "boolean id", """{"id":true,"event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
        { "empty id", """{"id":"","event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
        { "control characters in id", """{"id":"a\nb","event_type":"agent.completed"}"""u8.ToArray(), "invalid_id" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task Receive_MalformedSignedBody_400NothingStoredNoWorkerGatewayFine(string name, byte[] body, string code)
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl, webhooksExtra: "workers: 2"));

        using var response = await PostAsync(gateway.Client, "twill", body, ("x-twill-signature", WebhookSignatureOf(body)));

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{name}: {response.StatusCode}");
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(code, error["error"]!["code"]!.GetValue<string>());
        Assert.Empty(await gateway.EventsAsync());

        // Still serving: a good event after the bad one is accepted and processed.
        using var good = await SendAsync(gateway.Client, Event("agent.completed", id: "after"));
        Assert.Equal(HttpStatusCode.Accepted, good.StatusCode);
        await WaitUntilAsync(async () => (await gateway.EventsAsync(WebhookJobStatus.Completed)).Count == 1);
        Assert.Single(upstream.Server.Requests);
    }

    [Fact]
    public async Task Metrics_ReceivedRejectedAcknowledgedAttemptsDeadLettered_Recorded()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl));
        var meter = gateway.Services.GetRequiredService<WebhookMetrics>().Meter;
        var measurements = new List<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            lock (measurements)
            {
                measurements.Add((instrument.Name, value, new Dictionary<string, object?>(tags.ToArray())));
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        (await SendAsync(gateway.Client, Event("agent.completed", id: "m-ok"))).Dispose();
        (await SendAsync(gateway.Client, Event("agent.completed", id: "m-ok"))).Dispose();
        (await SendAsync(gateway.Client, Event("agent.completed", id: "m-bad"), "whsec-wrong-secret-000000000")).Dispose();
        (await SendAsync(gateway.Client, Event("agent.completed", id: "m-x"), source: "nope")).Dispose();
        await gateway.Processor().RunOnceAsync();
        upstream.Faults.Always(Fault.WithStatus(400));
        (await SendAsync(gateway.Client, Event("agent.failed", id: "m-dead"))).Dispose();
        await gateway.Processor().RunOnceAsync();

        lock (measurements)
        {
            Assert.Equal(4, measurements.Count(m => m.Instrument == "shepherd.webhooks.received"));
            Assert.Contains(measurements, m => m.Instrument == "shepherd.webhooks.rejected" && (string)m.Tags["reason"]! == "bad_signature" && (string)m.Tags["source"]! == "twill");
            Assert.Contains(measurements, m => m.Instrument == "shepherd.webhooks.rejected" && (string)m.Tags["reason"]! == "unknown_source" && (string)m.Tags["source"]! == WebhookMetrics.UnknownSource);
            Assert.Single(measurements, m => m.Instrument == "shepherd.webhooks.duplicates");
            Assert.Equal(3, measurements.Count(m => m.Instrument == "shepherd.webhooks.ack.duration"));
            Assert.Contains(measurements, m => m.Instrument == "shepherd.webhooks.attempts" && (string)m.Tags["outcome"]! == "success");
            Assert.Contains(measurements, m => m.Instrument == "shepherd.webhooks.attempts" && (string)m.Tags["outcome"]! == "dead");
            Assert.Equal(2, measurements.Count(m => m.Instrument == "shepherd.webhooks.processing.duration"));
            Assert.Single(measurements, m => m.Instrument == "shepherd.webhooks.dead_lettered" && (string)m.Tags["kind"]! == "process");
        }
    }

    private static string WebhookSignatureOf(byte[] body) =>
        Shepherd.Webhooks.Verification.WebhookSignature.Sign(Encoding.UTF8.GetBytes(Secret), null, body);
}
