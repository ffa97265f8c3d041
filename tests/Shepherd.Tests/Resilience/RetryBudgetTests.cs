namespace Shepherd.Tests.Resilience;

using Shepherd.Configuration;
using Shepherd.Resilience;

public sealed class RetryBudgetTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static int Drain(RetryBudget budget, DateTimeOffset now)
    {
        var granted = 0;
        while (budget.TryRetry(now))
        {
            if (++granted > 100_000)
            {
                throw new InvalidOperationException("The budget never ran out.");
            }
        }

        return granted;
    }

    [Fact]
    public void TryRetry_NoTraffic_OnlyTheFloorIsAllowed()
    {
        var budget = new RetryBudget(new RetryBudgetConfig { Ratio = 0.2, WindowS = 10, MinPerSecond = 2 });

        Assert.Equal(20, Drain(budget, T0)); // 2 per second over a 10 s window
    }

    [Fact]
    public void TryRetry_WithRequests_RatioOfThemPlusTheFloor()
    {
        var budget = new RetryBudget(new RetryBudgetConfig { Ratio = 0.2, WindowS = 10, MinPerSecond = 1 });
        for (var i = 0; i < 100; i++)
        {
            budget.OnRequest(T0.AddSeconds(i % 10));
        }

        Assert.Equal(20 + 10, Drain(budget, T0.AddSeconds(9)));
    }

    [Fact]
    public void TryRetry_ZeroFloorAndRatio_NeverRetries()
    {
        var budget = new RetryBudget(new RetryBudgetConfig { Ratio = 0, WindowS = 10, MinPerSecond = 0 });
        budget.OnRequest(T0);

        Assert.False(budget.TryRetry(T0));
    }

    [Fact]
    public void TryRetry_WindowSlides_SpentRetriesAndOldRequestsExpire()
    {
        var budget = new RetryBudget(new RetryBudgetConfig { Ratio = 0.5, WindowS = 10, MinPerSecond = 1 });
        for (var i = 0; i < 20; i++)
        {
            budget.OnRequest(T0);
        }

        Assert.Equal(10 + 10, Drain(budget, T0));

        // Still inside the window: nothing new.
        Assert.False(budget.TryRetry(T0.AddSeconds(9)));

        // The second that held the requests and the spent retries has left the window: only the floor is back.
        Assert.Equal(10, Drain(budget, T0.AddSeconds(10)));
    }

    [Fact]
    public void TryRetry_RequestsEarnedLater_AddToWhatIsLeft()
    {
        var budget = new RetryBudget(new RetryBudgetConfig { Ratio = 0.5, WindowS = 10, MinPerSecond = 0 });
        budget.OnRequest(T0);
        budget.OnRequest(T0);
        Assert.Equal(1, Drain(budget, T0));

        budget.OnRequest(T0.AddSeconds(3));
        budget.OnRequest(T0.AddSeconds(3));

        Assert.Equal(1, Drain(budget, T0.AddSeconds(3)));
    }
}
