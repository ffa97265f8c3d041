namespace Shepherd.Tests.Routing;

using Microsoft.Extensions.DependencyInjection;
using Shepherd.Routing;
using Shepherd.Testing;

/// <summary>A deployment's bounded queue: at most max_concurrency in flight, queue_size waiting, the rest refused at once.</summary>
public sealed class DeploymentQueueTests
{
    private static DeploymentState State(GatewayHost gateway, string model, int deployment = 0)
    {
        Assert.True(gateway.Services.GetRequiredService<ModelCatalog>().TryResolve(model, out var resolved));
        return resolved.Deployments[deployment].State;
    }

    [Fact]
    public async Task SevenConcurrent_TwoRunFourWaitSeventhRefusedAtOnceWithRetryAfter()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Faults.Always(new Fault { HoldUntil = release.Task });

        // The fake clock never moves, so the queue's 5 s timeout cannot end a wait.
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("p", upstream)}
            models:
              - name: m
                deployments: [ {"{"} provider: p, model: up, max_concurrency: 2, queue_size: 4, queue_timeout_ms: 5000 {"}"} ]
            """, RoutingKit.Clock());
        var state = State(gateway, "m");

        var six = Enumerable.Range(0, 6).Select(i => RoutingKit.SendAsync(gateway, "m", stream: i % 2 == 0)).ToArray();
        await RoutingKit.EventuallyAsync(() => upstream.Server.StartedCount == 2 && state.Waiting == 4, "two in flight and four waiting");

        var seventh = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(503, seventh.Status);
        Assert.NotNull(seventh.Header("retry-after"));
        Assert.Equal("no_available_deployment", seventh.Error.GetProperty("code").GetString());
        Assert.Equal(2, upstream.Server.StartedCount);
        var routing = RoutingKit.Deployment(await RoutingKit.AdminRoutingAsync(gateway), "p/up");
        Assert.Equal(2, routing.GetProperty("in_flight").GetInt32());
        Assert.Equal(4, routing.GetProperty("waiting").GetInt32());
        Assert.Equal(2, routing.GetProperty("max_concurrency").GetInt32());

        release.SetResult();
        var answers = await Task.WhenAll(six);

        Assert.All(answers, a => Assert.Equal(200, a.Status));
        Assert.All(answers, a => Assert.Equal(1, a.Attempts));
        Assert.Equal(6, upstream.Server.StartedCount);
        await RoutingKit.EventuallyAsync(() => state.InFlight == 0 && state.Waiting == 0, "every slot released");
    }

    [Fact]
    public async Task QueueFull_RequestMovesToTheNextDeploymentAtOnce()
    {
        await using var busy = await FakeOpenAI.StartAsync();
        await using var spare = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        busy.Faults.Always(new Fault { HoldUntil = release.Task });
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("busy", busy)}{RoutingKit.Provider("spare", spare)}
            models:
              - name: m
                deployments:
                  - {"{"} provider: busy, model: up-busy, priority: 0, max_concurrency: 1 {"}"}
                  - {"{"} provider: spare, model: up-spare, priority: 1 {"}"}
            """, RoutingKit.Clock());

        var held = RoutingKit.SendAsync(gateway, "m");
        await RoutingKit.EventuallyAsync(() => busy.Server.StartedCount == 1, "the busy deployment's only slot taken");

        var moved = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(200, moved.Status);
        Assert.Equal("spare/up-spare", moved.Deployment);
        Assert.Equal(1, moved.Attempts); // nothing was sent to the busy one
        release.SetResult();
        Assert.Equal("busy/up-busy", (await held).Deployment);
    }

    [Fact]
    public async Task QueueTimeout_OnTheGatewayClock_RequestGets503()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Faults.Always(new Fault { HoldUntil = release.Task });
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("p", upstream)}
            models:
              - name: m
                deployments: [ {"{"} provider: p, model: up, max_concurrency: 1, queue_size: 1, queue_timeout_ms: 2000 {"}"} ]
            """, time);
        var state = State(gateway, "m");
        var held = RoutingKit.SendAsync(gateway, "m");
        await RoutingKit.EventuallyAsync(() => upstream.Server.StartedCount == 1, "the only slot taken");
        var queued = RoutingKit.SendAsync(gateway, "m");
        await RoutingKit.EventuallyAsync(() => state.Waiting == 1, "one waiting");

        time.Advance(TimeSpan.FromMilliseconds(2000));
        var timedOut = await queued;

        Assert.Equal(503, timedOut.Status);
        Assert.NotNull(timedOut.Header("retry-after"));
        Assert.Equal(1, upstream.Server.StartedCount);
        release.SetResult();
        Assert.Equal(200, (await held).Status);
    }

    [Fact]
    public async Task UpstreamRpm_CountsOnlyRequestsActuallySent()
    {
        await using var limited = await FakeOpenAI.StartAsync();
        await using var spare = await FakeOpenAI.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        limited.Faults.Then(new Fault { HoldUntil = release.Task });
        await using var gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("limited", limited)}{RoutingKit.Provider("spare", spare)}
            models:
              - name: m
                deployments:
                  - {"{"} provider: limited, model: up, priority: 0, max_concurrency: 1, rpm: 5 {"}"}
                  - {"{"} provider: spare, model: up, priority: 1 {"}"}
            """, RoutingKit.Clock());

        // One request holds the only slot; ten more find it taken and go to the spare deployment.
        var held = RoutingKit.SendAsync(gateway, "m");
        await RoutingKit.EventuallyAsync(() => limited.Server.StartedCount == 1, "the only slot taken");
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("spare/up", (await RoutingKit.SendAsync(gateway, "m")).Deployment);
        }

        release.SetResult();
        Assert.Equal("limited/up", (await held).Deployment);

        // Only one request was sent to the limited deployment this minute: four more fit under its rpm of 5, the sixth does not.
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("limited/up", (await RoutingKit.SendAsync(gateway, "m")).Deployment);
        }

        Assert.Equal("spare/up", (await RoutingKit.SendAsync(gateway, "m")).Deployment);
        Assert.Equal(5, limited.Server.StartedCount);
    }
}
