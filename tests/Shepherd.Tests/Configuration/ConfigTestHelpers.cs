namespace Shepherd.Tests.Configuration;

using Shepherd.Configuration;

/// <summary>Loading YAML with a fixed environment, and reading the problems back as "path: message" lines.</summary>
internal static class ConfigTestHelpers
{
    /// <summary>A small valid configuration that the tests vary.</summary>
    public const string Minimal = """
        master_key: sk-test
        providers:
          - name: sim
            type: simulated
        models:
          - name: m
            deployments:
              - provider: sim
        """;

    public static ConfigLoadResult Load(string yaml, IReadOnlyDictionary<string, string>? environment = null) =>
        ConfigLoader.LoadYaml(yaml, "test", name => environment is not null && environment.TryGetValue(name, out var value) ? value : null);

    public static string[] Errors(ConfigLoadResult result) => result.Errors.Select(p => p.ToString()).ToArray();

    public static string[] Warnings(ConfigLoadResult result) => result.Warnings.Select(p => p.ToString()).ToArray();

    /// <summary>Asserts that loading <paramref name="yaml"/> yields exactly the <paramref name="expected"/> error lines.</summary>
    public static void AssertErrors(string yaml, params string[] expected)
    {
        var result = Load(yaml);
        Assert.Equal(expected, Errors(result));
        Assert.False(result.IsValid);
    }

    public static ShepherdConfig AssertValid(string yaml, IReadOnlyDictionary<string, string>? environment = null)
    {
        var result = Load(yaml, environment);
        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        return result.Config!;
    }
}
