namespace Shepherd.Server.Admin;

using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Routing;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Http;

/// <summary>
/// <c>GET /admin/usage</c>: usage and cost grouped by key, team, model, provider, day or hour, with savings against a
/// baseline model and the month's run rate; JSON or CSV. Master key only. Documented in docs/admin-api.md and
/// docs/accounting.md.
/// </summary>
public sealed class UsageEndpoints(
    AdminKeysEndpoints admin,
    IUsageStore store,
    KeyRegistry keys,
    ModelCatalog catalog,
    BudgetCalendar calendar,
    TimeProvider time)
{
    private static readonly string[] Parameters = ["group_by", "from", "since", "to", "until", "key", "format", "baseline"];

    public async Task ReportAsync(HttpContext context)
    {
        if (!await admin.AuthorizeAsync(context))
        {
            return;
        }

        var now = time.GetUtcNow();
        if (Parse(context.Request, now, out var error) is not { } request)
        {
            await ErrorResponses.WriteAsync(context, error!);
            return;
        }

        var rows = await store.QueryAsync(request.Query, context.RequestAborted);
        var monthStart = UsageReport.MonthStart(now);
        var month = await store.QueryAsync(new UsageQuery(monthStart, now, UsageGrouping.Day) { KeyId = request.Query.KeyId }, context.RequestAborted);
        var report = new Report(request, rows, UsageReport.Total(rows), UsageReport.RunRateOf(month.Sum(r => r.Cost), now));
        if (request.Csv)
        {
            var csv = Encoding.UTF8.GetBytes(WriteCsv(report, now));
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "text/csv; charset=utf-8";
            context.Response.ContentLength = csv.Length;
            await context.Response.Body.WriteAsync(csv, context.RequestAborted);
            return;
        }

        await ModelsEndpoints.WriteJsonAsync(context, w => WriteJson(w, report, now));
    }

    /// <summary>A parsed report request.</summary>
    private sealed record Request(UsageQuery Query, bool Csv, string? BaselineName, PriceConfig? Baseline);

    private sealed record Report(Request Request, IReadOnlyList<UsageRow> Rows, UsageRow Totals, RunRate RunRate);

    private Request? Parse(HttpRequest http, DateTimeOffset now, out GatewayError? error)
    {
        error = null;
        var query = http.Query;
        foreach (var (name, values) in query)
        {
            if (!Parameters.Contains(name, StringComparer.Ordinal))
            {
                error = Invalid($"Unknown query parameter '{Shown(name)}'. Known: {string.Join(", ", Parameters)}.", Shown(name));
                return null;
            }

            if (values.Count > 1)
            {
                error = Invalid($"The query parameter '{name}' is given more than once.", name);
                return null;
            }
        }

        var groupBy = UsageGrouping.Model;
        if (Single(query, "group_by") is { } group && !TryGrouping(group, out groupBy))
        {
            error = Invalid($"group_by must be one of key, team, model, provider, day, hour (got '{Shown(group)}').", "group_by");
            return null;
        }

        if (Single(query, "from") is not null && Single(query, "since") is not null)
        {
            error = Invalid("Give either from or since, not both.", "since");
            return null;
        }

        if (Single(query, "to") is not null && Single(query, "until") is not null)
        {
            error = Invalid("Give either to or until, not both.", "until");
            return null;
        }

        var fromName = Single(query, "since") is null ? "from" : "since";
        var toName = Single(query, "until") is null ? "to" : "until";
        var from = UsageReport.MonthStart(now);
        if (Single(query, fromName) is { } fromText && !UsageReport.TryParseTime(fromText, now, isEnd: false, out from))
        {
            error = Invalid($"{fromName} must be an ISO 8601 date or date-time (2026-11-01, 2026-11-01T12:00:00Z) or a duration back from now (36h, 7d, 2w); got '{Shown(fromText)}'.", fromName);
            return null;
        }

        var to = now;
        if (Single(query, toName) is { } toText && !UsageReport.TryParseTime(toText, now, isEnd: true, out to))
        {
            error = Invalid($"{toName} must be an ISO 8601 date or date-time (a date includes that whole day) or a duration back from now; got '{Shown(toText)}'.", toName);
            return null;
        }

        if (from >= to)
        {
            error = Invalid($"The range is empty: {fromName} ({Iso(from)}) must be before {toName} ({Iso(to)}).", fromName);
            return null;
        }

        var key = Single(query, "key");
        if (key is not null && (key.Length is 0 or > 128))
        {
            error = Invalid("key must be a key id (key_…) or master.", "key");
            return null;
        }

        var csv = false;
        if (Single(query, "format") is { } format)
        {
            if (format is not ("json" or "csv"))
            {
                error = Invalid($"format must be json or csv (got '{Shown(format)}').", "format");
                return null;
            }

            csv = format == "csv";
        }
        else
        {
            csv = http.Headers.Accept.Any(a => a is not null && a.Contains("text/csv", StringComparison.OrdinalIgnoreCase));
        }

        string? baselineName = null;
        PriceConfig? baseline = null;
        if (Single(query, "baseline") is { } baselineText)
        {
            if (!catalog.TryResolve(baselineText, out var model))
            {
                error = Invalid($"The baseline model '{Shown(baselineText)}' does not exist.", "baseline");
                return null;
            }

            baseline = model.PriceAt(now);
            if (baseline is null)
            {
                error = Invalid($"The baseline model '{model.Name}' has no price.", "baseline");
                return null;
            }

            baselineName = model.Name;
        }

        return new Request(new UsageQuery(from, to, groupBy) { KeyId = key }, csv, baselineName, baseline);
    }

    private static string? Single(IQueryCollection query, string name) =>
        query.TryGetValue(name, out StringValues values) && values.Count == 1 ? values[0] : null;

    private static bool TryGrouping(string text, out UsageGrouping grouping)
    {
        grouping = text switch
        {
            "key" => UsageGrouping.Key,
            "team" => UsageGrouping.Team,
            "model" => UsageGrouping.Model,
            "provider" => UsageGrouping.Provider,
            "day" => UsageGrouping.Day,
            "hour" => UsageGrouping.Hour,
            _ => (UsageGrouping)(-1),
        };
        return Enum.IsDefined(grouping);
    }

    private static string GroupName(UsageGrouping grouping) => grouping.ToString().ToLowerInvariant();

    private static GatewayError Invalid(string message, string param) => GatewayError.InvalidRequest(message, param, "invalid_value");

    private static string Shown(string text) => text.Length > 64 ? text[..64] + "…" : text;

    private static string Iso(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    /// <summary>Drops trailing zeros (1.500000000 → 1.5): money is shown as the exact amount, nothing more.</summary>
    private static decimal Exact(decimal value) => value / 1.000000000000000000000000000000000m;

    private static string Money(decimal value) => Exact(value).ToString(CultureInfo.InvariantCulture);

    /// <summary>A key's live figures (budget calendar): today's and this month's spend count only if they are today's and this month's.</summary>
    private (KeyEntry Entry, decimal Today, decimal Month)? Live(string keyId, DateTimeOffset now)
    {
        if (!keys.TryGet(keyId, out var entry))
        {
            return null;
        }

        var live = entry.Runtime.Snapshot();
        var today = calendar.Today(now);
        var spentToday = live.Day == today ? live.SpentToday : 0m;
        var spentMonth = BudgetCalendar.MonthIndex(live.Day) == BudgetCalendar.MonthIndex(today) ? live.SpentThisMonth : 0m;
        return (entry, spentToday, spentMonth);
    }

    private void WriteJson(Utf8JsonWriter w, Report report, DateTimeOffset now)
    {
        var request = report.Request;
        w.WriteStartObject();
        w.WriteString("object"u8, "usage_report"u8);
        w.WriteString("from"u8, Iso(request.Query.From));
        w.WriteString("to"u8, Iso(request.Query.To));
        w.WriteString("group_by"u8, GroupName(request.Query.GroupBy));
        if (request.Query.KeyId is { } key)
        {
            w.WriteString("key"u8, key);
        }

        if (request.BaselineName is { } baseline)
        {
            w.WriteString("baseline"u8, baseline);
        }

        w.WriteStartArray("rows"u8);
        foreach (var row in report.Rows)
        {
            w.WriteStartObject();
            w.WriteString("group"u8, row.Group);
            WriteFigures(w, row, request.Baseline);
            if (request.Query.GroupBy == UsageGrouping.Key)
            {
                WriteKeyFigures(w, row.Group, now);
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartObject("totals"u8);
        WriteFigures(w, report.Totals, request.Baseline);
        w.WriteEndObject();
        w.WriteStartObject("run_rate"u8);
        w.WriteNumber("month_to_date_usd"u8, Exact(report.RunRate.MonthToDate));
        w.WriteNumber("projected_month_usd"u8, Exact(report.RunRate.ProjectedMonth));
        w.WriteNumber("days_elapsed"u8, Exact(report.RunRate.DaysElapsed));
        w.WriteNumber("days_in_month"u8, report.RunRate.DaysInMonth);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteFigures(Utf8JsonWriter w, UsageRow row, PriceConfig? baseline)
    {
        w.WriteNumber("requests"u8, row.Requests);
        w.WriteNumber("errors"u8, row.Errors);
        w.WriteNumber("prompt_tokens"u8, row.PromptTokens);
        w.WriteNumber("cached_tokens"u8, row.CachedTokens);
        w.WriteNumber("cache_write_tokens"u8, row.CacheWriteTokens);
        w.WriteNumber("completion_tokens"u8, row.CompletionTokens);
        w.WriteNumber("reasoning_tokens"u8, row.ReasoningTokens);
        w.WriteNumber("cost_usd"u8, Exact(row.Cost));
        w.WriteNumber("estimated"u8, row.Estimated);
        if (baseline is not null)
        {
            var savings = UsageReport.SavingsOf(row.Cost, UsageReport.BaselineCost(row, baseline));
            w.WriteNumber("baseline_cost_usd"u8, Exact(savings.BaselineCost));
            w.WriteNumber("savings_usd"u8, Exact(savings.Saved));
            if (savings.Percent is { } percent)
            {
                w.WriteNumber("savings_pct"u8, Exact(percent));
            }
            else
            {
                w.WriteNull("savings_pct"u8);
            }
        }
    }

    private void WriteKeyFigures(Utf8JsonWriter w, string keyId, DateTimeOffset now)
    {
        if (Live(keyId, now) is not { } live)
        {
            if (keyId == Security.Caller.Master.KeyId)
            {
                w.WriteString("name"u8, "master"u8);
            }
            else
            {
                w.WriteNull("name"u8);
            }

            foreach (var field in new[] { "team", "spend_today_usd", "spend_month_usd", "daily_budget", "monthly_budget", "credit_balance" })
            {
                w.WriteNull(field);
            }

            return;
        }

        var (entry, today, month) = live;
        var record = entry.Record;
        w.WriteString("name"u8, record.Name);
        if (record.Team is { } team)
        {
            w.WriteString("team"u8, team);
        }
        else
        {
            w.WriteNull("team"u8);
        }

        w.WriteNumber("spend_today_usd"u8, Exact(today));
        w.WriteNumber("spend_month_usd"u8, Exact(month));
        WriteMoney(w, "daily_budget"u8, record.DailyBudget);
        WriteMoney(w, "monthly_budget"u8, record.MonthlyBudget);
        WriteMoney(w, "credit_balance"u8, entry.Runtime.Snapshot().CreditBalance);
    }

    private static void WriteMoney(Utf8JsonWriter w, ReadOnlySpan<byte> name, decimal? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, Exact(v));
        }
        else
        {
            w.WriteNull(name);
        }
    }

    /// <summary>
    /// RFC 4180: a header line, one line per row, then a totals line whose group is <c>TOTAL</c>; CRLF line ends,
    /// fields quoted when they hold a comma, quote or line break; numbers in the invariant culture.
    /// </summary>
    private string WriteCsv(Report report, DateTimeOffset now)
    {
        var request = report.Request;
        var byKey = request.Query.GroupBy == UsageGrouping.Key;
        var header = new List<string>
        {
            "group", "requests", "errors", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens",
            "reasoning_tokens", "cost_usd", "estimated",
        };
        if (request.Baseline is not null)
        {
            header.AddRange(["baseline_cost_usd", "savings_usd", "savings_pct"]);
        }

        if (byKey)
        {
            header.AddRange(["name", "team", "spend_today_usd", "spend_month_usd", "daily_budget", "monthly_budget", "credit_balance"]);
        }

        var csv = new StringBuilder();
        AppendLine(csv, header);
        foreach (var row in report.Rows)
        {
            var fields = Figures(row.Group, row, request.Baseline);
            if (byKey)
            {
                if (Live(row.Group, now) is { } live)
                {
                    var (entry, today, month) = live;
                    fields.AddRange([
                        entry.Record.Name, entry.Record.Team ?? string.Empty, Money(today), Money(month),
                        Optional(entry.Record.DailyBudget), Optional(entry.Record.MonthlyBudget), Optional(entry.Runtime.Snapshot().CreditBalance),
                    ]);
                }
                else
                {
                    fields.AddRange([row.Group == Security.Caller.Master.KeyId ? "master" : string.Empty, "", "", "", "", "", ""]);
                }
            }

            AppendLine(csv, fields);
        }

        var totals = Figures("TOTAL", report.Totals, request.Baseline);
        if (byKey)
        {
            totals.AddRange(["", "", "", "", "", "", ""]);
        }

        AppendLine(csv, totals);
        return csv.ToString();
    }

    private static List<string> Figures(string group, UsageRow row, PriceConfig? baseline)
    {
        var fields = new List<string>
        {
            group, Number(row.Requests), Number(row.Errors), Number(row.PromptTokens), Number(row.CachedTokens),
            Number(row.CacheWriteTokens), Number(row.CompletionTokens), Number(row.ReasoningTokens), Money(row.Cost), Number(row.Estimated),
        };
        if (baseline is not null)
        {
            var savings = UsageReport.SavingsOf(row.Cost, UsageReport.BaselineCost(row, baseline));
            fields.AddRange([Money(savings.BaselineCost), Money(savings.Saved), savings.Percent is { } p ? Money(p) : string.Empty]);
        }

        return fields;
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Optional(decimal? value) => value is { } v ? Money(v) : string.Empty;

    private static void AppendLine(StringBuilder csv, IEnumerable<string> fields)
    {
        var first = true;
        foreach (var field in fields)
        {
            if (!first)
            {
                csv.Append(',');
            }

            first = false;
            if (field.AsSpan().IndexOfAny(",\"\r\n") >= 0)
            {
                csv.Append('"').Append(field.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
            }
            else
            {
                csv.Append(field);
            }
        }

        csv.Append("\r\n");
    }
}
