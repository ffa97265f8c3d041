namespace Shepherd.Tests.Routing;

using Shepherd.Configuration;
using Shepherd.Resilience;
using Shepherd.Routing;

public sealed class UpstreamKeyRingTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static UpstreamKeyRing Ring(int count, BreakerConfig? breaker = null) =>
        new(Enumerable.Range(0, count).Select(i => $"sk-secret-{i}").ToArray(), "prov", new InMemoryBreakerStore(breaker ?? new BreakerConfig()));

    private static List<int> Draw(UpstreamKeyRing ring, int count, DateTimeOffset now, ulong exclude = 0) =>
        Enumerable.Range(0, count).Select(_ => ring.NextUsable(now, exclude)?.Index ?? -1).ToList();

    [Fact]
    public void NextUsable_RoundRobin_EachKeyInTurn()
    {
        var ring = Ring(3);

        var drawn = Draw(ring, 9, T0);

        for (var i = 0; i < 9; i += 3)
        {
            Assert.Equal([0, 1, 2], drawn.Skip(i).Take(3).Order());
        }

        Assert.Equal(drawn[0], drawn[3]);
        Assert.Equal(drawn[1], drawn[4]);
    }

    [Fact]
    public void NextUsable_KeyOut_SkippedUntilReadmitted()
    {
        var ring = Ring(3);
        ring.Keys[1].MarkDead(T0);

        Assert.DoesNotContain(1, Draw(ring, 12, T0));

        // The usable keys share the load evenly: the key after the one that is out does not take its turns too.
        var drawn = Draw(ring, 12, T0);
        Assert.Equal(6, drawn.Count(i => i == 0));
        Assert.Equal(6, drawn.Count(i => i == 2));
        Assert.True(ring.Keys[1].IsDead);
        Assert.Equal(T0, ring.Keys[1].DeadSince);

        ring.Keys[1].Readmit();

        Assert.Contains(1, Draw(ring, 3, T0));
        Assert.Null(ring.Keys[1].DeadSince);
    }

    [Fact]
    public void NextUsable_KeyCoolingDown_SkippedUntilTheCooldownEnds()
    {
        var ring = Ring(2);
        ring.Keys[0].CoolUntil(T0.AddSeconds(5));

        Assert.All(Draw(ring, 6, T0.AddSeconds(4.9)), i => Assert.Equal(1, i));
        Assert.Equal(T0.AddSeconds(5), ring.Keys[0].CoolingUntil(T0));

        Assert.Contains(0, Draw(ring, 2, T0.AddSeconds(5)));
        Assert.Null(ring.Keys[0].CoolingUntil(T0.AddSeconds(5)));
    }

    [Fact]
    public void CoolUntil_ShorterThanTheCurrentCooldown_KeepsTheLongerOne()
    {
        var ring = Ring(1);
        ring.Keys[0].CoolUntil(T0.AddSeconds(10));
        ring.Keys[0].CoolUntil(T0.AddSeconds(2));

        Assert.Equal(T0.AddSeconds(10), ring.Keys[0].CoolingUntil(T0));
    }

    [Fact]
    public void NextUsable_ExcludedKeys_Skipped()
    {
        var ring = Ring(3);

        Assert.All(Draw(ring, 6, T0, UpstreamKeyRing.Bit(0) | UpstreamKeyRing.Bit(2)), i => Assert.Equal(1, i));
        Assert.Null(ring.NextUsable(T0, UpstreamKeyRing.Bit(0) | UpstreamKeyRing.Bit(1) | UpstreamKeyRing.Bit(2)));
    }

    [Fact]
    public void NextUsable_KeyBreakerOpen_Skipped()
    {
        var ring = Ring(2, new BreakerConfig { ConsecutiveFailures = 2, CooldownS = 30 });
        ring.Keys[0].Breaker.OnFailure(T0, false);
        ring.Keys[0].Breaker.OnFailure(T0, false);

        Assert.All(Draw(ring, 4, T0), i => Assert.Equal(1, i));
        Assert.Contains(0, Draw(ring, 4, T0.AddSeconds(30)));
    }

    [Fact]
    public void NextUsable_NoUsableKey_Null()
    {
        var ring = Ring(2);
        ring.Keys[0].MarkDead(T0);
        ring.Keys[1].CoolUntil(T0.AddSeconds(1));

        Assert.Null(ring.NextUsable(T0));
    }

    [Fact]
    public void NextUsable_NoKeys_KeylessUnlessExcluded()
    {
        var ring = new UpstreamKeyRing([], "local");

        Assert.Same(UpstreamKeyRing.Keyless, ring.NextUsable(T0));
        Assert.Null(ring.NextUsable(T0, UpstreamKeyRing.Bit(0)));
    }

    [Fact]
    public void Constructor_EmptyEntriesDropped_IdsNameTheProviderNotTheKey()
    {
        var ring = new UpstreamKeyRing(["sk-a", "", "sk-b"], "openai");

        Assert.Equal(2, ring.Count);
        Assert.Equal(["openai#0", "openai#1"], ring.Keys.Select(k => k.Id));
        Assert.DoesNotContain("sk-", ring.ToString(), StringComparison.Ordinal);
    }
}
