namespace Shepherd.Cli;

using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Shepherd.Cli.Commands;
using Shepherd.Configuration;
using Shepherd.Server.Hosting;

/// <summary>The command tree of the <c>shepherd</c> executable.</summary>
public static class ShepherdCli
{
    /// <summary>The name shown in help, whatever process hosts the CLI (the tests run it in-process).</summary>
    public const string Name = "shepherd";

    /// <summary>Runs the CLI.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="output">Where normal output goes (default: the console).</param>
    /// <param name="error">Where problems go (default: the console's error stream).</param>
    /// <param name="cancellationToken">Stops <c>serve</c> (Ctrl+C and SIGTERM do too).</param>
    /// <returns>The exit code: 0 success, 1 invalid configuration, start-up failure or bad usage.</returns>
    public static Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        var root = new Command(Name, "Shepherd: an OpenAI-compatible AI gateway in front of OpenAI-compatible, Anthropic and Gemini upstreams.");
        var help = new HelpOption();
        var helpAction = new HelpWithNotes((HelpAction)help.Action!, root);
        help.Action = helpAction;
        var version = new Option<bool>("--version")
        {
            Description = "Print the version of shepherd and exit.",
            Arity = ArgumentArity.Zero,
        };
        root.Options.Add(help);
        root.Options.Add(version);
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(ConfigCommand.Create());
        root.Subcommands.Add(KeysCommand.Create());
        root.Subcommands.Add(RouteCommand.Create());
        root.Subcommands.Add(Commands.Bench.BenchCommand.Create());
        root.Subcommands.Add(UsageCommand.Create());
        root.Subcommands.Add(WebhooksCommand.Create());
        root.SetAction(parse =>
        {
            if (parse.GetValue(version))
            {
                parse.InvocationConfiguration.Output.WriteLine($"{Name} {GatewayServices.Version}");
                return 0;
            }

            // No command: say so, show what there is, and fail, so a script that forgot the command notices.
            parse.InvocationConfiguration.Error.WriteLine($"{Name}: a command is required (serve, config, keys, route or usage).");
            helpAction.Invoke(parse);
            return 1;
        });

        var configuration = new InvocationConfiguration();
        if (output is not null)
        {
            configuration.Output = output;
        }

        if (error is not null)
        {
            configuration.Error = error;
        }

        return root.Parse(args).InvokeAsync(configuration, cancellationToken);
    }

    /// <summary>The <c>--config</c> option shared by the commands that read a configuration.</summary>
    internal static Option<string?> ConfigOption() => new("--config", "-c")
    {
        Description = $"The configuration file (YAML). Default: ${ConfigLoader.ConfigEnvironmentVariable}, else ./{ConfigLoader.DefaultFileName} if it exists, else the built-in demo configuration (simulated models only).",
        HelpName = "FILE",
    };

    /// <summary>The default help, then (for the top-level command) examples and the environment variables read.</summary>
    private sealed class HelpWithNotes(HelpAction inner, Command root) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var code = inner.Invoke(parseResult);
            if (parseResult.CommandResult.Command != root)
            {
                return code;
            }

            var output = parseResult.InvocationConfiguration.Output;
            output.WriteLine($"""
                Examples:
                  {Name} serve                              Start with ${ConfigLoader.ConfigEnvironmentVariable}, else ./{ConfigLoader.DefaultFileName}, else the demo.
                  {Name} serve -c /etc/shepherd.yaml --urls http://0.0.0.0:8080
                  {Name} config check -c shepherd.yaml      Print every problem in a configuration; exit 1 if there is one.
                  {Name} keys create --name app --rpm 60 --daily-budget 5   Create a virtual key (admin API of a running gateway).
                  {Name} route explain --model auto --request req.json      How a request would be routed (sends nothing).
                  {Name} bench --model demo-fast --requests 200 --concurrency 8 --html report.html
                  {Name} usage --by key --since 7d --baseline gpt-4.1   Usage and cost per key, with savings against a model.
                  {Name} route explain -m auto -r request.json -H 'x-shepherd-tags: task_type=classify'   How a request would be routed.
                  {Name} webhooks dead                      Webhook events that gave up; 'webhooks replay --all-dead' queues them again.

                Environment:
                  {ConfigLoader.ConfigEnvironmentVariable,-24}The configuration file, when --config is not given.
                  {ConfigLoader.MasterKeyEnvironmentVariable,-24}The master key, when the configuration sets none; 'keys' and 'usage' send it to the admin API.
                  {"SHEPHERD_URL",-24}The gateway 'keys' and 'usage' talk to (default http://127.0.0.1:8080).
                  {"${VAR} in the config",-24}Any configuration value may reference an environment variable.

                Exit codes: 0 success, 1 invalid configuration, failed start-up or bad usage; bench: 2 gateway unreachable, 130 interrupted.

                Run '{Name} <command> --help' for a command's options. Configuration reference: docs/configuration.md.
                """);
            return code;
        }
    }
}
