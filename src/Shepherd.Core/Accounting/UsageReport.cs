namespace Shepherd.Accounting;

using System.Globalization;
using Shepherd.Configuration;

/// <summary>
/// The arithmetic of usage reports, kept pure and in <c>decimal</c>: totals, what the same traffic would have cost on
/// a baseline model (savings), the month's run rate, and the time ranges reports accept.
/// </summary>
public static class UsageReport
{
    private const decimal PerMillion = 1_000_000m;

    /// <summary>The sum of the rows (an empty group).</summary>
    public static UsageRow Total(IEnumerable<UsageRow> rows)
    {
        var total = new UsageRow(string.Empty, 0, 0, 0, 0, 0, 0, 0, 0m, 0);
        foreach (var row in rows)
        {
            total = total with
            {
                Requests = total.Requests + row.Requests,
                Errors = total.Errors + row.Errors,
                PromptTokens = total.PromptTokens + row.PromptTokens,
                CachedTokens = total.CachedTokens + row.CachedTokens,
                CompletionTokens = total.CompletionTokens + row.CompletionTokens,
                ReasoningTokens = total.ReasoningTokens + row.ReasoningTokens,
                CacheWriteTokens = total.CacheWriteTokens + row.CacheWriteTokens,
                Cost = total.Cost + row.Cost,
                Estimated = total.Estimated + row.Estimated,
            };
        }

        return total;
    }

    /// <summary>
    /// What a row's tokens would have cost at <paramref name="baseline"/>: uncached prompt tokens at the input price,
    /// cached ones at the cached-input price (else the input price), completion tokens (reasoning included) at the
    /// output price. Rounded to the nano-dollar like every cost.
    /// </summary>
    public static decimal BaselineCost(UsageRow row, PriceConfig baseline)
    {
        var cached = Math.Min(row.CachedTokens, row.PromptTokens);
        var uncached = row.PromptTokens - cached;
        var total =
            (uncached * baseline.Input) +
            (cached * (baseline.CachedInput ?? baseline.Input)) +
            (row.CompletionTokens * baseline.Output);
        return Math.Round(total / PerMillion, Pricing.Decimals, MidpointRounding.AwayFromZero);
    }

    /// <summary>Savings against the baseline: positive when the traffic cost less than it would have on the baseline.</summary>
    public static Savings SavingsOf(decimal cost, decimal baselineCost)
    {
        var saved = baselineCost - cost;
        decimal? percent = baselineCost == 0m ? null : Math.Round(saved / baselineCost * 100m, 2, MidpointRounding.AwayFromZero);
        return new Savings(baselineCost, saved, percent);
    }

    /// <summary>The first instant of <paramref name="now"/>'s month, UTC (the months of reports are UTC months, like the daily rollups).</summary>
    public static DateTimeOffset MonthStart(DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        return new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero);
    }

    /// <summary>
    /// The month's run rate: spend so far, and the month it projects to at the same pace:
    /// <c>projected = month_to_date × days_in_month ÷ days_elapsed</c>, days elapsed counted to the tick since the
    /// start of the month (UTC). In the month's first instant nothing can be projected: the projection is the spend so far.
    /// </summary>
    public static RunRate RunRateOf(decimal monthToDate, DateTimeOffset now)
    {
        var start = MonthStart(now);
        var daysInMonth = DateTime.DaysInMonth(start.Year, start.Month);
        var elapsed = (decimal)(now.UtcDateTime - start.UtcDateTime).Ticks / TimeSpan.TicksPerDay;
        var projected = elapsed <= 0m
            ? monthToDate
            : Math.Round(monthToDate * daysInMonth / elapsed, Pricing.Decimals, MidpointRounding.AwayFromZero);
        return new RunRate(monthToDate, projected, Math.Round(elapsed, 6, MidpointRounding.AwayFromZero), daysInMonth);
    }

    /// <summary>
    /// Parses the start or end of a report range: an ISO 8601 date-time (UTC unless it says otherwise), a date
    /// (midnight UTC; as an end, the end of that day, so <c>to=2026-11-30</c> includes the 30th), or a duration back
    /// from <paramref name="now"/>: <c>90m</c>, <c>36h</c>, <c>7d</c>, <c>2w</c>.
    /// </summary>
    public static bool TryParseTime(string? text, DateTimeOffset now, bool isEnd, out DateTimeOffset time)
    {
        time = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        if (TryParseAgo(text, out var ago))
        {
            if (ago > now - DateTimeOffset.MinValue)
            {
                return false;
            }

            time = now - ago;
            return true;
        }

        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
        {
            time = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            if (isEnd)
            {
                if (day == DateOnly.MaxValue)
                {
                    return false;
                }

                time = time.AddDays(1);
            }

            return true;
        }

        // Date-times only (a digit first and a 'T'), so that words or bare numbers are not taken for dates.
        if (text.Length >= 16 && char.IsAsciiDigit(text[0]) && (text[10] == 'T' || text[10] == 't' || text[10] == ' ') &&
            DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            time = parsed;
            return true;
        }

        return false;
    }

    private static bool TryParseAgo(string text, out TimeSpan ago)
    {
        ago = default;
        if (text.Length < 2)
        {
            return false;
        }

        var unit = char.ToLowerInvariant(text[^1]);
        var multiplier = unit switch
        {
            'm' => TimeSpan.FromMinutes(1),
            'h' => TimeSpan.FromHours(1),
            'd' => TimeSpan.FromDays(1),
            'w' => TimeSpan.FromDays(7),
            _ => TimeSpan.Zero,
        };
        if (multiplier == TimeSpan.Zero ||
            !int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count) ||
            count > 100_000)
        {
            return false;
        }

        ago = multiplier * count;
        return true;
    }
}

/// <summary>A baseline comparison: what the traffic would have cost on the baseline, and what was saved (USD, percent of the baseline).</summary>
public readonly record struct Savings(decimal BaselineCost, decimal Saved, decimal? Percent);

/// <summary>Spend so far this month (UTC) and the month it projects to.</summary>
public readonly record struct RunRate(decimal MonthToDate, decimal ProjectedMonth, decimal DaysElapsed, int DaysInMonth);
