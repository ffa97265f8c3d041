namespace Shepherd.Cli.Commands.Bench;

/// <summary>
/// One model's run: its samples and every number the reports show, computed once. Timings (latency, TTFT, speed)
/// are of successful requests only, so fast refusals do not make a model look quick.
/// </summary>
internal sealed class BenchRun
{
    public BenchRun(string model, IReadOnlyList<BenchSample> samples, TimeSpan wallTime, DateTimeOffset startedAt, bool interrupted, BenchSample? fatal)
    {
        Model = model;
        Samples = samples;
        WallTime = wallTime;
        StartedAt = startedAt;
        Interrupted = interrupted;
        Fatal = fatal;
        var ok = samples.Where(s => s.Ok).ToList();
        Successes = ok.Count;
        ErrorsByStatus = Tally(samples.Where(s => !s.Ok).Select(s => s.ErrorStatus!));
        ErrorsByCode = Tally(samples.Where(s => !s.Ok).Select(s => s.ErrorCode ?? "unknown"));
        FirstError = samples.FirstOrDefault(s => !s.Ok);
        Latency = BenchStatistics.From(ok.Select(s => s.LatencyMs));
        Ttft = BenchStatistics.From(ok.Where(s => s.TtftMs is not null).Select(s => s.TtftMs!.Value));
        StreamTokensPerSecond = BenchStatistics.From(ok.Where(s => s.StreamTokensPerSecond is not null).Select(s => s.StreamTokensPerSecond!.Value));
        InputTokens = SumOrNull(ok.Select(s => s.InputTokens));
        OutputTokens = SumOrNull(ok.Select(s => s.OutputTokens));
        OutputTokensCounted = ok.Any(s => s.OutputTokensCounted);
        var costs = ok.Where(s => s.CostUsd is not null).Select(s => s.CostUsd!.Value).ToList();
        CostKnown = costs.Count;
        TotalCostUsd = costs.Count == 0 ? null : costs.Sum();
        CostPerRequestUsd = costs.Count == 0 ? null : costs.Sum() / costs.Count;
        ServedBy = ok
            .GroupBy(s => (s.ServedModel, s.ServedProvider))
            .Where(g => g.Key.ServedModel is not null || g.Key.ServedProvider is not null)
            .Select(g => new ServedBy(g.Key.ServedModel, g.Key.ServedProvider, g.Count()))
            .OrderByDescending(s => s.Requests)
            .ToList();
    }

    /// <summary>The model asked for.</summary>
    public string Model { get; }

    /// <summary>Every completed request, in the order they were sent.</summary>
    public IReadOnlyList<BenchSample> Samples { get; }

    /// <summary>From the first request sent to the last one finished.</summary>
    public TimeSpan WallTime { get; }

    public DateTimeOffset StartedAt { get; }

    /// <summary>Stopped by Ctrl+C: the numbers are those of the requests that completed.</summary>
    public bool Interrupted { get; }

    /// <summary>The refusal that stopped the run (unknown model, bad key, bad request), if one did.</summary>
    public BenchSample? Fatal { get; }

    public int Requests => Samples.Count;

    public int Successes { get; }

    public int Errors => Requests - Successes;

    /// <summary>Failed requests by HTTP status, or "network", "timeout", "stream", "invalid"; ordered by key.</summary>
    public IReadOnlyList<KeyValuePair<string, int>> ErrorsByStatus { get; }

    /// <summary>Failed requests by the error's code (else type).</summary>
    public IReadOnlyList<KeyValuePair<string, int>> ErrorsByCode { get; }

    public BenchSample? FirstError { get; }

    /// <summary>Completed requests (successful or not) per second of wall time.</summary>
    public double RequestsPerSecond => WallTime > TimeSpan.Zero ? Requests / WallTime.TotalSeconds : 0;

    /// <summary>Successful requests per second of wall time.</summary>
    public double SuccessesPerSecond => WallTime > TimeSpan.Zero ? Successes / WallTime.TotalSeconds : 0;

    public BenchStatistics? Latency { get; }

    /// <summary>Time to first token (streams).</summary>
    public BenchStatistics? Ttft { get; }

    /// <summary>Per-stream output speed after the first token (streams).</summary>
    public BenchStatistics? StreamTokensPerSecond { get; }

    public long? InputTokens { get; }

    public long? OutputTokens { get; }

    /// <summary>True when some output tokens were counted from content chunks (no usage in the stream).</summary>
    public bool OutputTokensCounted { get; }

    /// <summary>All output tokens per second of wall time: the run's generation throughput.</summary>
    public double? OutputTokensPerSecond => OutputTokens is { } tokens && WallTime > TimeSpan.Zero ? tokens / WallTime.TotalSeconds : null;

    /// <summary>Successful requests whose cost the gateway reported.</summary>
    public int CostKnown { get; }

    /// <summary>Sum of the reported costs; null when none was reported.</summary>
    public decimal? TotalCostUsd { get; }

    /// <summary>Mean reported cost of a successful request; null when none was reported.</summary>
    public decimal? CostPerRequestUsd { get; }

    /// <summary>Which model and provider answered (<c>x-shepherd-model</c>, <c>x-shepherd-provider</c>), most first.</summary>
    public IReadOnlyList<ServedBy> ServedBy { get; }

    private static List<KeyValuePair<string, int>> Tally(IEnumerable<string> keys) =>
        keys.GroupBy(k => k, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, g.Count()))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ToList();

    private static long? SumOrNull(IEnumerable<int?> values)
    {
        long? sum = null;
        foreach (var value in values)
        {
            if (value is { } v)
            {
                sum = (sum ?? 0) + v;
            }
        }

        return sum;
    }
}

/// <summary>A model and provider that answered, and how many successful requests they served.</summary>
internal sealed record ServedBy(string? Model, string? Provider, int Requests);
