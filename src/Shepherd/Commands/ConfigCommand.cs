namespace Shepherd.Cli.Commands;

using System.CommandLine;
using Shepherd.Configuration;

/// <summary><c>shepherd config check [--config FILE]</c>: every problem with its key path; exit 1 on any error.</summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var config = ShepherdCli.ConfigOption();
        var check = new Command(
            "check",
            "Validate a configuration without starting anything: print every error and warning with its key path; exit 1 on any error.")
        {
            config,
        };
        check.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var loaded = ConfigLoader.Load(parse.GetValue(config));
            foreach (var problem in loaded.Errors)
            {
                output.WriteLine($"error: {problem}");
            }

            foreach (var warning in loaded.Warnings)
            {
                output.WriteLine($"warning: {warning}");
            }

            if (!loaded.IsValid)
            {
                var count = loaded.Errors.Count();
                output.WriteLine($"{loaded.Source}: {count} problem{(count == 1 ? "" : "s")} found.");
                return 1;
            }

            output.WriteLine($"{loaded.Source}: OK ({loaded.Config!.Providers.Count} provider(s), {loaded.Config.Models.Count} model(s)).");
            return 0;
        });

        var command = new Command("config", "Work with the configuration file (see 'config check').");
        command.Subcommands.Add(check);
        return command;
    }
}
