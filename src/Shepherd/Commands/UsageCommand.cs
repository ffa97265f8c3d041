namespace Shepherd.Cli.Commands;

using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

/// <summary><c>shepherd usage</c>: the usage report of a running gateway (<c>GET /admin/usage</c>) as a table, JSON or CSV.</summary>
internal static class UsageCommand
{
    private static readonly string[] Groupings = ["key", "team", "model", "provider", "day", "hour"];

    public static Command Create()
    {
        var by = new Option<string>("--by")
        {
            Description = "Group by key, team, model, provider, day or hour.",
            DefaultValueFactory = _ => "model",
        };
        by.AcceptOnlyFromAmong(Groupings);
        var since = new Option<string?>("--since") { Description = "Start: a date (2026-11-01), a date-time, or a duration back from now (36h, 7d, 2w). Default: the start of this month (UTC)." };
        var until = new Option<string?>("--until") { Description = "End: a date (included whole), a date-time, or a duration back from now. Default: now." };
        var key = new Option<string?>("--key") { Description = "Only this key's usage (key_…, or master)." };
        var baseline = new Option<string?>("--baseline") { Description = "Compare with what the same tokens would have cost on this model (savings columns)." };
        var csv = new Option<bool>("--csv") { Description = "Print the report as CSV (RFC 4180)." };
        var json = new Option<bool>("--json") { Description = "Print the raw JSON report." };
        var url = new Option<string?>("--url") { Description = $"Gateway base URL (default: $SHEPHERD_URL or {AdminClient.DefaultUrl})." };
        var command = new Command("usage", "Usage and cost of a running gateway, grouped, with totals, savings against a baseline and the month's run rate (admin API; master key from SHEPHERD_MASTER_KEY).")
        {
            by, since, until, key, baseline, csv, json, url,
        };
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (parse.GetValue(csv) && parse.GetValue(json))
            {
                await error.WriteLineAsync("shepherd: give --csv or --json, not both.");
                return 1;
            }

            var query = new List<string> { "group_by=" + Uri.EscapeDataString(parse.GetValue(by)!) };
            void Add(string name, string? value)
            {
                if (value is not null)
                {
                    query.Add($"{name}={Uri.EscapeDataString(value)}");
                }
            }

            Add("since", parse.GetValue(since));
            Add("until", parse.GetValue(until));
            Add("key", parse.GetValue(key));
            Add("baseline", parse.GetValue(baseline));
            try
            {
                using var client = new AdminClient(parse.GetValue(url), null);
                if (parse.GetValue(csv))
                {
                    query.Add("format=csv");
                    await output.WriteAsync(await client.GetTextAsync("admin/usage?" + string.Join('&', query), ct));
                    return 0;
                }

                var report = await client.GetAsync("admin/usage?" + string.Join('&', query), ct);
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                    return 0;
                }

                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.Detect, ColorSystem = ColorSystemSupport.Detect });
                if (Console.IsOutputRedirected || output != Console.Out)
                {
                    console.Profile.Width = 240;
                }

                Render(console, report);
                return 0;
            }
            catch (AdminApiException ex)
            {
                await error.WriteLineAsync($"shepherd: {ex.Message}");
                return 1;
            }
        });
        return command;
    }

    private static void Render(IAnsiConsole console, JsonNode report)
    {
        var groupBy = Text(report["group_by"]);
        var baseline = report["baseline"]?.GetValue<string>();
        var byKey = groupBy == "key";
        var scope = report["key"] is { } key ? $", key {Text(key)}" : string.Empty;
        console.MarkupLine($"Usage by [bold]{Markup.Escape(groupBy)}[/], {Markup.Escape(Text(report["from"]))} → {Markup.Escape(Text(report["to"]))}{Markup.Escape(scope)}");

        var table = new Table { ShowFooters = true };
        var totals = report["totals"]!;
        void Column(string title, JsonNode? footer, bool right = true)
        {
            var column = new TableColumn(Markup.Escape(title)).Footer(new Markup($"[bold]{Markup.Escape(Text(footer))}[/]"));
            table.AddColumn(right ? column.RightAligned() : column);
        }

        table.AddColumn(new TableColumn(Markup.Escape(groupBy)).Footer(new Markup("[bold]TOTAL[/]")));
        Column("requests", totals["requests"]);
        Column("errors", totals["errors"]);
        Column("prompt", totals["prompt_tokens"]);
        Column("cached", totals["cached_tokens"]);
        Column("completion", totals["completion_tokens"]);
        Column("reasoning", totals["reasoning_tokens"]);
        Column("cost $", totals["cost_usd"]);
        Column("estimated", totals["estimated"]);
        if (baseline is not null)
        {
            Column($"on {baseline} $", totals["baseline_cost_usd"]);
            Column("savings $", totals["savings_usd"]);
            Column("savings %", totals["savings_pct"]);
        }

        if (byKey)
        {
            Column("name", null, right: false);
            Column("team", null, right: false);
            Column("today $", null);
            Column("month $", null);
            Column("daily budget", null);
            Column("monthly budget", null);
            Column("credit $", null);
        }

        foreach (var row in report["rows"]!.AsArray())
        {
            var cells = new List<string>
            {
                Text(row?["group"], empty: "(none)"), Text(row?["requests"]), Text(row?["errors"]), Text(row?["prompt_tokens"]),
                Text(row?["cached_tokens"]), Text(row?["completion_tokens"]), Text(row?["reasoning_tokens"]), Text(row?["cost_usd"]),
                Text(row?["estimated"]),
            };
            if (baseline is not null)
            {
                cells.AddRange([Text(row?["baseline_cost_usd"]), Text(row?["savings_usd"]), Text(row?["savings_pct"])]);
            }

            if (byKey)
            {
                cells.AddRange([
                    Text(row?["name"]), Text(row?["team"]), Text(row?["spend_today_usd"]), Text(row?["spend_month_usd"]),
                    Text(row?["daily_budget"]), Text(row?["monthly_budget"]), Text(row?["credit_balance"]),
                ]);
            }

            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }

        console.Write(table);
        var run = report["run_rate"]!;
        console.MarkupLine(Markup.Escape(
            $"Month to date: ${Text(run["month_to_date_usd"])}; projected month: ${Text(run["projected_month_usd"])} ({Text(run["days_elapsed"])} of {Text(run["days_in_month"])} days elapsed)."));
    }

    private static string Text(JsonNode? node, string empty = "–") => node switch
    {
        null => "–",
        JsonValue value when value.TryGetValue<string>(out var text) => text.Length == 0 ? empty : text,
        _ => node.ToJsonString(),
    };
}
