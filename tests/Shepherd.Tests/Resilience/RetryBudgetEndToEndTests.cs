namespace Shepherd.Tests.Resilience;

using Shepherd.Testing;
using Shepherd.Tests.Routing;

/// <summary>During a full outage, retries stay within the budget: the gateway does not multiply the load.</summary>
public sealed class RetryBudgetEndToEndTests
{
    [Fact]
    public async Task FullOutage_UpstreamAttemptsStayWithinTheBudget_ClientsGet502()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var b = await FakeOpenAI.StartAsync();
        a.Faults.Always(Fault.WithStatus(500));
        b.Faults.Always(Fault.WithStatus(503));
        var time = RoutingKit.Clock();

        // Breakers that never open, so every request reaches the upstreams and only the budget limits retries;
        // without it, each request would make max_attempts = 4 attempts.
        await using var gateway = await GatewayHost.StartAsync($"""
            routing:
              max_attempts: 4
              backoff_base_ms: 0
              retry_budget: {"{"} ratio: 0.2, window_s: 10, min_per_second: 1 {"}"}
              breaker: {"{"} consecutive_failures: 1000000, min_requests: 1000000 {"}"}
              health_probe_interval_s: 0
            providers:
            {RoutingKit.Provider("a", a)}{RoutingKit.Provider("b", b)}
            models:
              - name: m
                deployments: [ {"{"} provider: a, model: up-a {"}"}, {"{"} provider: b, model: up-b {"}"} ]
            """, time);

        const int N = 100;
        var statuses = new int[N];
        await Parallel.ForAsync(0, N, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            var answer = await RoutingKit.SendAsync(gateway, "m", stream: i % 2 == 0, cancellationToken: ct);
            statuses[i] = answer.Status;
        });

        Assert.All(statuses, s => Assert.Equal(502, s));
        var attempts = a.Server.StartedCount + b.Server.StartedCount;
        Assert.InRange(attempts, N, (N * 1.2) + (1 * 10));
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("retry budget spent", StringComparison.Ordinal));
    }

    [Fact]
    public async Task QuietGateway_TheFloorStillAllowsARetry()
    {
        await using var a = await FakeOpenAI.StartAsync();
        a.Faults.Then(Fault.WithStatus(500));
        await using var gateway = await GatewayHost.StartAsync($"""
            routing:
              max_attempts: 2
              backoff_base_ms: 0
              retry_budget: {"{"} ratio: 0, window_s: 10, min_per_second: 1 {"}"}
              health_probe_interval_s: 0
            providers:
            {RoutingKit.Provider("a", a)}
            models:
              - name: m
                deployments: [ {"{"} provider: a, model: up-a {"}"} ]
            """, RoutingKit.Clock());

        var answer = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(200, answer.Status);
        Assert.Equal(2, answer.Attempts);
    }
}
