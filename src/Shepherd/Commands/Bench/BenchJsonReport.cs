namespace Shepherd.Cli.Commands.Bench;

using System.Text.Json;

/// <summary>
/// Writes the <c>--json</c> report. The schema (<c>shepherd-bench/1</c>) is documented in docs/bench-tool.md: fields are
/// only ever added to it; a rename or a change of meaning gets a new schema name.
/// </summary>
internal static class BenchJsonReport
{
    public const string Schema = "shepherd-bench/1";

    public static void Write(Stream stream, BenchSettings settings, IReadOnlyList<BenchRun> runs, DateTimeOffset startedAt)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("schema", Schema);
        w.WriteString("generator", $"shepherd {Server.Hosting.GatewayServices.Version}");
        w.WriteString("started_at", startedAt);
        w.WriteStartObject("settings");
        w.WriteString("url", settings.BaseUrl.AbsoluteUri.TrimEnd('/'));
        w.WriteStartArray("models");
        foreach (var model in settings.Models)
        {
            w.WriteStringValue(model);
        }

        w.WriteEndArray();
        NumberOrNull(w, "requests", settings.Duration is null ? settings.Requests : null);
        NumberOrNull(w, "duration_s", settings.Duration?.TotalSeconds);
        w.WriteNumber("concurrency", settings.Concurrency);
        w.WriteBoolean("stream", settings.Stream);
        NumberOrNull(w, "max_tokens", settings.MaxTokens);
        w.WriteNumber("timeout_s", settings.Timeout.TotalSeconds);
        w.WriteString("prompt", settings.PromptSource);
        w.WriteEndObject();
        w.WriteStartArray("runs");
        foreach (var run in runs)
        {
            WriteRun(w, run);
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteRun(Utf8JsonWriter w, BenchRun run)
    {
        w.WriteStartObject();
        w.WriteString("model", run.Model);
        w.WriteString("started_at", run.StartedAt);
        w.WriteBoolean("interrupted", run.Interrupted);
        w.WriteBoolean("stopped_early", run.Fatal is not null);
        w.WriteNumber("wall_time_s", Round(run.WallTime.TotalSeconds));
        w.WriteNumber("requests", run.Requests);
        w.WriteNumber("successes", run.Successes);
        w.WriteNumber("errors", run.Errors);
        Tally(w, "errors_by_status", run.ErrorsByStatus);
        Tally(w, "errors_by_code", run.ErrorsByCode);
        if (run.FirstError is { } first)
        {
            w.WriteStartObject("first_error");
            w.WriteString("status", first.ErrorStatus);
            w.WriteString("code", first.ErrorCode);
            w.WriteString("message", first.ErrorMessage);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("first_error");
        }

        w.WriteNumber("requests_per_second", Round(run.RequestsPerSecond));
        w.WriteNumber("successes_per_second", Round(run.SuccessesPerSecond));
        Stats(w, "latency_ms", run.Latency);
        Stats(w, "ttft_ms", run.Ttft);
        Stats(w, "stream_output_tokens_per_second", run.StreamTokensPerSecond);
        w.WriteStartObject("tokens");
        NumberOrNull(w, "input", run.InputTokens);
        NumberOrNull(w, "output", run.OutputTokens);
        w.WriteBoolean("output_counted", run.OutputTokensCounted);
        w.WriteEndObject();
        NumberOrNull(w, "output_tokens_per_second", run.OutputTokensPerSecond is { } tps ? Round(tps) : null);
        w.WriteStartObject("cost_usd");
        DecimalOrNull(w, "total", run.TotalCostUsd);
        DecimalOrNull(w, "per_request", run.CostPerRequestUsd);
        w.WriteNumber("requests_with_cost", run.CostKnown);
        w.WriteEndObject();
        w.WriteStartArray("served_by");
        foreach (var served in run.ServedBy)
        {
            w.WriteStartObject();
            w.WriteString("model", served.Model);
            w.WriteString("provider", served.Provider);
            w.WriteNumber("requests", served.Requests);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("latency_histogram");
        foreach (var bucket in run.Latency?.Histogram() ?? [])
        {
            w.WriteStartObject();
            w.WriteNumber("from_ms", Round(bucket.From));
            w.WriteNumber("to_ms", Round(bucket.To));
            w.WriteNumber("count", bucket.Count);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("samples");
        foreach (var sample in run.Samples)
        {
            w.WriteStartObject();
            w.WriteNumber("start_ms", Round(sample.StartMs));
            w.WriteNumber("latency_ms", Round(sample.LatencyMs));
            NumberOrNull(w, "ttft_ms", sample.TtftMs is { } ttft ? Round(ttft) : null);
            w.WriteNumber("status", sample.Status);
            w.WriteBoolean("ok", sample.Ok);
            w.WriteString("error_status", sample.ErrorStatus);
            w.WriteString("error_code", sample.ErrorCode);
            NumberOrNull(w, "input_tokens", sample.InputTokens);
            NumberOrNull(w, "output_tokens", sample.OutputTokens);
            DecimalOrNull(w, "cost_usd", sample.CostUsd);
            w.WriteString("model", sample.ServedModel);
            w.WriteString("provider", sample.ServedProvider);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Stats(Utf8JsonWriter w, string name, BenchStatistics? stats)
    {
        if (stats is null)
        {
            w.WriteNull(name);
            return;
        }

        w.WriteStartObject(name);
        w.WriteNumber("count", stats.Count);
        w.WriteNumber("mean", Round(stats.Mean));
        w.WriteNumber("p50", Round(stats.Median));
        w.WriteNumber("p90", Round(stats.Percentile(90)));
        w.WriteNumber("p95", Round(stats.P95));
        w.WriteNumber("p99", Round(stats.P99));
        w.WriteNumber("min", Round(stats.Min));
        w.WriteNumber("max", Round(stats.Max));
        w.WriteNumber("stdev", Round(stats.StandardDeviation));
        w.WriteEndObject();
    }

    private static void Tally(Utf8JsonWriter w, string name, IReadOnlyList<KeyValuePair<string, int>> tally)
    {
        w.WriteStartObject(name);
        foreach (var (key, count) in tally)
        {
            w.WriteNumber(key, count);
        }

        w.WriteEndObject();
    }

    private static void NumberOrNull(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void NumberOrNull(Utf8JsonWriter w, string name, long? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void DecimalOrNull(Utf8JsonWriter w, string name, decimal? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    /// <summary>Three decimals: microseconds for times, plenty for rates; keeps the file readable.</summary>
    private static double Round(double value) => Math.Round(value, 3);
}
