namespace Shepherd.Cli;

using System.CommandLine;
using Shepherd.Cli.Commands;

/// <summary>The command tree of the <c>shepherd</c> executable.</summary>
public static class ShepherdCli
{
    public static Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var root = new RootCommand("Shepherd: an OpenAI-compatible AI gateway. Run 'shepherd serve' to start it.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(ConfigCommand.Create());
        var configuration = new InvocationConfiguration();
        if (output is not null)
        {
            configuration.Output = output;
        }

        if (error is not null)
        {
            configuration.Error = error;
        }

        return root.Parse(args).InvokeAsync(configuration);
    }

    /// <summary>The <c>--config</c> option shared by the commands that read a configuration.</summary>
    internal static Option<string?> ConfigOption() => new("--config", "-c")
    {
        Description = "Configuration file (YAML). Default: $SHEPHERD_CONFIG, else ./shepherd.yaml if present, else the built-in demo configuration.",
    };
}
