namespace Shepherd.Tests.Routing;

using Shepherd.Testing;

/// <summary>The routing strategies through the whole gateway, judged by what each upstream received.</summary>
public sealed class StrategyEndToEndTests
{
    private static string Routing => $"routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}";

    [Fact]
    public async Task Priority_WeightsSplitTheTopTier_LowerTierUnused()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var b = await FakeOpenAI.StartAsync();
        await using var c = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync($"""
            {Routing}
            providers:
            {RoutingKit.Provider("a", a)}{RoutingKit.Provider("b", b)}{RoutingKit.Provider("c", c)}
            models:
              - name: m
                strategy: priority
                deployments:
                  - {"{"} provider: a, model: up, weight: 3 {"}"}
                  - {"{"} provider: b, model: up, weight: 1 {"}"}
                  - {"{"} provider: c, model: up, priority: 1, weight: 100 {"}"}
            """);

        const int N = 400;
        await Parallel.ForAsync(0, N, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, ct) =>
            Assert.Equal(200, (await RoutingKit.SendAsync(gateway, "m", cancellationToken: ct)).Status));

        // Expected 300 / 100 / 0; one standard deviation is about 8.7.
        Assert.InRange(a.Server.StartedCount, 250, 350);
        Assert.InRange(b.Server.StartedCount, 50, 150);
        Assert.Equal(0, c.Server.StartedCount);
        Assert.Equal(N, a.Server.StartedCount + b.Server.StartedCount);
    }

    [Fact]
    public async Task Priority_TopTierDown_LowerTierServes()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var c = await FakeOpenAI.StartAsync();
        a.Faults.Always(Fault.WithStatus(503));
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0, breaker: {"{"} consecutive_failures: 2, cooldown_s: 60 {"}"} {"}"}
            providers:
            {RoutingKit.Provider("a", a)}{RoutingKit.Provider("c", c)}
            models:
              - name: m
                deployments:
                  - {"{"} provider: a, model: up {"}"}
                  - {"{"} provider: c, model: up, priority: 1 {"}"}
            """, RoutingKit.Clock());

        for (var i = 0; i < 10; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "m");
            Assert.Equal(200, answer.Status);
            Assert.Equal("c/up", answer.Deployment);
        }

        // Two failures opened A's breaker; after that it was skipped without a request.
        Assert.Equal(2, a.Server.StartedCount);
    }

    [Fact]
    public async Task LeastBusy_NextRequestGoesToTheIdleDeployment()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var b = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Faults.Always(new Fault { HoldUntil = release.Task });
        b.Faults.Always(new Fault { HoldUntil = release.Task });
        await using var gateway = await GatewayHost.StartAsync($"""
            {Routing}
            providers:
            {RoutingKit.Provider("a", a)}{RoutingKit.Provider("b", b)}
            models:
              - name: m
                strategy: least-busy
                deployments:
                  - {"{"} provider: a, model: up {"}"}
                  - {"{"} provider: b, model: up {"}"}
            """);

        var pending = new List<Task<Answer>>();
        for (var i = 1; i <= 6; i++)
        {
            pending.Add(RoutingKit.SendAsync(gateway, "m", stream: i % 2 == 0));
            var sent = i;
            await RoutingKit.EventuallyAsync(() => a.Server.StartedCount + b.Server.StartedCount == sent, $"request {sent} upstream");

            // Requests held in flight: each new one goes where fewer are, so the two never differ by more than one.
            Assert.InRange(a.Server.StartedCount - b.Server.StartedCount, -1, 1);
        }

        Assert.Equal(3, a.Server.StartedCount);
        Assert.Equal(3, b.Server.StartedCount);
        release.SetResult();
        Assert.All(await Task.WhenAll(pending), x => Assert.Equal(200, x.Status));
    }

    [Fact]
    public async Task Cost_CheapestDeploymentServes_PricierOnlyWhenItFails()
    {
        await using var pricey = await FakeOpenAI.StartAsync();
        await using var cheap = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync($"""
            {Routing}
            providers:
            {RoutingKit.Provider("pricey", pricey)}{RoutingKit.Provider("cheap", cheap)}
            models:
              - name: m
                strategy: cost
                price: {"{"} input: 5.0, output: 15.0 {"}"}
                deployments:
                  - {"{"} provider: pricey, model: up {"}"}
                  - {"{"} provider: cheap, model: up, price: {"{"} input: 0.10, output: 0.40 {"}"} {"}"}
            """);

        for (var i = 0; i < 20; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "m", stream: i % 2 == 0);
            Assert.Equal(200, answer.Status);
            Assert.Equal("cheap/up", answer.Deployment);
        }

        Assert.Equal(0, pricey.Server.StartedCount);

        cheap.Faults.Then(Fault.WithStatus(500));
        var failover = await RoutingKit.SendAsync(gateway, "m");
        Assert.Equal("pricey/up", failover.Deployment);
        Assert.Equal(2, failover.Attempts);
    }
}
