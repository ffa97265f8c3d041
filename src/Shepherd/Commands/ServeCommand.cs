namespace Shepherd.Cli.Commands;

using System.CommandLine;
using Shepherd.Configuration;
using Shepherd.Server.Hosting;

/// <summary><c>shepherd serve [--config FILE] [--urls URL]</c>.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var config = ShepherdCli.ConfigOption();
        var urls = new Option<string?>("--urls")
        {
            Description = $"Where to listen, e.g. http://127.0.0.1:8080 (overrides 'listen'; default {ShepherdConfig.DefaultListen}).",
        };
        var command = new Command("serve", "Run the gateway.") { config, urls };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var loaded = ConfigLoader.Load(parse.GetValue(config));
            if (!loaded.IsValid)
            {
                await error.WriteLineAsync($"shepherd: the configuration from {loaded.Source} has problems:");
                foreach (var problem in loaded.Errors)
                {
                    await error.WriteLineAsync($"  {problem}");
                }

                return 1;
            }

            var app = GatewayApp.Build(loaded.Config!, new GatewayHostOptions
            {
                Urls = parse.GetValue(urls),
                Source = loaded.Source,
                OnGeneratedMasterKey = key =>
                {
                    error.WriteLine();
                    error.WriteLine("  WARNING: no master key configured (set SHEPHERD_MASTER_KEY).");
                    error.WriteLine("  A development master key was generated for this run only:");
                    error.WriteLine();
                    error.WriteLine($"      {key}");
                    error.WriteLine();
                },
            });
            foreach (var warning in loaded.Warnings)
            {
                await error.WriteLineAsync($"shepherd: warning: {warning}");
            }

            try
            {
                await app.RunAsync();
            }
            catch (IOException ex)
            {
                // Typically "address already in use".
                await error.WriteLineAsync($"shepherd: cannot listen: {ex.Message}");
                return 1;
            }

            return 0;
        });
        return command;
    }
}
