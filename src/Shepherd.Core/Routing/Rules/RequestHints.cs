namespace Shepherd.Routing.Rules;

using System.Globalization;

/// <summary>What a client tells the router beside the body: tags and a latency budget, from request headers.</summary>
/// <param name="Tags">The raw <c>x-shepherd-tags</c> value: <c>key=value</c> pairs separated by ',' (parsed when a rule asks).</param>
/// <param name="LatencyBudgetMs">The <c>x-shepherd-latency-budget-ms</c> value.</param>
public readonly record struct RequestHints(string? Tags, int? LatencyBudgetMs)
{
    public const string TagsHeader = "x-shepherd-tags";
    public const string LatencyBudgetHeader = "x-shepherd-latency-budget-ms";

    /// <summary>Reads the hints from header values.</summary>
    /// <param name="tags">The <c>x-shepherd-tags</c> header (several occurrences joined with ',').</param>
    /// <param name="latencyBudget">The <c>x-shepherd-latency-budget-ms</c> header.</param>
    /// <param name="hints">The hints (without a budget when it is malformed).</param>
    /// <returns>An error message when the latency budget is not a whole number of milliseconds; otherwise null.</returns>
    public static string? TryParse(string? tags, string? latencyBudget, out RequestHints hints)
    {
        int? budget = null;
        string? error = null;
        if (!string.IsNullOrWhiteSpace(latencyBudget))
        {
            if (int.TryParse(latencyBudget.AsSpan().Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
            {
                budget = ms;
            }
            else
            {
                error = $"The {LatencyBudgetHeader} header must be a whole number of milliseconds (0 to {int.MaxValue}).";
            }
        }

        hints = new RequestHints(string.IsNullOrWhiteSpace(tags) ? null : tags, budget);
        return error;
    }

    /// <summary>Parses a header line such as <c>x-shepherd-tags: a=b</c> (for the CLI's <c>--header</c>).</summary>
    public static bool TrySplitHeader(string line, out string name, out string value)
    {
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            name = value = string.Empty;
            return false;
        }

        name = line[..colon].Trim();
        value = line[(colon + 1)..].Trim();
        return name.Length > 0;
    }

    /// <summary>The value of <paramref name="key"/> in <see cref="Tags"/> (the last occurrence wins), without allocating.</summary>
    internal bool TryGetTag(ReadOnlySpan<char> key, out ReadOnlySpan<char> value)
    {
        value = default;
        var found = false;
        var rest = Tags.AsSpan();
        while (!rest.IsEmpty)
        {
            var comma = rest.IndexOf(',');
            var pair = comma < 0 ? rest : rest[..comma];
            rest = comma < 0 ? default : rest[(comma + 1)..];
            var equals = pair.IndexOf('=');
            if (equals <= 0)
            {
                continue;
            }

            if (pair[..equals].Trim().Equals(key, StringComparison.OrdinalIgnoreCase))
            {
                value = pair[(equals + 1)..].Trim();
                found = true;
            }
        }

        return found;
    }
}
