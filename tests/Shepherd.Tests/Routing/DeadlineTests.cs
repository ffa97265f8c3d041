namespace Shepherd.Tests.Routing;

using System.Text;
using Shepherd.Testing;

/// <summary>
/// <c>routing.deadline_ms</c> bounds a request until it is decided, an attempt in flight included (not only the
/// pauses between attempts); a stream that already delivered content is the client's and outlives it.
/// </summary>
public sealed class DeadlineTests
{
    private static string Yaml(FakeOpenAI upstream) => RoutingKit.OneModel(upstream, "{ max_attempts: 3, deadline_ms: 5000, backoff_base_ms: 0, health_probe_interval_s: 0 }");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamSilentPastTheDeadline_504AtTheDeadline_DeploymentNotBlamed(bool stream)
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var never = new TaskCompletionSource();
        upstream.Faults.Then(new Fault { HoldUntil = never.Task });
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(Yaml(upstream), time);

        // The clock stands still until the attempt is under way, so the request started at RoutingKit.Start.
        var sending = RoutingKit.SendAsync(gateway, "m", stream);
        await RoutingKit.EventuallyAsync(() => upstream.Server.StartedCount == 1, "the attempt reaching the upstream");

        // The upstream's first-byte timeout is 30 s (RoutingKit.Timeouts): only the 5 s deadline can end this sooner.
        var answer = await time.AdvanceWhilePendingAsync(sending, TimeSpan.FromMilliseconds(250), limit: TimeSpan.FromSeconds(29));
        never.TrySetResult();

        Assert.Equal(504, answer.Status);
        Assert.Equal("timeout", answer.Error.GetProperty("code").GetString());
        Assert.Contains("deadline", answer.Error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, upstream.Server.StartedCount);
        Assert.True(time.GetUtcNow() - RoutingKit.Start >= TimeSpan.FromSeconds(5), "answered before the deadline");

        // The request ran out of time; the deployment did not fail it.
        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        Assert.Equal("closed", RoutingKit.BreakerState(routing, "p/up"));
        Assert.Equal(0, RoutingKit.Deployment(routing, "p/up").GetProperty("breaker").GetProperty("consecutive_failures").GetInt32());
    }

    [Fact]
    public async Task Stream_CommittedBeforeTheDeadline_RunsToItsEndAfterIt()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var resume = new TaskCompletionSource();
        upstream.Faults.Then(new Fault { StallAfterEvents = 2, StallUntil = resume.Task });
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(Yaml(upstream), time);

        using var request = RoutingKit.Request("m", stream: true);
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        var received = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            received.Append(line).Append('\n');
            if (line.Contains("\"content\":\"", StringComparison.Ordinal) && !line.Contains("\"content\":\"\"", StringComparison.Ordinal))
            {
                break;
            }
        }

        // Content reached the client: past the deadline (and within the 30 s idle timeout), the stream goes on.
        time.Advance(TimeSpan.FromSeconds(10));
        resume.TrySetResult();
        received.Append(await reader.ReadToEndAsync());

        var events = Sse.DataEvents(received.ToString());
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"error\"", StringComparison.Ordinal));
        Assert.Equal(upstream.Reply, Sse.Content(events));
    }
}
