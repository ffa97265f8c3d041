namespace Shepherd.Tests.Resilience;

using System.Text.Json;
using Shepherd.Testing;
using Shepherd.Tests.Routing;

/// <summary>A deployment's breaker through the gateway: what clients are told while it is open, and what the health page shows.</summary>
public sealed class BreakerEndToEndTests
{
    [Fact]
    public async Task BreakerOpen_NothingSent_503WithTheRemainingCooldownAsRetryAfter_HealthShowsIt()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Then(Fault.WithStatus(500));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0, breaker: { consecutive_failures: 1, cooldown_s: 30 } }"), time);

        var failed = await RoutingKit.SendAsync(gateway, "m");
        Assert.Equal(502, failed.Status);
        Assert.Equal(1, upstream.Server.StartedCount); // the breaker opened: no retry on it

        time.Advance(TimeSpan.FromSeconds(10));
        var refused = await RoutingKit.SendAsync(gateway, "m", stream: true);

        Assert.Equal(503, refused.Status);
        Assert.Equal("20", refused.Header("retry-after"));
        Assert.Equal("no_available_deployment", refused.Error.GetProperty("code").GetString());
        Assert.Equal(1, upstream.Server.StartedCount);

        using (var ready = JsonDocument.Parse(await gateway.Client.GetStringAsync("/health/ready")))
        {
            Assert.Equal("ready", ready.RootElement.GetProperty("status").GetString());
            var deployment = RoutingKit.Deployment(ready.RootElement, "p/up");
            Assert.Equal("open", deployment.GetProperty("breaker").GetProperty("state").GetString());
            Assert.Equal(RoutingKit.Start.AddSeconds(30), deployment.GetProperty("breaker").GetProperty("open_until").GetDateTimeOffset());
        }

        // After the cool-down, one probe goes through and closes it.
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(200, (await RoutingKit.SendAsync(gateway, "m")).Status);
        Assert.Equal("closed", RoutingKit.BreakerState(await RoutingKit.AdminRoutingAsync(gateway), "p/up"));
    }

    [Fact]
    public async Task HalfOpen_ProbeFails_ReopensAndTheNextRequestIsRefused()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Always(Fault.WithStatus(503));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0, breaker: { consecutive_failures: 2, cooldown_s: 5 } }"), time);

        Assert.Equal(502, (await RoutingKit.SendAsync(gateway, "m")).Status);
        Assert.Equal(2, upstream.Server.StartedCount);
        Assert.Equal("open", RoutingKit.BreakerState(await RoutingKit.AdminRoutingAsync(gateway), "p/up"));

        time.Advance(TimeSpan.FromSeconds(5));
        var probe = await RoutingKit.SendAsync(gateway, "m");

        // Exactly one probe was sent; it failed, so the breaker is open again for another cool-down.
        Assert.Equal(502, probe.Status);
        Assert.Equal(3, upstream.Server.StartedCount);
        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        Assert.Equal("open", RoutingKit.BreakerState(routing, "p/up"));
        Assert.Equal(503, (await RoutingKit.SendAsync(gateway, "m")).Status);
        Assert.Equal(3, upstream.Server.StartedCount);
    }
}
