namespace Shepherd.Tests.Routing;

using Microsoft.Extensions.DependencyInjection;
using Shepherd.Resilience;
using Shepherd.Testing;

/// <summary>Upstream keys: a refused key is taken out, the next key serves the same request, a probe brings it back.</summary>
public sealed class KeyRotationTests
{
    [Fact]
    public async Task RefusedKey_NextKeyServesSameRequest_KeyOutUntilItsProbeSucceeds()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.RefuseKey("sk-key-1");
        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 3, backoff_base_ms: 0, health_probe_interval_s: 0 }", "[ sk-key-0, sk-key-1 ]"));

        // Round-robin reaches the refused key within two requests; both requests succeed.
        var first = await RoutingKit.SendAsync(gateway, "m");
        var second = await RoutingKit.SendAsync(gateway, "m", stream: true);
        Assert.Equal(200, first.Status);
        Assert.Equal(200, second.Status);
        Assert.Equal("[DONE]", second.Events[^1]);
        var refusedOnce = upstream.Server.Requests.Count(r => r.BearerKey == "sk-key-1");
        Assert.Equal(1, refusedOnce);
        Assert.Equal(3, first.Attempts + second.Attempts); // the request that met the refused key took two attempts

        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        var key = RoutingKit.Key(routing, "p#1");
        Assert.Equal("out", key.GetProperty("state").GetString());
        Assert.True(key.TryGetProperty("out_since", out _));
        Assert.Equal("active", RoutingKit.Key(routing, "p#0").GetProperty("state").GetString());
        Assert.DoesNotContain("sk-key", routing.GetRawText(), StringComparison.Ordinal);

        // The health page shows it too.
        var ready = await gateway.Client.GetStringAsync("/health/ready");
        Assert.Contains("\"out\"", ready, StringComparison.Ordinal);

        // While out, the key is not used at all.
        for (var i = 0; i < 6; i++)
        {
            var answer = await RoutingKit.SendAsync(gateway, "m");
            Assert.Equal(200, answer.Status);
            Assert.Equal(1, answer.Attempts);
        }

        Assert.Equal(refusedOnce, upstream.Server.Requests.Count(r => r.BearerKey == "sk-key-1"));

        // A probe while the upstream still refuses it: still out.
        var prober = gateway.Services.GetRequiredService<KeyProber>();
        await prober.ProbeDeadKeysAsync(CancellationToken.None);
        Assert.Equal("out", RoutingKit.Key(await RoutingKit.AdminRoutingAsync(gateway), "p#1").GetProperty("state").GetString());
        var probe = upstream.Server.Requests.Last(r => r.Method == "GET");
        Assert.EndsWith("/v1/models", probe.Path, StringComparison.Ordinal);
        Assert.Equal("sk-key-1", probe.BearerKey);

        // The key works again: the next probe re-admits it and it serves.
        upstream.AcceptKey("sk-key-1");
        await prober.ProbeDeadKeysAsync(CancellationToken.None);
        Assert.Equal("active", RoutingKit.Key(await RoutingKit.AdminRoutingAsync(gateway), "p#1").GetProperty("state").GetString());
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(200, (await RoutingKit.SendAsync(gateway, "m")).Status);
        }

        Assert.Equal(2, upstream.Server.Requests.Count(r => r.Method == "POST" && r.BearerKey == "sk-key-1") - refusedOnce);
    }

    [Fact]
    public async Task AllKeysRefused_ClientGets502AndEveryKeyIsOut()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.RefuseKey("sk-key-0");
        upstream.RefuseKey("sk-key-1");
        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 4, backoff_base_ms: 0, health_probe_interval_s: 0 }", "[ sk-key-0, sk-key-1 ]"));

        var answer = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(502, answer.Status);
        Assert.Equal("upstream_auth_failed", answer.Error.GetProperty("code").GetString());
        Assert.DoesNotContain("sk-key", answer.Body, StringComparison.Ordinal);
        Assert.Equal(2, upstream.Server.StartedCount);
        var routing = await RoutingKit.AdminRoutingAsync(gateway);
        Assert.Equal("out", RoutingKit.Key(routing, "p#0").GetProperty("state").GetString());
        Assert.Equal("out", RoutingKit.Key(routing, "p#1").GetProperty("state").GetString());

        // With every key out, nothing is sent: the client is told to come back later.
        var next = await RoutingKit.SendAsync(gateway, "m");
        Assert.Equal(503, next.Status);
        Assert.NotNull(next.Header("retry-after"));
        Assert.Equal(2, upstream.Server.StartedCount);
    }

    [Fact]
    public async Task ManyRefusedKeys_MaxAttemptsStillCapsTheAttempts()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            upstream.RefuseKey($"sk-key-{i}");
        }

        await using var gateway = await GatewayHost.StartAsync(RoutingKit.OneModel(upstream, "{ max_attempts: 2, backoff_base_ms: 0, health_probe_interval_s: 0 }", "[ sk-key-0, sk-key-1, sk-key-2, sk-key-3, sk-key-4 ]"));

        var answer = await RoutingKit.SendAsync(gateway, "m");

        Assert.Equal(502, answer.Status);
        Assert.Equal(2, upstream.Server.StartedCount);
        Assert.Equal(2, answer.Attempts);
    }
}
