namespace Shepherd.Tests.Cli.Bench;

using Shepherd.Cli.Commands.Bench;

public sealed class BenchStatisticsTests
{
    private const int Precision = 9; // decimal places (an int: a double would be a tolerance)

    [Fact]
    public void From_OneToTen_PercentilesInterpolateBetweenRanks()
    {
        var stats = BenchStatistics.From([7, 3, 10, 1, 5, 9, 2, 8, 6, 4])!;

        Assert.Equal(10, stats.Count);
        Assert.Equal(1, stats.Min);
        Assert.Equal(10, stats.Max);
        Assert.Equal(5.5, stats.Mean, Precision);
        Assert.Equal(5.5, stats.Median, Precision);
        Assert.Equal(9.55, stats.P95, Precision);
        Assert.Equal(9.91, stats.P99, Precision);
        Assert.Equal(1, stats.Percentile(0), Precision);
        Assert.Equal(10, stats.Percentile(100), Precision);
        Assert.Equal(3.25, stats.Percentile(25), Precision);
        Assert.Equal(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, stats.Sorted);
    }

    [Fact]
    public void Median_OddCount_IsTheMiddleValue()
    {
        var stats = BenchStatistics.From([30, 10, 20])!;

        Assert.Equal(20, stats.Median, Precision);
        Assert.Equal(20, stats.Mean, Precision);
    }

    [Fact]
    public void StandardDeviation_KnownData_IsTheSampleOne()
    {
        // Population stdev of this classic set is 2; the sample one divides by n − 1: √(32 / 7).
        var stats = BenchStatistics.From([2, 4, 4, 4, 5, 5, 7, 9])!;

        Assert.Equal(5, stats.Mean, Precision);
        Assert.Equal(Math.Sqrt(32.0 / 7), stats.StandardDeviation, Precision);
    }

    [Fact]
    public void From_SingleValue_EveryStatisticIsThatValueAndStdevZero()
    {
        var stats = BenchStatistics.From([42.5])!;

        Assert.Equal(42.5, stats.Min);
        Assert.Equal(42.5, stats.Max);
        Assert.Equal(42.5, stats.Median);
        Assert.Equal(42.5, stats.P99);
        Assert.Equal(0, stats.StandardDeviation);
    }

    [Fact]
    public void From_NoFiniteValues_ReturnsNull()
    {
        Assert.Null(BenchStatistics.From([]));
        Assert.Null(BenchStatistics.From([double.NaN, double.PositiveInfinity]));
        Assert.Equal(2, BenchStatistics.From([1, double.NaN, 3])!.Count);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(100.5)]
    public void Percentile_OutOfRange_Throws(double percent)
    {
        var stats = BenchStatistics.From([1, 2])!;

        Assert.Throws<ArgumentOutOfRangeException>(() => stats.Percentile(percent));
    }

    [Fact]
    public void Histogram_OneToTenInThreeBuckets_EqualWidthsLastBucketHoldsTheMaximum()
    {
        var buckets = BenchStatistics.From([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])!.Histogram(3);

        Assert.Equal(3, buckets.Count);
        Assert.Equal(new[] { 3, 3, 4 }, buckets.Select(b => b.Count));
        Assert.Equal(1, buckets[0].From, Precision);
        Assert.Equal(4, buckets[0].To, Precision);
        Assert.Equal(4, buckets[1].From, Precision);
        Assert.Equal(7, buckets[2].From, Precision);
        Assert.Equal(10, buckets[2].To);
    }

    [Fact]
    public void Histogram_SkewedData_EmptyBucketsInTheGapAreKept()
    {
        var buckets = BenchStatistics.From([0, 1, 1, 2, 100])!.Histogram(4);

        Assert.Equal(new[] { 4, 0, 0, 1 }, buckets.Select(b => b.Count));
        Assert.Equal(5, buckets.Sum(b => b.Count));
    }

    [Fact]
    public void Histogram_AllValuesEqual_OneBucketWithAll()
    {
        var buckets = BenchStatistics.From([5, 5, 5])!.Histogram(10);

        var bucket = Assert.Single(buckets);
        Assert.Equal(new HistogramBucket(5, 5, 3), bucket);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(4, 2)]
    [InlineData(40, 7)]
    [InlineData(100, 10)]
    [InlineData(100_000, 30)]
    public void SuggestedBuckets_SquareRootBetweenOneAndThirty(int count, int expected)
    {
        Assert.Equal(expected, BenchStatistics.SuggestedBuckets(count));
    }

    [Fact]
    public void Histogram_Default_CountsEveryValue()
    {
        var values = Enumerable.Range(0, 40).Select(i => (double)(i * i % 17)).ToArray();

        var buckets = BenchStatistics.From(values)!.Histogram();

        Assert.Equal(7, buckets.Count);
        Assert.Equal(40, buckets.Sum(b => b.Count));
    }
}
