namespace Shepherd.Tests.Configuration;

using Shepherd.Configuration;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>Finding, reading and loading whole files: every problem at once, the demo, the documented example.</summary>
public sealed class ConfigLoaderTests
{
    /// <summary>Five mistakes of five kinds: bad URL, wrong type, unknown key, unknown reference, duplicate name.</summary>
    public const string FiveMistakes = """
        listen: localhost:8080
        server:
          max_body_bytes: huge
        providers:
          - name: openai
            type: openai
            base_url: https://api.openai.com/v1
            api_key: [ sk-1 ]
        models:
          - name: gpt-4.1
            deployments:
              - provider: opena1
          - name: GPT-4.1
            deployments:
              - provider: openai
        """;

    /// <summary>The example of issue 2: OpenAI and Anthropic, one model with aliases, prices and deployments.</summary>
    public const string IssueExample = """
        listen: http://0.0.0.0:8080
        master_key: ${SHEPHERD_MASTER_KEY}

        providers:
          - name: openai
            type: openai
            base_url: https://api.openai.com/v1
            api_keys:
              - ${OPENAI_API_KEY}
          - name: anthropic
            type: anthropic
            api_keys:
              - ${ANTHROPIC_API_KEY}

        models:
          - name: gpt-4.1
            aliases: [ gpt4, default ]
            context_window: 1047576
            max_output_tokens: 32768
            price: { input: 2.00, output: 8.00, cached_input: 0.50 }
            deployments:
              - provider: openai
                model: gpt-4.1-2025-04-14
          - name: claude-sonnet-4
            aliases: [ sonnet ]
            context_window: 200000
            max_output_tokens: 64000
            price: { input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75 }
            deployments:
              - provider: anthropic
                model: claude-sonnet-4-20250514
        """;

    [Fact]
    public void Load_FiveMistakes_FiveLinesAtOnce()
    {
        var result = Load(FiveMistakes);
        Assert.False(result.IsValid);
        Assert.Equal(
            [
                "server.max_body_bytes: expected a whole number, but got 'huge'",
                "providers[0].api_key: unknown key (did you mean 'api_keys'?)",
                "listen: 'localhost:8080' is not an http(s) URL such as http://127.0.0.1:8080",
                "models[0].deployments[0].provider: unknown provider 'opena1' (did you mean 'openai'?)",
                "models[1].name: 'GPT-4.1' is already used by models[0].name (names and aliases are case-insensitive)",
            ],
            Errors(result));
    }

    [Fact]
    public void Load_DemoConfiguration_ValidWithoutWarnings()
    {
        var result = ConfigLoader.LoadYaml(DemoConfig.Yaml, "demo", _ => null);
        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Empty(result.Problems);
        Assert.Equal(["demo-fast", "demo-smart"], result.Config!.Models.Select(m => m.Name));
        Assert.All(result.Config.Providers, p => Assert.Equal(ProviderTypes.Simulated, p.Type));
    }

    [Fact]
    public void Load_NoFileAnywhere_DemoConfiguration()
    {
        using var directory = new TempDirectory();
        var result = ConfigLoader.Load(null, _ => null, directory.Path);
        Assert.Equal("built-in demo configuration", result.Source);
        Assert.True(result.IsValid);
    }

    [Fact]
    public void Load_IssueExample_BindsAndValidates()
    {
        var result = Load(IssueExample, new Dictionary<string, string>
        {
            ["SHEPHERD_MASTER_KEY"] = "sk-master-123",
            ["OPENAI_API_KEY"] = "sk-openai-1",
            ["ANTHROPIC_API_KEY"] = "sk-ant-1",
        });

        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Empty(result.Problems);
        var config = result.Config!;
        Assert.Equal("sk-master-123", config.MasterKey);
        Assert.Equal(["sk-openai-1"], config.Providers[0].ApiKeys);
        Assert.Equal(ProviderTypes.Anthropic, config.Providers[1].Type);
        var gpt = config.Models[0];
        Assert.Equal("gpt-4.1", gpt.Name);
        Assert.Equal(["gpt4", "default"], gpt.Aliases);
        Assert.Equal(2.00m, gpt.Price!.Input);
        Assert.Equal(0.50m, gpt.Price.CachedInput);
        Assert.Equal("gpt-4.1-2025-04-14", gpt.Deployments.Single().Model);
    }

    [Fact]
    public void Load_IssueExampleWithoutEnvironment_ValidWithWarnings()
    {
        var result = Load(IssueExample);
        Assert.True(result.IsValid, string.Join("\n", Errors(result)));
        Assert.Contains("environment variable OPENAI_API_KEY is not set (used without a default)", Warnings(result));
        Assert.Contains("providers[1].api_keys: no API key is set: requests to this provider will fail", Warnings(result));
    }

    [Fact]
    public void Load_InvalidYaml_OneErrorWithLineNumber()
    {
        var result = Load("providers:\n  - name: [ unclosed\nmodels: []\n");
        var error = Assert.Single(Errors(result));
        Assert.StartsWith("line ", error, StringComparison.Ordinal);
        Assert.Contains("invalid YAML", error, StringComparison.Ordinal);
        Assert.Null(result.Config);
    }

    [Fact]
    public void Load_TabIndentation_InvalidYamlError()
    {
        var result = Load("server:\n\tmax_body_bytes: 2048\n");
        Assert.Contains("invalid YAML", Assert.Single(Errors(result)), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TwoDocuments_Error()
    {
        var result = Load(Minimal + "\n---\nlisten: http://127.0.0.1:1\n");
        Assert.Equal(["the file holds more than one YAML document; only one is allowed"], Errors(result));
    }

    [Fact]
    public void Load_TopLevelList_Error()
    {
        Assert.Equal(["expected a mapping (key: value pairs), but got a list"], Errors(Load("- a\n- b\n")));
    }

    [Fact]
    public void Load_AnchorsAndAliases_Resolved()
    {
        var config = AssertValid("""
            providers:
              - name: a
                type: simulated
                timeouts: &slow { connect_ms: 100, first_byte_ms: 200, idle_ms: 300 }
              - name: b
                type: simulated
                timeouts: *slow
            models:
              - { name: m, deployments: [ { provider: a }, { provider: b } ] }
            """);
        Assert.Equal(config.Providers[0].Timeouts, config.Providers[1].Timeouts);
        Assert.Equal(300, config.Providers[1].Timeouts.IdleMs);
    }

    [Fact]
    public void Load_UnknownAlias_InvalidYamlError()
    {
        var result = Load("providers: *nothing\n");
        Assert.Contains("invalid YAML", Assert.Single(Errors(result)), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_AliasFanOut_StopsAtTheValueBudget()
    {
        // 400 providers, each an alias of one provider whose headers are an alias of 400 headers: 160,000 values
        // from a file of a few kilobytes. Binding stops at the budget with one error instead of expanding them all.
        var headers = string.Join(", ", Enumerable.Range(0, 400).Select(i => $"H{i}: v"));
        var yaml = $"x-headers: &h {{ {headers} }}\n" +
                   "x-provider: &p { name: sim, type: simulated, headers: *h }\n" +
                   $"providers: [ {string.Join(", ", Enumerable.Repeat("*p", 400))} ]\n";
        var errors = Errors(Load(yaml));
        Assert.Single(errors, e => e.Contains($"more than {ConfigBinder.MaxValues} values", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_File_ReadAndNamedAsSource()
    {
        using var directory = new TempDirectory();
        var file = Path.Combine(directory.Path, "custom.yaml");
        File.WriteAllText(file, Minimal);
        var result = ConfigLoader.Load(file, _ => null);
        Assert.True(result.IsValid);
        Assert.Equal(file, result.Source);
    }

    [Fact]
    public void Load_MissingFile_ErrorNamingIt()
    {
        using var directory = new TempDirectory();
        var file = Path.Combine(directory.Path, "nope.yaml");
        var result = ConfigLoader.Load(file, _ => null);
        var error = Assert.Single(Errors(result));
        Assert.StartsWith($"cannot read '{file}'", error, StringComparison.Ordinal);
        Assert.False(result.IsValid);
    }

    [Fact]
    public void ResolvePath_Order_ArgumentThenVariableThenWorkingDirectory()
    {
        using var directory = new TempDirectory();
        var inDirectory = Path.Combine(directory.Path, ConfigLoader.DefaultFileName);
        Assert.Null(ConfigLoader.ResolvePath(null, _ => null, directory.Path));

        File.WriteAllText(inDirectory, Minimal);
        Assert.Equal(inDirectory, ConfigLoader.ResolvePath(null, _ => null, directory.Path));
        Assert.Equal("/etc/from-env.yaml", ConfigLoader.ResolvePath(null, name => name == "SHEPHERD_CONFIG" ? "/etc/from-env.yaml" : null, directory.Path));
        Assert.Equal("given.yaml", ConfigLoader.ResolvePath("given.yaml", _ => "/etc/from-env.yaml", directory.Path));
    }

    /// <summary>A fresh directory, deleted afterwards.</summary>
    internal sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("shepherd-test-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
