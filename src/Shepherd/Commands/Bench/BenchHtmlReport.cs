namespace Shepherd.Cli.Commands.Bench;

using System.Globalization;
using System.Net;
using System.Text;

/// <summary>
/// Writes the <c>--html</c> report: one self-contained page (inline CSS and SVG, no script, no external reference), so it
/// can be mailed, archived and opened offline.
/// </summary>
internal static class BenchHtmlReport
{
    private const int Width = 640;

    private const int Height = 260;

    private const int Left = 56;

    private const int Right = 16;

    private const int Top = 16;

    private const int Bottom = 40;

    /// <summary>Colours that stay apart for the first runs of a comparison (and for colour-blind readers).</summary>
    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

    public static string Render(BenchSettings settings, IReadOnlyList<BenchRun> runs, DateTimeOffset startedAt)
    {
        var html = new StringBuilder(64 * 1024);
        html.Append("""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>shepherd bench</title>
            <style>
            body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
            h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
            table { border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }
            th, td { border: 1px solid #ddd; padding: .35rem .7rem; text-align: left; }
            td.n { text-align: right; font-variant-numeric: tabular-nums; }
            th { background: #f4f5f7; }
            .err { color: #b00020; }
            .charts { display: flex; flex-wrap: wrap; gap: 1.5rem; }
            figure { margin: 0; } figcaption { font-size: .9rem; color: #555; margin-bottom: .3rem; }
            svg text { font-size: 11px; fill: #444; }
            .muted { color: #777; font-size: .9rem; }
            </style>
            </head>
            <body>

            """);
        html.Append("<h1>shepherd bench</h1>\n");
        html.Append(CultureInfo.InvariantCulture, $"<p class=\"muted\">Started {E(startedAt.ToString("u", CultureInfo.InvariantCulture))} by shepherd {E(Server.Hosting.GatewayServices.Version)}.</p>\n");
        WriteSettings(html, settings);
        if (runs.Count > 1)
        {
            html.Append("<h2>Comparison</h2>\n");
            WriteComparison(html, settings, runs);
            var curves = runs
                .Select((r, i) => (r.Model, Latency: r.Latency!, Colour: Palette[i % Palette.Length]))
                .Where(c => c.Latency is not null)
                .ToList();
            if (curves.Count > 0)
            {
                html.Append("<figure><figcaption>Latency by percentile (ms), all models</figcaption>\n");
                PercentilePlot(html, curves);
                html.Append("</figure>\n");
            }
        }

        for (var i = 0; i < runs.Count; i++)
        {
            WriteRun(html, settings, runs[i], Palette[i % Palette.Length]);
        }

        html.Append("</body>\n</html>\n");
        return html.ToString();
    }

    private static void WriteSettings(StringBuilder html, BenchSettings settings)
    {
        html.Append("<table>\n");
        Row(html, "gateway", settings.BaseUrl.AbsoluteUri.TrimEnd('/'));
        Row(html, "models", string.Join(", ", settings.Models));
        Row(html, settings.Duration is not null ? "duration" : "requests per model", settings.Duration is { } duration
            ? duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s"
            : settings.Requests.ToString(CultureInfo.InvariantCulture));
        Row(html, "concurrency", settings.Concurrency.ToString(CultureInfo.InvariantCulture));
        Row(html, "stream", settings.Stream ? "yes" : "no");
        Row(html, "max tokens", settings.MaxTokens?.ToString(CultureInfo.InvariantCulture) ?? BenchFormat.None);
        Row(html, "prompt", settings.PromptSource);
        html.Append("</table>\n");
    }

    private static void WriteComparison(StringBuilder html, BenchSettings settings, IReadOnlyList<BenchRun> runs)
    {
        html.Append("<table>\n<tr><th>model</th><th>served by</th><th>requests</th><th>requests/s</th><th>p50 ms</th><th>p95 ms</th><th>TTFT p50 ms</th><th>out tokens/s</th><th>$/request</th><th>$ total</th><th>errors</th></tr>\n");
        foreach (var run in runs)
        {
            html.Append("<tr>");
            Cell(html, run.Model, numeric: false);
            Cell(html, BenchFormat.ServedShort(run), numeric: false);
            Cell(html, run.Requests.ToString(CultureInfo.InvariantCulture));
            Cell(html, BenchFormat.Rate(run.RequestsPerSecond));
            Cell(html, BenchFormat.Ms(run.Latency?.Median));
            Cell(html, BenchFormat.Ms(run.Latency?.P95));
            Cell(html, settings.Stream ? BenchFormat.Ms(run.Ttft?.Median) : BenchFormat.None);
            Cell(html, BenchFormat.Rate(run.OutputTokensPerSecond));
            Cell(html, BenchFormat.Usd(run.CostPerRequestUsd));
            Cell(html, BenchFormat.Usd(run.TotalCostUsd));
            Cell(html, run.Errors == 0 ? "0" : $"{run.Errors.ToString(CultureInfo.InvariantCulture)} ({BenchFormat.Tally(run.ErrorsByStatus)})");
            html.Append("</tr>\n");
        }

        html.Append("</table>\n");
    }

    private static void WriteRun(StringBuilder html, BenchSettings settings, BenchRun run, string colour)
    {
        html.Append(CultureInfo.InvariantCulture, $"<h2>{E(run.Model)}{(run.Interrupted ? " (interrupted)" : "")}</h2>\n<table>\n");
        Row(html, "served by", BenchFormat.Served(run.ServedBy));
        Row(html, "requests", run.Requests.ToString(CultureInfo.InvariantCulture));
        Row(html, "successes", run.Successes.ToString(CultureInfo.InvariantCulture));
        Row(html, "errors", run.Errors.ToString(CultureInfo.InvariantCulture), run.Errors > 0);
        if (run.Errors > 0)
        {
            Row(html, "errors by status", BenchFormat.Tally(run.ErrorsByStatus), error: true);
            Row(html, "errors by code", BenchFormat.Tally(run.ErrorsByCode), error: true);
            Row(html, "first error", BenchFormat.Error(run.FirstError!), error: true);
        }

        Row(html, "wall time", BenchFormat.Seconds(run.WallTime));
        Row(html, "requests/s", BenchFormat.Rate(run.RequestsPerSecond));
        Row(html, "tokens in / out", $"{BenchFormat.Count(run.InputTokens)} / {BenchFormat.Count(run.OutputTokens)}{(run.OutputTokensCounted ? " (out counted from chunks)" : "")}");
        Row(html, "output tokens/s (all requests)", BenchFormat.Rate(run.OutputTokensPerSecond));
        Row(html, "cost per request", BenchFormat.Usd(run.CostPerRequestUsd));
        Row(html, "cost total", BenchFormat.Usd(run.TotalCostUsd));
        html.Append("</table>\n");

        html.Append("<table>\n<tr><th>successful requests</th><th>count</th><th>mean</th><th>p50</th><th>p95</th><th>p99</th><th>min</th><th>max</th><th>stdev</th></tr>\n");
        TimingRow(html, "latency (ms)", run.Latency, BenchFormat.Ms);
        if (settings.Stream)
        {
            TimingRow(html, "TTFT (ms)", run.Ttft, BenchFormat.Ms);
            TimingRow(html, "output tokens/s per stream", run.StreamTokensPerSecond, BenchFormat.Rate);
        }

        html.Append("</table>\n");
        if (run.Latency is not { } latency)
        {
            html.Append("<p class=\"muted\">No successful request: no latency charts.</p>\n");
            return;
        }

        html.Append("<div class=\"charts\">\n<figure><figcaption>Latency histogram (ms)</figcaption>\n");
        Histogram(html, latency.Histogram(), colour);
        html.Append("</figure>\n<figure><figcaption>Latency by percentile (ms)</figcaption>\n");
        PercentilePlot(html, [(run.Model, latency, colour)]);
        html.Append("</figure>\n</div>\n");
    }

    private static void TimingRow(StringBuilder html, string name, BenchStatistics? stats, Func<double?, string> format)
    {
        html.Append("<tr>");
        Cell(html, name, numeric: false);
        Cell(html, (stats?.Count ?? 0).ToString(CultureInfo.InvariantCulture));
        foreach (var value in new double?[] { stats?.Mean, stats?.Median, stats?.P95, stats?.P99, stats?.Min, stats?.Max, stats?.StandardDeviation })
        {
            Cell(html, format(value));
        }

        html.Append("</tr>\n");
    }

    /// <summary>Bars over equal-width latency buckets; hovering a bar shows its range and count.</summary>
    private static void Histogram(StringBuilder html, IReadOnlyList<HistogramBucket> buckets, string colour)
    {
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        var maxCount = Math.Max(1, buckets.Max(b => b.Count));
        var barWidth = (double)plotWidth / buckets.Count;
        OpenSvg(html, "Latency histogram");
        Axes(html);
        for (var i = 0; i < buckets.Count; i++)
        {
            var bucket = buckets[i];
            var height = (double)bucket.Count / maxCount * plotHeight;
            html.Append(CultureInfo.InvariantCulture, $"<rect x=\"{N(Left + (i * barWidth) + 1)}\" y=\"{N(Top + plotHeight - height)}\" width=\"{N(Math.Max(1, barWidth - 2))}\" height=\"{N(height)}\" fill=\"{colour}\">");
            html.Append(CultureInfo.InvariantCulture, $"<title>{E(BenchFormat.Ms(bucket.From))}–{E(BenchFormat.Ms(bucket.To))} ms: {bucket.Count} requests</title></rect>\n");
        }

        // Axis labels: count at the top, and the latency at both ends and in the middle.
        Text(html, Left - 6, Top + 4, maxCount.ToString(CultureInfo.InvariantCulture), "end");
        Text(html, Left - 6, Top + plotHeight, "0", "end");
        var from = buckets[0].From;
        var to = buckets[^1].To;
        Text(html, Left, Height - Bottom + 16, BenchFormat.Ms(from), "start");
        Text(html, Left + (plotWidth / 2.0), Height - Bottom + 16, BenchFormat.Ms((from + to) / 2), "middle");
        Text(html, Width - Right, Height - Bottom + 16, BenchFormat.Ms(to), "end");
        Text(html, Left + (plotWidth / 2.0), Height - 6, "latency (ms)", "middle");
        html.Append("</svg>\n");
    }

    /// <summary>
    /// Latency against percentile, one line per model, p50, p95 and p99 marked. The percentile axis stretches the tail
    /// (x = −log10(1 − p), as HdrHistogram plots do): p50, p90, p99 and p99.9 are evenly spaced, so the tail that
    /// matters is not squeezed into the last pixels.
    /// </summary>
    private static void PercentilePlot(StringBuilder html, IReadOnlyList<(string Model, BenchStatistics Latency, string Colour)> curves)
    {
        const double Nines = 3; // the axis ends at p99.9
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        var max = curves.Max(c => c.Latency.Max);
        var yMax = max > 0 ? max * 1.05 : 1;
        double X(double percent) => Left + (Math.Min(Nines, -Math.Log10(1 - (percent / 100))) / Nines * plotWidth);
        double Y(double ms) => Top + plotHeight - (ms / yMax * plotHeight);
        OpenSvg(html, "Latency by percentile");
        Axes(html);
        foreach (var (p, label) in new[] { (50d, "p50"), (90d, "p90"), (99d, "p99"), (99.9d, "p99.9") })
        {
            html.Append(CultureInfo.InvariantCulture, $"<line x1=\"{N(X(p))}\" y1=\"{Top}\" x2=\"{N(X(p))}\" y2=\"{Top + plotHeight}\" stroke=\"#ddd\" stroke-dasharray=\"3 3\"/>\n");
            Text(html, X(p), Height - Bottom + 16, label, p >= 99.9 ? "end" : "middle");
        }

        Text(html, Left, Height - Bottom + 16, "p0", "start");
        Text(html, Left - 6, Top + 4, BenchFormat.Ms(yMax), "end");
        Text(html, Left - 6, Top + (plotHeight / 2.0), BenchFormat.Ms(yMax / 2), "end");
        Text(html, Left - 6, Top + plotHeight, "0", "end");
        for (var c = 0; c < curves.Count; c++)
        {
            var (model, latency, colour) = curves[c];
            var points = new StringBuilder();
            for (var step = 0; step <= 150; step++)
            {
                var percent = 100 * (1 - Math.Pow(10, -Nines * step / 150));
                points.Append(CultureInfo.InvariantCulture, $"{N(X(percent))},{N(Y(latency.Percentile(percent)))} ");
            }

            html.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points.ToString().TrimEnd()}\"><title>{E(model)}</title></polyline>\n");
            foreach (var p in new[] { 50, 95, 99 })
            {
                var value = latency.Percentile(p);
                html.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{N(X(p))}\" cy=\"{N(Y(value))}\" r=\"3\" fill=\"{colour}\"><title>{E(model)} p{p}: {E(BenchFormat.Ms(value))} ms</title></circle>\n");
            }

            if (curves.Count > 1)
            {
                var y = Top + 12 + (c * 16);
                html.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left + 10}\" y=\"{y - 9}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\n");
                Text(html, Left + 26, y, model, "start");
            }
        }

        Text(html, Left + (plotWidth / 2.0), Height - 6, "percentile (tail stretched)", "middle");
        html.Append("</svg>\n");
    }

    private static void OpenSvg(StringBuilder html, string label) =>
        html.Append(CultureInfo.InvariantCulture, $"<svg width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-label=\"{E(label)}\">\n");

    private static void Axes(StringBuilder html) =>
        html.Append(CultureInfo.InvariantCulture, $"<path d=\"M{Left} {Top} V{Height - Bottom} H{Width - Right}\" fill=\"none\" stroke=\"#888\"/>\n");

    private static void Text(StringBuilder html, double x, double y, string text, string anchor) =>
        html.Append(CultureInfo.InvariantCulture, $"<text x=\"{N(x)}\" y=\"{N(y)}\" text-anchor=\"{anchor}\">{E(text)}</text>\n");

    private static void Row(StringBuilder html, string name, string value, bool error = false)
    {
        html.Append("<tr><th>").Append(E(name)).Append("</th><td").Append(error ? " class=\"err\"" : "").Append('>').Append(E(value)).Append("</td></tr>\n");
    }

    private static void Cell(StringBuilder html, string value, bool numeric = true) =>
        html.Append(numeric ? "<td class=\"n\">" : "<td>").Append(E(value)).Append("</td>");

    private static string N(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
