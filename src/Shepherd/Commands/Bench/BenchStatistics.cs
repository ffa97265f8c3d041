namespace Shepherd.Cli.Commands.Bench;

/// <summary>
/// Descriptive statistics of one series of measurements (latencies, times to first token, speeds). Pure: built once
/// from the values, no clock, no I/O.
/// </summary>
/// <remarks>
/// Percentiles interpolate linearly between the two nearest ranks (the "linear" method of NumPy and R's type 7), so
/// the median of an even count is the mean of the two middle values and p100 is the maximum. The standard deviation is
/// the sample one (divides by n − 1); a single value has none (0).
/// </remarks>
internal sealed class BenchStatistics
{
    private readonly double[] _sorted;

    private BenchStatistics(double[] sorted)
    {
        _sorted = sorted;
        Count = sorted.Length;
        Min = sorted[0];
        Max = sorted[^1];

        // Two passes (mean, then squared deviations) rather than sum-of-squares: no cancellation on large latencies.
        var sum = 0d;
        foreach (var value in sorted)
        {
            sum += value;
        }

        Mean = sum / Count;
        var squares = 0d;
        foreach (var value in sorted)
        {
            squares += (value - Mean) * (value - Mean);
        }

        StandardDeviation = Count > 1 ? Math.Sqrt(squares / (Count - 1)) : 0;
    }

    public int Count { get; }

    public double Mean { get; }

    public double Min { get; }

    public double Max { get; }

    public double StandardDeviation { get; }

    public double Median => Percentile(50);

    public double P95 => Percentile(95);

    public double P99 => Percentile(99);

    /// <summary>The values in ascending order.</summary>
    public IReadOnlyList<double> Sorted => _sorted;

    /// <summary>Statistics of the finite values given, or null when there are none.</summary>
    public static BenchStatistics? From(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).ToArray();
        if (sorted.Length == 0)
        {
            return null;
        }

        Array.Sort(sorted);
        return new BenchStatistics(sorted);
    }

    /// <summary>The <paramref name="percent"/>-th percentile (0 … 100), interpolated between the nearest ranks.</summary>
    public double Percentile(double percent)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(percent, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        var rank = percent / 100 * (_sorted.Length - 1);
        var lower = (int)Math.Floor(rank);
        var upper = Math.Min(lower + 1, _sorted.Length - 1);
        return _sorted[lower] + ((rank - lower) * (_sorted[upper] - _sorted[lower]));
    }

    /// <summary>
    /// Equal-width buckets from the minimum to the maximum: bucket i holds [from, to), the last one also its upper
    /// bound (the maximum). All values equal: one bucket holding them all.
    /// </summary>
    public IReadOnlyList<HistogramBucket> Histogram(int buckets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        if (Max == Min)
        {
            return [new HistogramBucket(Min, Max, Count)];
        }

        var width = (Max - Min) / buckets;
        var counts = new int[buckets];
        foreach (var value in _sorted)
        {
            counts[Math.Min((int)((value - Min) / width), buckets - 1)]++;
        }

        var result = new HistogramBucket[buckets];
        for (var i = 0; i < buckets; i++)
        {
            // The last upper bound is the maximum itself, not min + n × width with its rounding error.
            result[i] = new HistogramBucket(Min + (i * width), i == buckets - 1 ? Max : Min + ((i + 1) * width), counts[i]);
        }

        return result;
    }

    /// <summary>A histogram with a bucket count that suits the sample size: √n, between 1 and 30.</summary>
    public IReadOnlyList<HistogramBucket> Histogram() => Histogram(SuggestedBuckets(Count));

    /// <summary>√n buckets (rounded up), at least 1 and at most 30.</summary>
    public static int SuggestedBuckets(int count) => Math.Clamp((int)Math.Ceiling(Math.Sqrt(count)), 1, 30);
}

/// <summary>One histogram bar: values in [<see cref="From"/>, <see cref="To"/>).</summary>
internal readonly record struct HistogramBucket(double From, double To, int Count);
