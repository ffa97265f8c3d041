namespace Shepherd.Cli.Commands.Bench;

using System.Globalization;

/// <summary>How the reports write numbers: invariant culture, a precision that suits each kind, "–" or "n/a" when unknown.</summary>
internal static class BenchFormat
{
    public const string None = "–";

    public const string NotAvailable = "n/a";

    /// <summary>Milliseconds: two decimals below 10 ms (a local gateway answers in under one), else one.</summary>
    public static string Ms(double? value) => value switch
    {
        null => None,
        < 10 => value.Value.ToString("0.00", CultureInfo.InvariantCulture),
        _ => value.Value.ToString("0.0", CultureInfo.InvariantCulture),
    };

    /// <summary>A rate (requests or tokens per second).</summary>
    public static string Rate(double? value) => value switch
    {
        null => None,
        < 10 => value.Value.ToString("0.00", CultureInfo.InvariantCulture),
        _ => value.Value.ToString("0.0", CultureInfo.InvariantCulture),
    };

    public static string Count(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? None;

    /// <summary>US dollars, as exact as the gateway reported them (up to 10 decimals); "n/a" when not reported.</summary>
    public static string Usd(decimal? value) => value is { } usd ? "$" + usd.ToString("0.##########", CultureInfo.InvariantCulture) : NotAvailable;

    public static string Seconds(TimeSpan value) => value.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";

    /// <summary>"404 × 3, timeout × 1".</summary>
    public static string Tally(IReadOnlyList<KeyValuePair<string, int>> tally) =>
        tally.Count == 0 ? None : string.Join(", ", tally.Select(p => $"{p.Key} × {p.Value.ToString(CultureInfo.InvariantCulture)}"));

    /// <summary>"demo via sim (40)".</summary>
    public static string Served(IReadOnlyList<ServedBy> served) =>
        served.Count == 0
            ? NotAvailable
            : string.Join(", ", served.Select(s => $"{s.Model ?? "?"} via {s.Provider ?? "?"} ({s.Requests.ToString(CultureInfo.InvariantCulture)})"));

    /// <summary>
    /// For the comparison table: just the providers ("sim (40)") when the model asked for answered, which is the common
    /// case; "model via provider" when another one did (a fallback or an alias).
    /// </summary>
    public static string ServedShort(BenchRun run) =>
        run.ServedBy.All(s => s.Model is null || string.Equals(s.Model, run.Model, StringComparison.OrdinalIgnoreCase))
            ? run.ServedBy.Count == 0
                ? NotAvailable
                : string.Join(", ", run.ServedBy.Select(s => $"{s.Provider ?? "?"} ({s.Requests.ToString(CultureInfo.InvariantCulture)})"))
            : Served(run.ServedBy);

    /// <summary>For the bad-usage message: "404 model_not_found: The model … does not exist".</summary>
    public static string Error(BenchSample sample) => $"{sample.ErrorStatus} {sample.ErrorCode}: {sample.ErrorMessage}";
}
