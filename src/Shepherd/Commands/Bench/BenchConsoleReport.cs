namespace Shepherd.Cli.Commands.Bench;

using System.Globalization;
using Spectre.Console;

/// <summary>The tables printed at the end of a run: one model in detail, or one comparison row per model.</summary>
internal static class BenchConsoleReport
{
    public static void Write(IAnsiConsole console, BenchSettings settings, IReadOnlyList<BenchRun> runs)
    {
        if (runs.Count == 1)
        {
            WriteDetail(console, settings, runs[0]);
        }
        else
        {
            WriteComparison(console, settings, runs);
        }
    }

    private static void WriteDetail(IAnsiConsole console, BenchSettings settings, BenchRun run)
    {
        var summary = new Table().Title(Escape($"shepherd bench: {run.Model}{(run.Interrupted ? " (interrupted)" : "")}")).AddColumns("metric", "value");
        summary.AddRow("served by", Escape(BenchFormat.Served(run.ServedBy)));
        summary.AddRow("requests", Count(run.Requests));
        summary.AddRow("successes", Count(run.Successes));
        summary.AddRow("errors", run.Errors == 0 ? "0" : $"[red]{Count(run.Errors)}[/]");
        if (run.Errors > 0)
        {
            summary.AddRow("errors by status", Escape(BenchFormat.Tally(run.ErrorsByStatus)));
            summary.AddRow("errors by code", Escape(BenchFormat.Tally(run.ErrorsByCode)));
            summary.AddRow("first error", Escape(BenchFormat.Error(run.FirstError!)));
        }

        summary.AddRow("concurrency", Count(settings.Concurrency));
        summary.AddRow("wall time", BenchFormat.Seconds(run.WallTime));
        summary.AddRow("requests/s", BenchFormat.Rate(run.RequestsPerSecond));
        summary.AddRow("tokens in / out", $"{BenchFormat.Count(run.InputTokens)} / {BenchFormat.Count(run.OutputTokens)}{(run.OutputTokensCounted ? " (out counted from chunks)" : "")}");
        summary.AddRow("output tokens/s (all requests)", BenchFormat.Rate(run.OutputTokensPerSecond));
        summary.AddRow("cost per request", BenchFormat.Usd(run.CostPerRequestUsd));
        summary.AddRow("cost total", BenchFormat.Usd(run.TotalCostUsd));
        console.Write(summary);

        var timings = new Table().Title("timings of successful requests").AddColumns("", "count", "mean", "p50", "p95", "p99", "min", "max", "stdev");
        foreach (var column in timings.Columns.Skip(1))
        {
            column.RightAligned();
        }

        AddTimingRow(timings, "latency (ms)", run.Latency, BenchFormat.Ms);
        if (settings.Stream)
        {
            AddTimingRow(timings, "TTFT (ms)", run.Ttft, BenchFormat.Ms);
            AddTimingRow(timings, "output tokens/s per stream", run.StreamTokensPerSecond, BenchFormat.Rate);
        }

        console.Write(timings);
    }

    private static void AddTimingRow(Table table, string name, BenchStatistics? stats, Func<double?, string> format)
    {
        if (stats is null)
        {
            table.AddRow(name, "0", BenchFormat.None, BenchFormat.None, BenchFormat.None, BenchFormat.None, BenchFormat.None, BenchFormat.None, BenchFormat.None);
            return;
        }

        table.AddRow(
            name,
            Count(stats.Count),
            format(stats.Mean),
            format(stats.Median),
            format(stats.P95),
            format(stats.P99),
            format(stats.Min),
            format(stats.Max),
            format(stats.StandardDeviation));
    }

    private static void WriteComparison(IAnsiConsole console, BenchSettings settings, IReadOnlyList<BenchRun> runs)
    {
        var table = new Table()
            .Title(Escape($"shepherd bench: {runs.Count} models, concurrency {settings.Concurrency}{(settings.Stream ? ", streamed" : "")}"))
            .AddColumns("model", "served by", "requests", "req/s", "p50 ms", "p95 ms", "TTFT p50 ms", "out tok/s", "$/request", "$ total", "errors");
        foreach (var column in table.Columns.Skip(2))
        {
            column.RightAligned();
        }

        foreach (var run in runs)
        {
            table.AddRow(
                Escape(run.Model + (run.Interrupted ? " (interrupted)" : "")),
                Escape(BenchFormat.ServedShort(run)),
                Count(run.Requests),
                BenchFormat.Rate(run.RequestsPerSecond),
                BenchFormat.Ms(run.Latency?.Median),
                BenchFormat.Ms(run.Latency?.P95),
                settings.Stream ? BenchFormat.Ms(run.Ttft?.Median) : BenchFormat.None,
                BenchFormat.Rate(run.OutputTokensPerSecond),
                BenchFormat.Usd(run.CostPerRequestUsd),
                BenchFormat.Usd(run.TotalCostUsd),
                run.Errors == 0 ? "0" : $"[red]{Count(run.Errors)}[/] {Escape("(" + BenchFormat.Tally(run.ErrorsByStatus) + ")")}");
        }

        console.Write(table);
    }

    private static string Count(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string text) => Markup.Escape(text);
}
