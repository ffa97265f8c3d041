namespace Shepherd.Cli.Commands;

using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Shepherd.Configuration;
using Shepherd.Server.Hosting;

/// <summary><c>shepherd serve [--config FILE] [--urls URLS]</c>.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var config = ShepherdCli.ConfigOption();
        var urls = new Option<string?>("--urls")
        {
            Description = $"Where to listen, overriding 'listen' in the configuration: one or more http(s) URLs separated by ';' (e.g. http://0.0.0.0:8080). Default: the configuration's 'listen', else {ShepherdConfig.DefaultListen}.",
            HelpName = "URLS",
        };
        var command = new Command(
            "serve",
            "Run the gateway until Ctrl+C or SIGTERM (it refuses to start if the configuration has errors).")
        {
            config,
            urls,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var loaded = ConfigLoader.Load(parse.GetValue(config));
            var problems = loaded.Errors.ToList();
            var listen = parse.GetValue(urls);
            if (listen is not null)
            {
                problems.AddRange(ConfigValidator.ValidateListen(listen, "--urls"));
            }

            if (!loaded.IsValid || problems.Count > 0)
            {
                await error.WriteLineAsync($"shepherd: the configuration from {loaded.Source} has problems:");
                foreach (var problem in problems)
                {
                    await error.WriteLineAsync($"  {problem}");
                }

                return 1;
            }

            foreach (var warning in loaded.Warnings)
            {
                await error.WriteLineAsync($"shepherd: warning: {warning}");
            }

            InlineIo.Apply(loaded.Config!.Server);
            var app = await GatewayApp.BuildAsync(loaded.Config!, new GatewayHostOptions
            {
                Urls = listen,
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

            try
            {
                await app.StartAsync(cancellationToken);
                await app.WaitForShutdownAsync(cancellationToken);
            }
            catch (IOException ex)
            {
                // Typically "address already in use".
                await error.WriteLineAsync($"shepherd: cannot listen: {ex.Message}");
                return 1;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Stopped before it finished starting.
            }
            finally
            {
                await app.DisposeAsync();
            }

            return 0;
        });
        return command;
    }
}
