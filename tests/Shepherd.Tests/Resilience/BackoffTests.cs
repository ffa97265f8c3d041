namespace Shepherd.Tests.Resilience;

using Shepherd.Resilience;

public sealed class BackoffTests
{
    private static readonly TimeSpan Base = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(2);

    [Theory]
    [InlineData(1, 100)]
    [InlineData(2, 200)]
    [InlineData(3, 400)]
    [InlineData(4, 800)]
    [InlineData(5, 1600)]
    [InlineData(6, 2000)]
    [InlineData(30, 2000)]
    public void Delay_FullJitter_StaysWithinZeroAndTheExponentialCeiling(int retry, int ceilingMs)
    {
        var random = new Random(retry);
        var largest = TimeSpan.Zero;
        for (var i = 0; i < 2_000; i++)
        {
            var delay = Backoff.Delay(retry, Base, Max, null, random.NextDouble());
            Assert.InRange(delay, TimeSpan.Zero, TimeSpan.FromMilliseconds(ceilingMs));
            largest = delay > largest ? delay : largest;
        }

        // Full jitter uses the whole range, not just its top.
        Assert.True(largest > TimeSpan.FromMilliseconds(ceilingMs * 0.9), $"largest {largest}");
        Assert.Equal(TimeSpan.Zero, Backoff.Delay(retry, Base, Max, null, 0));
        Assert.True(Backoff.Delay(retry, Base, Max, null, 0.999999) < TimeSpan.FromMilliseconds(ceilingMs));
    }

    [Fact]
    public void Delay_RetryAfterLongerThanTheJitter_IsTheFloor()
    {
        var retryAfter = TimeSpan.FromSeconds(3);

        Assert.Equal(retryAfter, Backoff.Delay(1, Base, Max, retryAfter, 0.5));
        Assert.Equal(retryAfter, Backoff.Delay(30, Base, Max, retryAfter, 0.999)); // even beyond the maximum backoff
    }

    [Fact]
    public void Delay_RetryAfterShorterThanTheJitter_JitterWins()
    {
        var delay = Backoff.Delay(5, Base, Max, TimeSpan.FromMilliseconds(10), 0.5);

        Assert.Equal(TimeSpan.FromMilliseconds(800), delay);
    }

    [Fact]
    public void Delay_ZeroBase_IsZeroUnlessRetryAfter()
    {
        Assert.Equal(TimeSpan.Zero, Backoff.Delay(3, TimeSpan.Zero, Max, null, 0.7));
        Assert.Equal(TimeSpan.FromMilliseconds(1500), Backoff.Delay(3, TimeSpan.Zero, Max, TimeSpan.FromMilliseconds(1500), 0.7));
    }
}
