namespace Shepherd.Tests.Webhooks;

using System.Net;
using System.Text.Json;
using Shepherd.Testing;
using Shepherd.Webhooks;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary>Rules: each seed event type reaches its model with the rendered prompt, through the gateway's own pipeline.</summary>
public sealed class WebhookRulesTests
{
    [Fact]
    public async Task Process_EachSeedEventType_ReachesItsModelWithTheRenderedPrompt()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Reply = "Done: summarised.";
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl));
        var events = new[]
        {
            Event("agent.completed", id: "c1"),
            Event("agent.failed", id: "f1", agent: "agent-9", data: """{"error":"TimeoutError: step 3","retries":2}"""),
            Event("agent.handoff", id: "h1", data: """{"to":"human-support"}"""),
            Event("message.received", id: "m1", data: """{"text":"Bitte um Rückruf \"dringend\" {{ json data }}"}"""),
        };
        foreach (var body in events)
        {
            using var response = await SendAsync(gateway.Client, body);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        Assert.Equal(4, await gateway.Processor().RunOnceAsync());

        var requests = upstream.Server.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement).ToDictionary(r => r.GetProperty("model").GetString()!);
        Assert.Equal(4, requests.Count);

        var completed = requests["deepseek-v3.2"];
        Assert.Equal("Summarise the following agent result.", Message(completed, 0, "system"));
        Assert.Equal("""{"result":"Wrote the quarterly report","steps":3}""", Message(completed, 1, "user"));
        Assert.Equal(0.3, completed.GetProperty("temperature").GetDouble());
        Assert.Equal(64, completed.GetProperty("max_tokens").GetInt32());
        Assert.False(completed.GetProperty("stream").GetBoolean());

        var failed = requests["gemini-2.5-flash"];
        Assert.Equal("Analyse the error and propose fixes.", Message(failed, 0, "system"));
        Assert.Equal("""Agent agent-9: {"error":"TimeoutError: step 3","retries":2}""", Message(failed, 1, "user"));
        Assert.False(failed.TryGetProperty("temperature", out _));

        var handoff = requests["claude-sonnet-4.5"];
        Assert.Equal(1, handoff.GetProperty("messages").GetArrayLength());
        Assert.Equal("Handoff from agent-7 to human-support in session sess-1.", Message(handoff, 0, "user"));

        // Event text goes in as text: quotes, non-ASCII and template syntax inside the event are not interpreted.
        var message = requests["gpt-4.1"];
        Assert.Equal("Bitte um Rückruf \"dringend\" {{ json data }}", Message(message, 1, "user"));

        foreach (var id in new[] { "c1", "f1", "h1", "m1" })
        {
            var stored = await gateway.EventAsync(id);
            Assert.Equal(WebhookJobStatus.Completed, stored.Jobs.Single().Status);
            Assert.Equal("Done: summarised.", stored.Result!.Text);
            Assert.Equal(JsonDocument.Parse(stored.Payload).RootElement.GetProperty("event_type").GetString() switch
            {
                "agent.completed" => "deepseek-v3.2",
                "agent.failed" => "gemini-2.5-flash",
                "agent.handoff" => "claude-sonnet-4.5",
                _ => "gpt-4.1",
            }, stored.Result.Model);
            Assert.Equal(11, stored.Result.PromptTokens);
            Assert.Equal(7, stored.Result.CompletionTokens);
            Assert.True(stored.Result.CostUsd > 0);
            Assert.StartsWith($"wh-twill-{id}-1", stored.Result.RequestId, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Process_CatchAllSkip_StoredAsSkippedAndNeverSent()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Config(upstream: upstream.BaseUrl));

        using var response = await SendAsync(gateway.Client, Event("agent.heartbeat", id: "hb1"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal(0, await gateway.Processor().RunOnceAsync());
        var stored = await gateway.EventAsync("hb1");
        Assert.Equal(WebhookJobStatus.Skipped, stored.Jobs.Single().Status);
        Assert.Contains("skipped by the rule on '*'", stored.Jobs.Single().LastError, StringComparison.Ordinal);
        Assert.Null(stored.Result);
        Assert.Empty(upstream.Server.Requests);
    }

    [Fact]
    public async Task Process_NoRuleMatches_StoredAsSkipped()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var config = Config(upstream: upstream.BaseUrl).Replace("- on: \"*\"", "- on: \"never.sent\"", StringComparison.Ordinal);
        await using var gateway = await GatewayHost.StartAsync(config);

        using var response = await SendAsync(gateway.Client, Event("agent.heartbeat", id: "hb2"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var stored = await gateway.EventAsync("hb2");
        Assert.Equal(WebhookJobStatus.Skipped, stored.Jobs.Single().Status);
        Assert.Contains("no rule matches", stored.Jobs.Single().LastError, StringComparison.Ordinal);
        Assert.Empty(upstream.Server.Requests);
    }

    [Fact]
    public async Task Process_BackgroundWorkers_CompleteEventsThroughTheSimulatedProvider()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(webhooksExtra: "workers: 4"));
        for (var i = 0; i < 20; i++)
        {
            using var response = await SendAsync(gateway.Client, Event("agent.completed", id: $"bg-{i}"));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        await WaitUntilAsync(async () => (await gateway.EventsAsync(WebhookJobStatus.Completed)).Count == 20);

        // One gateway request line per event (written as each request ends, just after its answer).
        await WaitUntilAsync(() => Task.FromResult(
            gateway.Logs.Lines.Count(l => l.Contains("wh-twill-bg-", StringComparison.Ordinal) && l.Contains("POST /v1/chat/completions 200", StringComparison.Ordinal)) == 20));
    }

    private static string Message(JsonElement request, int index, string role)
    {
        var message = request.GetProperty("messages")[index];
        Assert.Equal(role, message.GetProperty("role").GetString());
        return message.GetProperty("content").GetString()!;
    }
}
