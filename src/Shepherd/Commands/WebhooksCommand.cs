namespace Shepherd.Cli.Commands;

using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

/// <summary>
/// <c>shepherd webhooks list|show ID|dead|replay ID|replay --all-dead|purge-dead</c> over the admin API of a running
/// gateway: inspect received events (payload, attempts, result) and work the dead letters.
/// </summary>
internal static class WebhooksCommand
{
    public static Command Create()
    {
        var command = new Command("webhooks", "Inspect webhook events and work the dead letters of a running gateway (admin API; master key from SHEPHERD_MASTER_KEY).");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Show());
        command.Subcommands.Add(Dead());
        command.Subcommands.Add(Replay());
        command.Subcommands.Add(PurgeDead());
        return command;
    }

    private static Option<string?> Source() => new("--source", "-s") { Description = "Only this source (required when several sources have the same event id)." };

    private static Option<int?> Limit() => new("--limit", "-n") { Description = "Events to show at most (1 … 1000, default 50)." };

    private static Command List()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var source = Source();
        var limit = Limit();
        var status = new Option<string?>("--status") { Description = "Only events whose processing is waiting, leased, completed, failed (retrying), dead or skipped." };
        var command = new Command("list", "List received events, newest first.") { url, json, source, status, limit };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var list = await client.GetAsync("admin/webhooks" + Query(("source", parse.GetValue(source)), ("status", parse.GetValue(status)), ("limit", parse.GetValue(limit)?.ToString(System.Globalization.CultureInfo.InvariantCulture))), ct);
            return (list, console => RenderList(console, list));
        }));
        return command;
    }

    private static Command Dead()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var source = Source();
        var limit = Limit();
        var command = new Command("dead", "List the dead letters: events whose processing or delivery gave up, with the last error.") { url, json, source, limit };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var list = await client.GetAsync("admin/webhooks/dead" + Query(("source", parse.GetValue(source)), ("limit", parse.GetValue(limit)?.ToString(System.Globalization.CultureInfo.InvariantCulture))), ct);
            return (list, console => RenderList(console, list));
        }));
        return command;
    }

    private static Command Show()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var source = Source();
        var id = new Argument<string>("id") { Description = "The event id." };
        var command = new Command("show", "Show one event: payload, jobs with every attempt, result.") { id, url, json, source };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var detail = await client.GetAsync($"admin/webhooks/events/{Uri.EscapeDataString(parse.GetValue(id)!)}" + Query(("source", parse.GetValue(source))), ct);
            return (detail, console => RenderDetail(console, detail));
        }));
        return command;
    }

    private static Command Replay()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var source = Source();
        var id = new Argument<string?>("id") { Description = "The event id to replay (it keeps its id).", Arity = ArgumentArity.ZeroOrOne };
        var allDead = new Option<bool>("--all-dead") { Description = "Replay every dead letter (of --source, or all)." };
        var command = new Command("replay", "Queue an event's dead (or retrying) jobs again now, with a fresh allowance of tries.") { id, url, json, source, allDead };
        command.Validators.Add(result =>
        {
            var hasId = result.GetValue(id) is not null;
            var all = result.GetValue(allDead);
            if (hasId == all)
            {
                result.AddError("Give an event id or --all-dead (not both).");
            }
        });
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            if (parse.GetValue(allDead))
            {
                var all = await client.PostAsync("admin/webhooks/dead/replay" + Query(("source", parse.GetValue(source))), null, ct);
                return (all, console => console.MarkupLine($"Replayed [green]{Markup.Escape(all["replayed"]?.ToString() ?? "0")}[/] dead job(s)."));
            }

            var one = await client.PostAsync($"admin/webhooks/events/{Uri.EscapeDataString(parse.GetValue(id)!)}/replay" + Query(("source", parse.GetValue(source))), null, ct);
            return (one, console => console.MarkupLine($"Replayed [green]{Markup.Escape(one["source"]?.ToString() ?? "")}/{Markup.Escape(one["id"]?.ToString() ?? "")}[/]."));
        }));
        return command;
    }

    private static Command PurgeDead()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var source = Source();
        var command = new Command("purge-dead", "Delete the dead letters (of --source, or all) for good.") { url, json, source };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var result = await client.PostAsync("admin/webhooks/dead/purge" + Query(("source", parse.GetValue(source))), null, ct);
            return (result, console => console.MarkupLine($"Purged [green]{Markup.Escape(result["purged"]?.ToString() ?? "0")}[/] dead job(s)."));
        }));
        return command;
    }

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var parts = parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return parts.Count == 0 ? "" : "?" + string.Join("&", parts);
    }

    private static void RenderList(IAnsiConsole console, JsonNode list)
    {
        var table = new Table().AddColumns("source", "id", "type", "status", "attempts", "received", "delivery", "last error");
        foreach (var e in list["data"]!.AsArray())
        {
            table.AddRow(Text(e?["source"]), Text(e?["id"]), Text(e?["type"]), Text(e?["status"]), Text(e?["attempts"]), Text(e?["received_at"]), Text(e?["delivery_status"]), Text(e?["last_error"]));
        }

        console.Write(table);
        if (list["has_more"]?.GetValue<bool>() == true)
        {
            console.MarkupLine("[grey]More events exist: raise --limit or narrow with --source/--status.[/]");
        }
    }

    private static void RenderDetail(IAnsiConsole console, JsonNode e)
    {
        var table = new Table().AddColumns("field", "value");
        foreach (var field in new[] { "source", "id", "type", "status", "received_at" })
        {
            table.AddRow(field, Text(e[field]));
        }

        table.AddRow("payload", Markup.Escape(e["payload"]?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? "–"));
        if (e["result"] is JsonObject result)
        {
            table.AddRow("model", Text(result["model"]));
            table.AddRow("result", Text(result["text"]));
            table.AddRow("tokens (prompt / completion)", $"{Text(result["prompt_tokens"])} / {Text(result["completion_tokens"])}");
            table.AddRow("cost $", Text(result["cost_usd"]));
            table.AddRow("latency ms", Text(result["latency_ms"]));
        }

        console.Write(table);
        var attempts = new Table().AddColumns("job", "attempt", "started", "ms", "outcome", "status", "error");
        foreach (var job in e["jobs"]?.AsArray() ?? [])
        {
            foreach (var attempt in job?["history"]?.AsArray() ?? [])
            {
                attempts.AddRow(Text(job?["kind"]), Text(attempt?["attempt"]), Text(attempt?["started_at"]), Text(attempt?["duration_ms"]), Text(attempt?["outcome"]), Text(attempt?["status"]), Text(attempt?["error"]));
            }

            if (job?["next_attempt_at"] is { } next)
            {
                attempts.AddRow(Text(job["kind"]), "next", Text(next), "", Text(job["status"]), "", Text(job["last_error"]));
            }
        }

        console.Write(attempts);
    }

    private static string Text(JsonNode? node) => Markup.Escape(node?.ToString() ?? "–");
}
