namespace Shepherd.Configuration;

using YamlDotNet.Core;

/// <summary>The outcome of loading a configuration: the config (when it bound) and every problem found.</summary>
public sealed record ConfigLoadResult(ShepherdConfig? Config, IReadOnlyList<ConfigProblem> Problems, string Source)
{
    public bool IsValid => Config is not null && !Problems.Any(p => !p.IsWarning);

    public IEnumerable<ConfigProblem> Errors => Problems.Where(p => !p.IsWarning);

    public IEnumerable<ConfigProblem> Warnings => Problems.Where(p => p.IsWarning);
}

/// <summary>Finds, reads, interpolates, binds and validates the configuration.</summary>
public static class ConfigLoader
{
    public const string DefaultFileName = "shepherd.yaml";
    public const string ConfigEnvironmentVariable = "SHEPHERD_CONFIG";
    public const string MasterKeyEnvironmentVariable = "SHEPHERD_MASTER_KEY";

    /// <summary>
    /// Picks the file: <paramref name="path"/>, else <c>$SHEPHERD_CONFIG</c>, else <c>shepherd.yaml</c> in
    /// <paramref name="directory"/> (the current directory) if it exists, else none (the built-in demo configuration).
    /// </summary>
    public static string? ResolvePath(string? path, Func<string, string?>? environment = null, string? directory = null)
    {
        if (!string.IsNullOrWhiteSpace(path))
        {
            return path;
        }

        var fromEnvironment = (environment ?? Environment.GetEnvironmentVariable)(ConfigEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return fromEnvironment;
        }

        var candidate = directory is null ? DefaultFileName : Path.Combine(directory, DefaultFileName);
        return File.Exists(candidate) ? candidate : null;
    }

    /// <param name="path">The file named on the command line, if any (see <see cref="ResolvePath"/>).</param>
    /// <param name="environment">Environment lookup for <c>SHEPHERD_CONFIG</c> and <c>${VAR}</c> (default: the process's).</param>
    /// <param name="directory">Where to look for <c>shepherd.yaml</c> (default: the current directory).</param>
    public static ConfigLoadResult Load(string? path, Func<string, string?>? environment = null, string? directory = null)
    {
        var resolved = ResolvePath(path, environment, directory);
        if (resolved is null)
        {
            return LoadYaml(DemoConfig.Yaml, "built-in demo configuration", environment);
        }

        string text;
        try
        {
            text = File.ReadAllText(resolved);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new ConfigLoadResult(null, [new ConfigProblem(string.Empty, $"cannot read '{resolved}': {ex.Message}")], resolved);
        }

        return LoadYaml(text, resolved, environment);
    }

    public static ConfigLoadResult LoadYaml(string yaml, string source = "inline", Func<string, string?>? environment = null)
    {
        var problems = new List<ConfigProblem>();
        ConfigNode? root;
        try
        {
            (root, var documents) = ConfigYaml.Parse(yaml);
            if (documents > 1)
            {
                problems.Add(new ConfigProblem(string.Empty, "the file holds more than one YAML document; only one is allowed"));
            }
        }
        catch (YamlException ex)
        {
            var where = ex.Start.Line > 0 ? $"line {ex.Start.Line}, column {ex.Start.Column}: " : string.Empty;

            // Our own messages are the exception's; YamlDotNet's carry a position prefix we already show.
            var message = ex.InnerException is YamlException inner ? inner.Message : StripPosition(ex.Message);
            problems.Add(new ConfigProblem(string.Empty, $"{where}invalid YAML: {message}"));
            return new ConfigLoadResult(null, problems, source);
        }

        var lookup = environment ?? Environment.GetEnvironmentVariable;
        var binder = new ConfigBinder(new EnvironmentInterpolator(lookup), problems);
        var config = binder.Bind<ShepherdConfig>(root);
        foreach (var name in binder.UnsetVariables.Order(StringComparer.Ordinal))
        {
            problems.Add(new ConfigProblem(string.Empty, $"environment variable {name} is not set (used without a default)", IsWarning: true));
        }

        ConfigValidator.Validate(config, problems);
        return new ConfigLoadResult(config, problems, source);
    }

    /// <summary>Drops YamlDotNet's "(Line: 2, Col: 3, Idx: 10) - (Line: …): " prefix.</summary>
    private static string StripPosition(string message)
    {
        var cut = message.IndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && cut > 0 ? message[(cut + 3)..] : message;
    }
}
