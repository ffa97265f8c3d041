namespace Shepherd.Cli.Commands;

using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

/// <summary><c>shepherd keys create|list|show|update|revoke|topup</c> over the admin API of a running gateway.</summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var command = new Command("keys", "Manage virtual keys of a running gateway (admin API; master key from SHEPHERD_MASTER_KEY).");
        command.Subcommands.Add(CreateKey());
        command.Subcommands.Add(List());
        command.Subcommands.Add(Show());
        command.Subcommands.Add(Update());
        command.Subcommands.Add(Revoke());
        command.Subcommands.Add(TopUp());
        return command;
    }

    private static Argument<string> Id() => new("id") { Description = "The key id (key_…)." };

    /// <summary>The limit options shared by create and update. "none" clears a limit on update.</summary>
    private sealed class LimitOptions
    {
        public Option<string?> Name { get; } = new("--name") { Description = "Display name." };

        public Option<string?> Team { get; } = new("--team") { Description = "Owner or team tag." };

        public Option<string?> Models { get; } = new("--models") { Description = "Allowed models: comma-separated names, aliases or * wildcards (default: all)." };

        public Option<string?> Ips { get; } = new("--ip") { Description = "IP allow-list: comma-separated CIDRs or addresses (default: anywhere)." };

        public Option<string?> Rpm { get; } = new("--rpm") { Description = "Requests per minute." };

        public Option<string?> Tpm { get; } = new("--tpm") { Description = "Tokens per minute." };

        public Option<string?> Parallel { get; } = new("--max-parallel") { Description = "Requests in flight at once (streams count until they end)." };

        public Option<string?> Daily { get; } = new("--daily-budget") { Description = "Daily budget in USD." };

        public Option<string?> Monthly { get; } = new("--monthly-budget") { Description = "Monthly budget in USD." };

        public Option<string?> Total { get; } = new("--total-budget") { Description = "Total (lifetime) budget in USD." };

        public Option<string?> Credit { get; } = new("--credit") { Description = "Start a prepaid credit balance in USD." };

        public Option<string?> Expires { get; } = new("--expires") { Description = "Expiry (ISO 8601, e.g. 2027-01-31T00:00:00Z)." };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { Name, Team, Models, Ips, Rpm, Tpm, Parallel, Daily, Monthly, Total, Credit, Expires })
            {
                command.Options.Add(option);
            }
        }

        public JsonObject ToJson(ParseResult parse)
        {
            var body = new JsonObject();
            void Put(string field, string? raw, Func<string, JsonNode?> convert)
            {
                if (raw is null)
                {
                    return;
                }

                body[field] = raw.Equals("none", StringComparison.OrdinalIgnoreCase) ? null : convert(raw);
            }

            static JsonNode List(string raw) => new JsonArray(raw.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => (JsonNode)s).ToArray());
            static JsonNode Number(string raw) => JsonValue.Create(decimal.Parse(raw, NumberStyles.Number, CultureInfo.InvariantCulture));
            Put("name", parse.GetValue(Name), s => s);
            Put("team", parse.GetValue(Team), s => s);
            Put("allowed_models", parse.GetValue(Models), List);
            Put("ip_allowlist", parse.GetValue(Ips), List);
            Put("rpm", parse.GetValue(Rpm), Number);
            Put("tpm", parse.GetValue(Tpm), Number);
            Put("max_parallel", parse.GetValue(Parallel), Number);
            Put("daily_budget", parse.GetValue(Daily), Number);
            Put("monthly_budget", parse.GetValue(Monthly), Number);
            Put("total_budget", parse.GetValue(Total), Number);
            Put("credit_balance", parse.GetValue(Credit), Number);
            Put("expires_at", parse.GetValue(Expires), s => s);
            return body;
        }
    }

    private static Command CreateKey()
    {
        var limits = new LimitOptions();
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var command = new Command("create", "Create a virtual key; its secret is shown exactly once.") { url, json };
        limits.AddTo(command);
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var key = await client.PostAsync("admin/keys", limits.ToJson(parse), ct);
            return (key, console =>
            {
                RenderKey(console, key);
                console.MarkupLine($"[yellow]Key (shown once, store it now):[/] {Markup.Escape(key["key"]?.GetValue<string>() ?? "")}");
            });
        }));
        return command;
    }

    private static Command List()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var command = new Command("list", "List virtual keys.") { url, json };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var list = await client.GetAsync("admin/keys", ct);
            return (list, console =>
            {
                var table = new Table().AddColumns("id", "name", "team", "status", "key", "rpm", "tpm", "daily $", "monthly $", "credit $", "spent today $");
                foreach (var key in list["data"]!.AsArray())
                {
                    table.AddRow(
                        Text(key?["id"]), Text(key?["name"]), Text(key?["team"]), Text(key?["status"]), Text(key?["display"]),
                        Text(key?["rpm"]), Text(key?["tpm"]), Text(key?["daily_budget"]), Text(key?["monthly_budget"]),
                        Text(key?["credit_balance"]), Text(key?["spend"]?["today"]));
                }

                console.Write(table);
            });
        }));
        return command;
    }

    private static Command Show()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var id = Id();
        var command = new Command("show", "Show one key with its usage.") { id, url, json };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var keyId = Uri.EscapeDataString(parse.GetValue(id)!);
            var key = await client.GetAsync($"admin/keys/{keyId}", ct);
            var usage = await client.GetAsync($"admin/keys/{keyId}/usage", ct);
            var both = new JsonObject { ["key"] = key.DeepClone(), ["usage"] = usage.DeepClone() };
            return (both, console =>
            {
                RenderKey(console, key);
                var table = new Table().AddColumns("usage", "value");
                table.AddRow("day", Text(usage["day"]));
                table.AddRow("spent today / this month / total", $"{Text(usage["spend"]?["today"])} / {Text(usage["spend"]?["this_month"])} / {Text(usage["spend"]?["total"])}");
                table.AddRow("credit balance", Text(usage["credit_balance"]));
                table.AddRow("reserved now", Text(usage["reserved"]));
                table.AddRow("in flight", Text(usage["in_flight"]));
                table.AddRow("requests / tokens last minute", $"{Text(usage["requests_last_minute"])} / {Text(usage["tokens_last_minute"])}");
                console.Write(table);
            });
        }));
        return command;
    }

    private static Command Update()
    {
        var limits = new LimitOptions();
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var id = Id();
        var command = new Command("update", "Change a key's settings; pass 'none' to clear a limit.") { id, url, json };
        limits.AddTo(command);
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var key = await client.PatchAsync($"admin/keys/{Uri.EscapeDataString(parse.GetValue(id)!)}", limits.ToJson(parse), ct);
            return (key, console => RenderKey(console, key));
        }));
        return command;
    }

    private static Command Revoke()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var id = Id();
        var command = new Command("revoke", "Revoke a key (refused from the next request on).") { id, url, json };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var key = await client.PostAsync($"admin/keys/{Uri.EscapeDataString(parse.GetValue(id)!)}/revoke", null, ct);
            return (key, console => RenderKey(console, key));
        }));
        return command;
    }

    private static Command TopUp()
    {
        var url = AdminCommand.UrlOption();
        var json = AdminCommand.JsonOption();
        var id = Id();
        var amount = new Argument<decimal>("amount") { Description = "USD to add to the credit balance." };
        var command = new Command("topup", "Add prepaid credit to a key.") { id, amount, url, json };
        command.SetAction((parse, ct) => AdminCommand.RunAsync(parse, url, json, async client =>
        {
            var result = await client.PostAsync($"admin/keys/{Uri.EscapeDataString(parse.GetValue(id)!)}/topup", new JsonObject { ["amount"] = parse.GetValue(amount) }, ct);
            return (result, console => console.MarkupLine($"Credit balance of {Markup.Escape(Text(result["id"]))}: [green]{Markup.Escape(Text(result["credit_balance"]))}[/] USD"));
        }));
        return command;
    }

    private static void RenderKey(IAnsiConsole console, JsonNode key)
    {
        var table = new Table().AddColumns("field", "value");
        foreach (var field in new[] { "id", "name", "team", "status", "display", "created_at", "expires_at", "allowed_models", "ip_allowlist", "rpm", "tpm", "max_parallel", "daily_budget", "monthly_budget", "total_budget", "credit_balance" })
        {
            table.AddRow(field, Text(key[field]));
        }

        console.Write(table);
    }

    private static string Text(JsonNode? node) => Markup.Escape(node switch
    {
        null => "–",
        JsonArray array => array.Count == 0 ? "all" : string.Join(", ", array.Select(a => a?.ToString())),
        _ => node.ToString(),
    });
}
