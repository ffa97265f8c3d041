namespace Shepherd.Tests.Routing;

using Shepherd.Testing;

/// <summary>An upstream's retry-after is honoured on the gateway's clock: the retry waits at least that long.</summary>
public sealed class RetryAfterTests
{
    private static string Yaml(FakeOpenAI upstream) => RoutingKit.OneModel(upstream, "{ max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 }");

    [Theory]
    [InlineData("retry-after", "3", 3000, false)]
    [InlineData("retry-after", "3", 3000, true)]
    [InlineData("retry-after-ms", "1500", 1500, false)]
    [InlineData("retry-after-ms", "1500", 1500, true)]
    public async Task RateLimited_RetryWaitsForRetryAfterOnTheGatewayClock(string header, string value, int waitMs, bool stream)
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var time = RoutingKit.Clock();
        upstream.Server.Clock = time;
        upstream.Faults.Then(Fault.WithStatus(429, FakeOpenAI.Error(429, "slow down", "requests", "rate_limit_exceeded"), (header, value)));
        await using var gateway = await GatewayHost.StartAsync(Yaml(upstream), time);

        var answer = await time.AdvanceWhilePendingAsync(RoutingKit.SendAsync(gateway, "m", stream), TimeSpan.FromMilliseconds(50));

        Assert.Equal(200, answer.Status);
        Assert.Equal(2, answer.Attempts);
        var requests = upstream.Server.Requests.ToArray();
        Assert.Equal(2, requests.Length);
        var waited = requests[1].ReceivedAt - requests[0].ReceivedAt;
        Assert.True(waited >= TimeSpan.FromMilliseconds(waitMs), $"retried after {waited.TotalMilliseconds} ms of gateway time");
    }

    [Fact]
    public async Task RateLimited_RetryAfterBeyondTheDeadline_ClientGets429WithRetryAfter()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Always(Fault.WithStatus(429, FakeOpenAI.Error(429, "slow down", "requests", "rate_limit_exceeded"), ("retry-after", "60")));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 3, deadline_ms: 10000, backoff_base_ms: 0, health_probe_interval_s: 0 }"), time);

        var answer = await RoutingKit.SendAsync(gateway, "m");

        // Waiting 60 s would break the 10 s deadline: no retry, the client gets the 429 and when to come back.
        Assert.Equal(429, answer.Status);
        Assert.Equal(1, upstream.Server.StartedCount);
        Assert.Equal("60", answer.Header("retry-after"));
    }
}
