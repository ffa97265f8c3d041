namespace Shepherd.Cli.Commands;

using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

/// <summary>What the admin-API commands (<c>keys</c>, <c>webhooks</c>) share: their options and how a call is run and printed.</summary>
internal static class AdminCommand
{
    public static Option<string?> UrlOption() => new("--url") { Description = $"Gateway base URL (default: $SHEPHERD_URL or {AdminClient.DefaultUrl})." };

    public static Option<bool> JsonOption() => new("--json") { Description = "Print the raw JSON instead of a table." };

    /// <summary>Runs one admin call: its JSON with <c>--json</c>, else its rendering; an API or input error is one line on stderr and exit code 1.</summary>
    public static async Task<int> RunAsync(
        ParseResult parse,
        Option<string?> url,
        Option<bool> json,
        Func<AdminClient, Task<(JsonNode Result, Action<IAnsiConsole> Render)>> action)
    {
        var output = parse.InvocationConfiguration.Output;
        try
        {
            using var client = new AdminClient(parse.GetValue(url), null);
            var (result, render) = await action(client);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.Detect, ColorSystem = ColorSystemSupport.Detect });

                // Piped output has no terminal width: keep rows whole rather than wrapping ids.
                if (Console.IsOutputRedirected || output != Console.Out)
                {
                    console.Profile.Width = 200;
                }

                render(console);
            }

            return 0;
        }
        catch (Exception ex) when (ex is AdminApiException or FormatException)
        {
            await parse.InvocationConfiguration.Error.WriteLineAsync($"shepherd: {ex.Message}");
            return 1;
        }
    }
}
