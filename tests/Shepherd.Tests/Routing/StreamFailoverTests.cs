namespace Shepherd.Tests.Routing;

using System.Text.Json;
using Shepherd.Testing;

/// <summary>
/// A stream is committed at its first content chunk: before it, any failure fails over invisibly; after it, the client
/// gets an in-band error, nothing is repeated, nothing is retried, and what was generated is still accounted.
/// </summary>
public sealed class StreamFailoverTests : IAsyncLifetime
{
    private FakeOpenAI _a = null!;
    private FakeOpenAI _b = null!;
    private GatewayHost _gateway = null!;
    private Microsoft.Extensions.Time.Testing.FakeTimeProvider _time = null!;

    public async Task InitializeAsync()
    {
        _a = await FakeOpenAI.StartAsync();
        _b = await FakeOpenAI.StartAsync();
        _a.Reply = "Words from A that must never show.";
        _b.Reply = "Hello from B, the healthy one.";
        _time = RoutingKit.Clock();

        // A first (priority 0). Its first-byte limit is 1 s of gateway time, its idle limit far longer.
        _gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("a", _a, timeouts: "{ connect_ms: 1000, first_byte_ms: 1000, idle_ms: 60000 }")}{RoutingKit.Provider("b", _b)}
            models:
              - name: m
                deployments:
                  - {"{"} provider: a, model: up-a, priority: 0 {"}"}
                  - {"{"} provider: b, model: up-b, priority: 1 {"}"}
            """, _time);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    public static TheoryData<string> BeforeContent => ["status 500", "status 429", "dropped before any event", "dropped after the role chunk", "malformed first event", "error event first", "stall before content", "ends before content"];

    private static Fault FaultFor(string name) => name switch
    {
        "status 500" => Fault.WithStatus(500),
        "status 429" => Fault.WithStatus(429, null, ("retry-after", "30")),
        "dropped before any event" => new Fault { DropAfterEvents = 0 },
        "dropped after the role chunk" => new Fault { DropAfterEvents = 1 },
        "malformed first event" => new Fault { FirstEventData = "{\"id\":\"x\",\"choices\":[{\"delta\":" },
        "error event first" => new Fault { FirstEventData = FakeOpenAI.Error(500, "overloaded", "server_error", "overloaded") },
        "stall before content" => new Fault { StallAfterEvents = 1 },
        "ends before content" => new Fault { FirstEventData = "[DONE]" },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(BeforeContent))]
    public async Task FailureBeforeFirstContent_InvisibleFailoverToB(string fault)
    {
        _a.Faults.Then(FaultFor(fault));

        var answer = await _time.AdvanceWhilePendingAsync(
            RoutingKit.SendAsync(_gateway, "m", stream: true, requestId: "before-content"), TimeSpan.FromMilliseconds(100));

        Assert.Equal(200, answer.Status);
        Assert.Equal("text/event-stream", answer.ContentHeaders.ContentType!.MediaType);
        Assert.Equal("b/up-b", answer.Deployment);
        Assert.Equal(2, answer.Attempts);
        var events = answer.Events;
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(_b.Reply, Sse.Content(events));
        Assert.DoesNotContain(events, e => e.Contains("\"error\"", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Contains("from A", StringComparison.Ordinal));
        Assert.Single(events, e => e.Contains("\"role\":\"assistant\"", StringComparison.Ordinal));
        Assert.Equal(1, _a.Server.StartedCount);
        Assert.Equal(1, _b.Server.StartedCount);
        await RoutingKit.EventuallyAsync(() => RoutingKit.RequestLines(_gateway, "before-content") == 1, "the request's log line");
        Assert.Contains(" 200 ", RoutingKit.RequestLine(_gateway, "before-content"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FailureAfterFirstContent_InBandErrorNoRepeatNoRetryUsageAccounted(bool stall)
    {
        // Events: role, "Words", " from", … — after the second content chunk the connection drops (once the client has
        // seen that chunk) or stalls past idle_ms.
        var drop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _a.Faults.Then(stall ? new Fault { StallAfterEvents = 3 } : new Fault { DropAfterEvents = 3, DropWhen = drop.Task });

        using var request = RoutingKit.Request("m", stream: true, requestId: "after-content");
        using var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var body = new System.Text.StringBuilder();
        while (!body.ToString().Contains("\"content\":\" from\"", StringComparison.Ordinal) && await reader.ReadLineAsync() is { } read)
        {
            body.Append(read).Append('\n');
        }

        drop.SetResult();
        body.Append(await _time.AdvanceWhilePendingAsync(reader.ReadToEndAsync(), TimeSpan.FromSeconds(1)));
        var answer = new Answer((int)response.StatusCode, response.Headers, response.Content.Headers, body.ToString());

        Assert.Equal(200, answer.Status);
        Assert.Equal("a/up-a", answer.Deployment);
        Assert.Equal(1, answer.Attempts);
        var events = answer.Events;
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("Words from", Sse.Content(events.Where(e => !e.Contains("\"error\"", StringComparison.Ordinal))));
        using (var error = JsonDocument.Parse(events[^1]))
        {
            Assert.True(error.RootElement.TryGetProperty("error", out var detail));
            Assert.False(string.IsNullOrEmpty(detail.GetProperty("message").GetString()));
        }

        Assert.Single(events, e => e.Contains("\"error\"", StringComparison.Ordinal));
        Assert.Equal(0, _b.Server.StartedCount);
        Assert.Equal(1, _a.Server.StartedCount);

        // The request is accounted: its log line has the prompt and the (estimated) completion tokens it got.
        await RoutingKit.EventuallyAsync(() => RoutingKit.RequestLines(_gateway, "after-content") == 1, "the request's log line");
        var line = RoutingKit.RequestLine(_gateway, "after-content");
        Assert.Matches(@"prompt_tokens=[1-9]\d* completion_tokens=[1-9]\d*", line);
    }

    [Fact]
    public async Task CleanStream_NoFailover_UsageFromUpstream()
    {
        var answer = await RoutingKit.SendAsync(_gateway, "m", stream: true, requestId: "clean");

        Assert.Equal(200, answer.Status);
        Assert.Equal("a/up-a", answer.Deployment);
        Assert.Equal(1, answer.Attempts);
        Assert.Equal(_a.Reply, answer.StreamedContent);
        await RoutingKit.EventuallyAsync(() => RoutingKit.RequestLines(_gateway, "clean") == 1, "the request's log line");
        Assert.Contains("prompt_tokens=11 completion_tokens=7", RoutingKit.RequestLine(_gateway, "clean"), StringComparison.Ordinal);
    }
}
