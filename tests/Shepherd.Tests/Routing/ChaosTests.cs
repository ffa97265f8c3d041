namespace Shepherd.Tests.Routing;

using System.Collections.Concurrent;
using Shepherd.Testing;

/// <summary>
/// A flaky deployment next to a healthy one under concurrent load: no error may reach a client, every request is
/// accounted exactly once, the flaky deployment's breaker opens and traffic moves, and it comes back once healthy.
/// </summary>
public sealed class ChaosTests
{
    private static readonly Fault ServerError = Fault.WithStatus(500);
    private static readonly Fault RateLimited = Fault.WithStatus(429, FakeOpenAI.Error(429, "Rate limit reached", "requests", "rate_limit_exceeded"), ("retry-after", "1"));

    private static string Yaml(FakeOpenAI a, FakeOpenAI b, int cooldownS, bool samePriority) => $"""
        routing:
          max_attempts: 3
          backoff_base_ms: 0
          retry_budget: {"{"} ratio: 0.5, window_s: 10, min_per_second: 5 {"}"}
          breaker: {"{"} consecutive_failures: 5, failure_rate: 0.3, min_requests: 10, window_s: 30, cooldown_s: {cooldownS} {"}"}
          health_probe_interval_s: 0
        providers:
        {RoutingKit.Provider("a", a, "[ sk-a-1 ]")}{RoutingKit.Provider("b", b, "[ sk-b-1 ]")}
        models:
          - name: chaos
            deployments:
              - {"{"} provider: a, model: model-a, priority: 0 {"}"}
              - {"{"} provider: b, model: model-b, priority: {(samePriority ? 0 : 1)} {"}"}
        """;

    /// <summary>Runs <paramref name="count"/> requests (every third streamed), 16 at a time, moving the clock as they complete.</summary>
    private static async Task<ConcurrentDictionary<int, Answer>> RunAsync(GatewayHost gateway, Microsoft.Extensions.Time.Testing.FakeTimeProvider time, int count, string prefix, int advanceEvery, TimeSpan advanceBy)
    {
        var answers = new ConcurrentDictionary<int, Answer>();
        var completed = 0;
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            answers[i] = await RoutingKit.SendAsync(gateway, "chaos", stream: i % 3 == 0, requestId: $"{prefix}-{i}", cancellationToken: ct);
            if (Interlocked.Increment(ref completed) % advanceEvery == 0)
            {
                time.Advance(advanceBy);
            }
        });
        return answers;
    }

    private static void AssertAllServedAndAccounted(GatewayHost gateway, ConcurrentDictionary<int, Answer> answers, string prefix, int upstreamAttempts)
    {
        var failed = answers.Where(a => a.Value.Status != 200).Select(a => $"{a.Key}: {a.Value.Status} {a.Value.Body}").Take(5).ToList();
        Assert.True(failed.Count == 0, "Errors reached clients:\n" + string.Join("\n", failed));
        foreach (var (i, answer) in answers)
        {
            if (i % 3 == 0)
            {
                Assert.Equal("[DONE]", answer.Events[^1]);
                Assert.Equal("Hello from the fake upstream.", answer.StreamedContent);
            }
            else
            {
                Assert.Equal("Hello from the fake upstream.", answer.MessageContent);
            }

            Assert.InRange(answer.Attempts, 1, 3);
            Assert.Equal(1, RoutingKit.RequestLines(gateway, $"{prefix}-{i}"));
        }

        // Every attempt the upstreams saw is one the clients were told about, and no other.
        Assert.Equal(upstreamAttempts, answers.Values.Sum(a => a.Attempts));
    }

    [Fact]
    public async Task FlakyDeployment_2000MixedRequests_NoClientErrorsBreakerOpensTrafficShiftsThenRecovers()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var b = await FakeOpenAI.StartAsync();
        a.Faults.Randomly(20250601, (0.3, ServerError), (0.1, RateLimited));
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(Yaml(a, b, cooldownS: 60, samePriority: false), time);

        // 2000 requests; the clock moves 100 ms per 50 completed (4 s in all, well inside the 60 s cool-down).
        var answers = await RunAsync(gateway, time, 2000, "chaos", advanceEvery: 50, TimeSpan.FromMilliseconds(100));
        await RoutingKit.EventuallyAsync(() => gateway.Logs.Lines.Count(l => l.Contains(" POST /v1/chat/completions ", StringComparison.Ordinal)) >= 2000, "2000 request log lines");

        AssertAllServedAndAccounted(gateway, answers, "chaos", a.Server.StartedCount + b.Server.StartedCount);
        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        Assert.Equal("open", RoutingKit.BreakerState(routing, "a/model-a"));
        Assert.Equal("closed", RoutingKit.BreakerState(routing, "b/model-b"));
        using (var ready = System.Text.Json.JsonDocument.Parse(await gateway.Client.GetStringAsync("/health/ready")))
        {
            Assert.Equal("open", RoutingKit.BreakerState(ready.RootElement, "a/model-a"));
        }

        // A is preferred (priority 0) yet, once its breaker opened, B carried the load.
        Assert.InRange(a.Server.StartedCount, 10, 200);
        Assert.True(b.Server.StartedCount >= 1800, $"b served {b.Server.StartedCount}");
        var servedByA = answers.Values.Count(x => x.Deployment == "a/model-a");
        Assert.Equal(2000, servedByA + answers.Values.Count(x => x.Deployment == "b/model-b"));

        // While open, A gets nothing.
        var seenByA = a.Server.StartedCount;
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("b/model-b", (await RoutingKit.SendAsync(gateway, "chaos")).Deployment);
        }

        Assert.Equal(seenByA, a.Server.StartedCount);

        // A recovers; after the cool-down the next request is the half-open probe, its success closes the breaker.
        a.Faults.Clear();
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal("half_open", RoutingKit.BreakerState(await RoutingKit.AdminRoutingAsync(gateway), "a/model-a"));

        var probe = await RoutingKit.SendAsync(gateway, "chaos", stream: true);
        Assert.Equal(200, probe.Status);
        Assert.Equal("a/model-a", probe.Deployment);
        Assert.Equal(1, probe.Attempts);
        Assert.Equal("closed", RoutingKit.BreakerState(await RoutingKit.AdminRoutingAsync(gateway), "a/model-a"));

        for (var i = 0; i < 10; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "chaos", stream: i % 2 == 0);
            Assert.Equal(200, answer.Status);
            Assert.Equal("a/model-a", answer.Deployment);
        }

        Assert.Equal(seenByA + 11, a.Server.StartedCount);
    }

    [Fact]
    public async Task FlappingBreaker_ShortCooldownUnderConcurrency_NoClientErrorsAndNoProbeSlotLeaks()
    {
        await using var a = await FakeOpenAI.StartAsync();
        await using var b = await FakeOpenAI.StartAsync();
        a.Faults.Randomly(
            7,
            (0.2, ServerError),
            (0.1, RateLimited),
            (0.05, new Fault { DropConnection = true }),
            (0.05, new Fault { FirstEventData = "{\"choices\":[{\"delta\":" }), // malformed first event (streams only)
            (0.05, new Fault { DropAfterEvents = 1 })); // dropped after the role chunk (streams only)
        var time = RoutingKit.Clock();
        await using var gateway = await GatewayHost.StartAsync(Yaml(a, b, cooldownS: 1, samePriority: true), time);

        // The clock moves 250 ms per 25 requests: A's breaker opens, half-opens and is probed many times meanwhile.
        var answers = await RunAsync(gateway, time, 1000, "flap", advanceEvery: 25, TimeSpan.FromMilliseconds(250));
        await RoutingKit.EventuallyAsync(() => gateway.Logs.Lines.Count(l => l.Contains(" POST /v1/chat/completions ", StringComparison.Ordinal)) >= 1000, "1000 request log lines");

        AssertAllServedAndAccounted(gateway, answers, "flap", a.Server.StartedCount + b.Server.StartedCount);
        Assert.True(a.Server.StartedCount < 500, $"a saw {a.Server.StartedCount} of 1000 first attempts and retries");

        // Whatever state the race left it in, a healthy A is let back in: no probe slot was leaked.
        a.Faults.Clear();
        time.Advance(TimeSpan.FromSeconds(2));
        var servedByA = 0;
        for (var i = 0; i < 64 && servedByA < 3; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "chaos");
            Assert.Equal(200, answer.Status);
            servedByA += answer.Deployment == "a/model-a" ? 1 : 0;
        }

        Assert.Equal(3, servedByA);
        Assert.Equal("closed", RoutingKit.BreakerState(await RoutingKit.AdminRoutingAsync(gateway), "a/model-a"));
    }
}
