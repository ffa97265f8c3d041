namespace Shepherd.Tests.Routing;

using Shepherd.Routing.Strategies;

public sealed class RoutingStrategiesTests
{
    private static DeploymentCandidate Candidate(int index, int priority = 0, int weight = 1, int inFlight = 0, double latencyMs = double.NaN, decimal cost = 0m) =>
        new(index, priority, weight, inFlight, latencyMs, cost);

    private static int[] Order(IRoutingStrategy strategy, DeploymentCandidate[] candidates, Func<double> random)
    {
        var order = new int[candidates.Length];
        strategy.Order(candidates, order, random);
        return order;
    }

    private static void AssertPermutation(int[] order)
    {
        Assert.Equal(Enumerable.Range(0, order.Length), order.Order());
    }

    [Fact]
    public void Names_AreTheFourStrategies()
    {
        Assert.Equal(["cost", "latency", "least-busy", "priority"], RoutingStrategies.Names.Order(StringComparer.Ordinal));
        Assert.True(RoutingStrategies.TryGet("LEAST-BUSY", out var strategy));
        Assert.Equal("least-busy", strategy.Name);
        Assert.False(RoutingStrategies.TryGet("round-robin", out _));
    }

    [Fact]
    public void Priority_LowerTierAlwaysFirst_WhateverTheWeights()
    {
        var strategy = RoutingStrategies.Get("priority");
        var candidates = new[] { Candidate(0, priority: 2, weight: 1000), Candidate(1, priority: 0), Candidate(2, priority: 1, weight: 50), Candidate(3, priority: 0) };
        var random = new Random(7);

        for (var i = 0; i < 2_000; i++)
        {
            var order = Order(strategy, candidates, random.NextDouble);
            AssertPermutation(order);
            Assert.Equal([1, 3], order[..2].Order());
            Assert.Equal(2, order[2]);
            Assert.Equal(0, order[3]);
        }
    }

    [Fact]
    public void Priority_WeightsInsideATier_SplitFirstPlacesInProportion()
    {
        var strategy = RoutingStrategies.Get("priority");
        var candidates = new[] { Candidate(0, weight: 3), Candidate(1, weight: 1), Candidate(2, weight: 6), Candidate(3, priority: 1, weight: 100) };
        var random = new Random(12345);
        const int Draws = 20_000;
        var first = new int[candidates.Length];

        for (var i = 0; i < Draws; i++)
        {
            first[Order(strategy, candidates, random.NextDouble)[0]]++;
        }

        // Expected shares 0.3 / 0.1 / 0.6; one standard deviation is at most 0.0035 here.
        Assert.InRange(first[0] / (double)Draws, 0.28, 0.32);
        Assert.InRange(first[1] / (double)Draws, 0.085, 0.115);
        Assert.InRange(first[2] / (double)Draws, 0.58, 0.62);
        Assert.Equal(0, first[3]);
    }

    [Fact]
    public void Priority_SecondPlace_IsAlsoWeighted()
    {
        // Failover order matters too: after a weight-3 deployment fails, the weight-2 one is next more often than the weight-1 one.
        var strategy = RoutingStrategies.Get("priority");
        var candidates = new[] { Candidate(0, weight: 3), Candidate(1, weight: 2), Candidate(2, weight: 1) };
        var random = new Random(99);
        var secondAfterZero = new int[3];
        for (var i = 0; i < 20_000; i++)
        {
            var order = Order(strategy, candidates, random.NextDouble);
            if (order[0] == 0)
            {
                secondAfterZero[order[1]]++;
            }
        }

        var total = (double)(secondAfterZero[1] + secondAfterZero[2]);
        Assert.InRange(secondAfterZero[1] / total, 0.63, 0.70); // 2 / (2 + 1)
    }

    [Fact]
    public void LeastBusy_FewestInFlightFirst()
    {
        var strategy = RoutingStrategies.Get("least-busy");
        var candidates = new[] { Candidate(0, inFlight: 3), Candidate(1, inFlight: 0), Candidate(2, inFlight: 1), Candidate(3, inFlight: 7) };
        var random = new Random(1);

        for (var i = 0; i < 500; i++)
        {
            Assert.Equal([1, 2, 0, 3], Order(strategy, candidates, random.NextDouble));
        }
    }

    [Fact]
    public void LeastBusy_Ties_AreBrokenAtRandom()
    {
        var strategy = RoutingStrategies.Get("least-busy");
        var candidates = new[] { Candidate(0, inFlight: 2), Candidate(1, inFlight: 2), Candidate(2, inFlight: 5) };
        var random = new Random(3);
        var first = new int[3];
        for (var i = 0; i < 2_000; i++)
        {
            var order = Order(strategy, candidates, random.NextDouble);
            first[order[0]]++;
            Assert.Equal(2, order[2]);
        }

        Assert.InRange(first[0], 850, 1150);
        Assert.InRange(first[1], 850, 1150);
    }

    [Fact]
    public void Latency_UnmeasuredFirstThenFastest()
    {
        var strategy = RoutingStrategies.Get("latency");
        var candidates = new[] { Candidate(0, latencyMs: 250), Candidate(1, latencyMs: 20), Candidate(2), Candidate(3, latencyMs: 90), Candidate(4) };
        var random = new Random(5);

        for (var i = 0; i < 500; i++)
        {
            var order = Order(strategy, candidates, random.NextDouble);
            Assert.Equal([2, 4], order[..2].Order());
            Assert.Equal([1, 3, 0], order[2..]);
        }
    }

    [Fact]
    public void Latency_AllMeasured_AscendingAverage()
    {
        var strategy = RoutingStrategies.Get("latency");
        var candidates = new[] { Candidate(0, latencyMs: 300.5), Candidate(1, latencyMs: 300.4), Candidate(2, latencyMs: 0.1) };

        Assert.Equal([2, 1, 0], Order(strategy, candidates, new Random(0).NextDouble));
    }

    [Fact]
    public void Cost_CheapestFirst()
    {
        var strategy = RoutingStrategies.Get("cost");
        var candidates = new[] { Candidate(0, cost: 0.000_050m), Candidate(1, cost: 0.000_001m), Candidate(2, cost: 0.000_010m) };
        var random = new Random(8);

        for (var i = 0; i < 500; i++)
        {
            Assert.Equal([1, 2, 0], Order(strategy, candidates, random.NextDouble));
        }
    }

    [Fact]
    public void Cost_EqualCost_LowerPriorityNumberFirst()
    {
        var strategy = RoutingStrategies.Get("cost");
        var candidates = new[] { Candidate(0, priority: 3, cost: 0.002m), Candidate(1, priority: 1, cost: 0.002m), Candidate(2, priority: 0, cost: 0.003m) };
        var random = new Random(9);

        for (var i = 0; i < 500; i++)
        {
            Assert.Equal([1, 0, 2], Order(strategy, candidates, random.NextDouble));
        }
    }

    [Fact]
    public void Order_MoreCandidatesThanTheStackBuffer_StillAPermutation()
    {
        var random = new Random(11);
        var candidates = Enumerable.Range(0, 40).Select(i => Candidate(i, priority: i % 3, weight: 1 + (i % 5), inFlight: i % 7, latencyMs: i * 3.0, cost: i)).ToArray();
        foreach (var name in RoutingStrategies.Names)
        {
            AssertPermutation(Order(RoutingStrategies.Get(name), candidates, random.NextDouble));
        }
    }
}
