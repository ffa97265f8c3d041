namespace Shepherd.Tests.Routing;

using Microsoft.Extensions.DependencyInjection;
using Shepherd.Routing;
using Shepherd.Testing;

/// <summary>Hedging: when the first deployment is slow to its first byte, a second races it; the loser is cancelled.</summary>
public sealed class HedgingTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SlowFirstDeployment_FastOneAnswers_SlowOneCancelledUpstream(bool stream)
    {
        await using var slow = await FakeOpenAI.StartAsync();
        await using var fast = await FakeOpenAI.StartAsync();
        slow.Reply = "Slow answer.";
        fast.Reply = "Fast answer.";
        slow.Faults.Always(new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(2) });

        // The slow deployment is always tried first (priority 0); after 100 ms without a first byte the fast one races it.
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("slow", slow)}{RoutingKit.Provider("fast", fast)}
            models:
              - name: m
                hedging: {"{"} delay_ms: 100 {"}"}
                deployments:
                  - {"{"} provider: slow, model: up-slow, priority: 0 {"}"}
                  - {"{"} provider: fast, model: up-fast, priority: 1 {"}"}
            """);

        var answer = await RoutingKit.SendAsync(gateway, "m", stream);

        Assert.Equal(200, answer.Status);
        Assert.Equal("fast/up-fast", answer.Deployment);
        Assert.Equal(2, answer.Attempts);
        Assert.Equal("Fast answer.", stream ? answer.StreamedContent : answer.MessageContent);
        await slow.Server.WaitForCancellationsAsync(1);
        Assert.Equal(1, slow.Server.StartedCount);
        Assert.Equal(1, fast.Server.StartedCount);

        // The loser was cancelled, not failed: its breaker holds no failure and its slot is free.
        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        var slowState = RoutingKit.Deployment(routing, "slow/up-slow");
        Assert.Equal("closed", slowState.GetProperty("breaker").GetProperty("state").GetString());
        Assert.Equal(0, slowState.GetProperty("breaker").GetProperty("window_failures").GetInt32());
        Assert.True(gateway.Services.GetRequiredService<ModelCatalog>().TryResolve("m", out var model));
        await RoutingKit.EventuallyAsync(() => model.Deployments[0].State.InFlight == 0, "the slow deployment's slot to be released");
    }

    [Fact]
    public async Task FastFirstDeployment_NoHedge()
    {
        await using var first = await FakeOpenAI.StartAsync();
        await using var second = await FakeOpenAI.StartAsync();
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("first", first)}{RoutingKit.Provider("second", second)}
            models:
              - name: m
                hedging: {"{"} delay_ms: 5000 {"}"}
                deployments:
                  - {"{"} provider: first, model: up-1, priority: 0 {"}"}
                  - {"{"} provider: second, model: up-2, priority: 1 {"}"}
            """);

        for (var i = 0; i < 5; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "m", stream: i % 2 == 0);
            Assert.Equal(200, answer.Status);
            Assert.Equal(1, answer.Attempts);
        }

        Assert.Equal(5, first.Server.StartedCount);
        Assert.Equal(0, second.Server.StartedCount);
    }

    [Fact]
    public async Task FirstFailsBeforeTheHedgeDelay_SecondServesAtOnce()
    {
        await using var first = await FakeOpenAI.StartAsync();
        await using var second = await FakeOpenAI.StartAsync();
        first.Faults.Then(Fault.WithStatus(500));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("first", first)}{RoutingKit.Provider("second", second)}
            models:
              - name: m
                hedging: {"{"} delay_ms: 60000 {"}"}
                deployments:
                  - {"{"} provider: first, model: up-1, priority: 0 {"}"}
                  - {"{"} provider: second, model: up-2, priority: 1 {"}"}
            """, time);

        // The clock never moves: the hedge timer cannot be what starts the second attempt.
        var answer = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(200, answer.Status);
        Assert.Equal("second/up-2", answer.Deployment);
        Assert.Equal(2, answer.Attempts);
        Assert.Equal(1, first.Server.StartedCount);
        Assert.Equal(1, second.Server.StartedCount);
    }

    [Fact]
    public async Task HedgedModel_ContextOverflow_FallsBackToALargerWindowWithoutRetryingItsDeployments()
    {
        await using var hedged = await FakeOpenAI.StartAsync();
        await using var small = await FakeOpenAI.StartAsync();
        await using var big = await FakeOpenAI.StartAsync();
        hedged.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "too long", "invalid_request_error", "context_length_exceeded")));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("hedged", hedged)}{RoutingKit.Provider("small", small)}{RoutingKit.Provider("big", big)}
            models:
              - name: m
                context_window: 8000
                hedging: {"{"} delay_ms: 100 {"}"}
                fallbacks: [ m-small, m-big ]
                deployments:
                  - {"{"} provider: hedged, model: up-1 {"}"}
                  - {"{"} provider: hedged, model: up-2 {"}"}
              - name: m-small
                context_window: 4000
                deployments: [ {"{"} provider: small, model: up {"}"} ]
              - name: m-big
                context_window: 200000
                deployments: [ {"{"} provider: big, model: up {"}"} ]
            """, time);

        // The clock stands still, so the hedge timer never fires: the first deployment's overflow alone decides.
        var answer = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(200, answer.Status);
        Assert.Equal("m -> m-big", answer.Header("x-shepherd-fallback"));
        Assert.Equal(1, hedged.Server.StartedCount);
        Assert.Equal(0, small.Server.StartedCount);
        Assert.Equal(2, answer.Attempts);
    }

    [Theory]
    [InlineData(1, 1.0, 5)]
    [InlineData(3, 0.0, 0)]
    public async Task NoAttemptOrRetryBudgetLeft_NoHedge(int maxAttempts, double ratio, int minPerSecond)
    {
        await using var slow = await FakeOpenAI.StartAsync();
        await using var fast = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        slow.Faults.Always(new Fault { HoldUntil = release.Task });
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync($"""
            routing:
              max_attempts: {maxAttempts}
              backoff_base_ms: 0
              health_probe_interval_s: 0
              retry_budget: {"{"} ratio: {ratio.ToString(System.Globalization.CultureInfo.InvariantCulture)}, window_s: 10, min_per_second: {minPerSecond} {"}"}
            providers:
            {RoutingKit.Provider("slow", slow)}{RoutingKit.Provider("fast", fast)}
            models:
              - name: m
                hedging: {"{"} delay_ms: 100 {"}"}
                deployments:
                  - {"{"} provider: slow, model: up-slow, priority: 0 {"}"}
                  - {"{"} provider: fast, model: up-fast, priority: 1 {"}"}
            """, time);

        var pending = RoutingKit.SendAsync(gateway, "m");
        await RoutingKit.EventuallyAsync(() => slow.Server.StartedCount == 1, "the first attempt upstream");

        // Well past the hedging delay: a hedge would go to the fast deployment, which answers at once.
        time.Advance(TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromSeconds(1));
        release.SetResult();
        var answer = await pending;

        Assert.Equal(200, answer.Status);
        Assert.Equal("slow/up-slow", answer.Deployment);
        Assert.Equal(1, answer.Attempts);
        Assert.Equal(0, fast.Server.StartedCount);
    }
}
