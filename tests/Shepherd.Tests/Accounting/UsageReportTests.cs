namespace Shepherd.Tests.Accounting;

using Shepherd.Accounting;
using Shepherd.Configuration;

/// <summary>The report arithmetic: savings against a baseline, the run rate, totals and time ranges, against hand-computed values.</summary>
public sealed class UsageReportTests
{
    private static readonly PriceConfig Big = new() { Input = 10m, Output = 30m, CachedInput = 2.5m };

    private static UsageRow Row(string group, long prompt, long cached, long completion, decimal cost) =>
        new(group, 1, 0, prompt, cached, completion, 0, 0, cost, 0);

    [Fact]
    public void BaselineCost_HandComputedTable()
    {
        // | row   | uncached × 10 | cached × 2.5 | completion × 30 | baseline  | cost    | savings | %     |
        // | big   | 1000 → 10000  | 1000 → 2500  | 100 → 3000      | 0.0155    | 0.0155  | 0       | 0     |
        // | small | 900 → 9000    | 400 → 1000   | 1200 → 36000    | 0.046     | 0.00245 | 0.04355 | 94.67 |
        // | total | 1900 → 19000  | 1400 → 3500  | 1300 → 39000    | 0.0615    | 0.01795 | 0.04355 | 70.81 |
        var big = Row("big", 2000, 1000, 100, 0.0155m);
        var small = Row("small", 1300, 400, 1200, 0.00245m);
        var total = UsageReport.Total([big, small]);

        Assert.Equal(new Savings(0.0155m, 0m, 0m), UsageReport.SavingsOf(big.Cost, UsageReport.BaselineCost(big, Big)));
        Assert.Equal(new Savings(0.046m, 0.04355m, 94.67m), UsageReport.SavingsOf(small.Cost, UsageReport.BaselineCost(small, Big)));
        Assert.Equal((3300L, 1400L, 1300L, 0.01795m), (total.PromptTokens, total.CachedTokens, total.CompletionTokens, total.Cost));
        Assert.Equal(new Savings(0.0615m, 0.04355m, 70.81m), UsageReport.SavingsOf(total.Cost, UsageReport.BaselineCost(total, Big)));
    }

    [Fact]
    public void BaselineCost_NoCachedRate_CachedTokensAtTheInputRate()
    {
        // 1300 prompt × 0.5 + 1200 completion × 1.5 = 650 + 1800 = 2450 per million.
        Assert.Equal(0.00245m, UsageReport.BaselineCost(Row("x", 1300, 400, 1200, 0m), new PriceConfig { Input = 0.5m, Output = 1.5m }));
    }

    [Fact]
    public void SavingsOf_DearerThanTheBaselineOrNothingToCompare_NegativeOrNoPercent()
    {
        Assert.Equal(new Savings(1m, -0.5m, -50m), UsageReport.SavingsOf(1.5m, 1m));
        Assert.Equal(new Savings(0m, 0m, null), UsageReport.SavingsOf(0m, 0m));
    }

    [Fact]
    public void RunRateOf_MidMonth_ProjectsThePaceOverTheWholeMonth()
    {
        // 21.5 days into a 30-day month: 0.01795 × 30 / 21.5 = 0.0250465116… → 0.025046512.
        var rate = UsageReport.RunRateOf(0.01795m, new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        Assert.Equal(new RunRate(0.01795m, 0.025046512m, 21.5m, 30), rate);
    }

    [Fact]
    public void RunRateOf_FirstInstantOfALeapFebruary_ProjectionIsTheSpendSoFar()
    {
        Assert.Equal(new RunRate(0m, 0m, 0m, 29), UsageReport.RunRateOf(0m, new DateTimeOffset(2028, 2, 1, 0, 0, 0, TimeSpan.Zero)));

        // Local offsets do not move the month: 2028-03-01T01:00+02:00 is still February in UTC (23 h into Feb 29).
        var rate = UsageReport.RunRateOf(29m, new DateTimeOffset(2028, 3, 1, 1, 0, 0, TimeSpan.FromHours(2)));
        Assert.Equal(29, rate.DaysInMonth);
        Assert.Equal(28.958333m, rate.DaysElapsed);
    }

    [Theory]
    [InlineData("7d", false, "2026-11-15T12:00:00Z")]
    [InlineData("36h", false, "2026-11-21T00:00:00Z")]
    [InlineData("90m", false, "2026-11-22T10:30:00Z")]
    [InlineData("2w", false, "2026-11-08T12:00:00Z")]
    [InlineData("2026-11-01", false, "2026-11-01T00:00:00Z")]
    [InlineData("2026-11-30", true, "2026-12-01T00:00:00Z")]
    [InlineData("2026-11-01T12:00:00Z", false, "2026-11-01T12:00:00Z")]
    [InlineData("2026-11-01T12:00:00+02:00", true, "2026-11-01T10:00:00Z")]
    [InlineData("2026-11-01T12:00", false, "2026-11-01T12:00:00Z")]
    public void TryParseTime_AcceptedForms(string text, bool isEnd, string expected)
    {
        var now = new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
        Assert.True(UsageReport.TryParseTime(text, now, isEnd, out var time));
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), time);
    }

    [Theory]
    [InlineData("")]
    [InlineData("yesterday")]
    [InlineData("7")]
    [InlineData("7y")]
    [InlineData("-7d")]
    [InlineData("+7d")]
    [InlineData("2026-13-01")]
    [InlineData("1700000000")]
    [InlineData("99999999d")]
    [InlineData("Nov 1 2026")]
    public void TryParseTime_RefusedForms(string text)
    {
        Assert.False(UsageReport.TryParseTime(text, DateTimeOffset.UtcNow, isEnd: false, out _));
    }
}
