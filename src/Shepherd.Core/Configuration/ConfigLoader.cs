namespace Shepherd.Configuration;

using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

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
    /// Picks the file: <paramref name="path"/>, else <c>$SHEPHERD_CONFIG</c>, else <c>./shepherd.yaml</c> if it exists,
    /// else none (the built-in demo configuration).
    /// </summary>
    public static string? ResolvePath(string? path)
    {
        if (!string.IsNullOrWhiteSpace(path))
        {
            return path;
        }

        var fromEnvironment = Environment.GetEnvironmentVariable(ConfigEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return fromEnvironment;
        }

        return File.Exists(DefaultFileName) ? DefaultFileName : null;
    }

    public static ConfigLoadResult Load(string? path, Func<string, string?>? environment = null)
    {
        var resolved = ResolvePath(path);
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
        YamlNode? root;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            if (stream.Documents.Count > 1)
            {
                problems.Add(new ConfigProblem(string.Empty, "the file holds more than one YAML document; only one is allowed"));
            }

            root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        }
        catch (YamlException ex)
        {
            var where = ex.Start.Line > 0 ? $"line {ex.Start.Line}, column {ex.Start.Column}: " : string.Empty;
            var message = ex.InnerException?.Message ?? ex.Message;
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
}
