namespace Shepherd.Tests.Cli;

using System.Diagnostics;
using System.Net.Sockets;
using Shepherd.Cli;
using Shepherd.Server.Hosting;
using Shepherd.Tests.Configuration;

/// <summary>The <c>shepherd</c> command line, run in-process (and once as the built executable).</summary>
public sealed class ShepherdCliTests : IDisposable
{
    private const string ValidYaml = """
        master_key: sk-cli-test-key-0123456789
        providers:
          - name: sim
            type: simulated
        models:
          - name: demo
            deployments:
              - provider: sim
        """;

    private readonly ConfigLoaderTests.TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string WriteFile(string name, string text)
    {
        var path = Path.Combine(_directory.Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await ShepherdCli.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Help_ListsCommandsOptionsExamplesAndEnvironment()
    {
        var (code, output, _) = await RunAsync("--help");

        Assert.Equal(0, code);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
        Assert.Contains("shepherd [command] [options]", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^\s+serve\s+\S", output);
        Assert.Matches(@"(?m)^\s+config\s+\S", output);
        Assert.Matches(@"(?m)^\s+--version\s+\S", output);
        Assert.Matches(@"(?m)^\s+-\?, -h, --help\s+\S", output);
        Assert.Contains("Examples:", output, StringComparison.Ordinal);
        Assert.Contains("SHEPHERD_CONFIG", output, StringComparison.Ordinal);
        Assert.Contains("SHEPHERD_MASTER_KEY", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("serve", "--config", "--urls")]
    [InlineData("config check", "--config", "--help")]
    public async Task CommandHelp_EveryOptionHasADescription(string command, string option1, string option2)
    {
        var (code, output, _) = await RunAsync([.. command.Split(' '), "--help"]);

        Assert.Equal(0, code);
        foreach (var option in new[] { option1, option2 })
        {
            // The option, its value name if any, then a description on the same line.
            Assert.Matches($@"(?m)^\s+(-\S+, )*{option}( <[A-Z]+>)?\s{{2,}}\S", output);
        }

        Assert.DoesNotContain("Examples:", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeHelp_NamesTheValues()
    {
        var (_, output, _) = await RunAsync("serve", "--help");
        Assert.Contains("--config <FILE>", output, StringComparison.Ordinal);
        Assert.Contains("--urls <URLS>", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_PrintsTheGatewayVersion()
    {
        var (code, output, _) = await RunAsync("--version");
        Assert.Equal(0, code);
        Assert.Equal($"shepherd {GatewayServices.Version}", output.Trim());
        Assert.Matches(@"^\d+\.\d+\.\d+", GatewayServices.Version);
    }

    [Fact]
    public async Task NoCommand_Exit1WithHelp()
    {
        var (code, output, error) = await RunAsync();
        Assert.Equal(1, code);
        Assert.Contains("a command is required", error, StringComparison.Ordinal);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownCommand_Exit1NamingIt()
    {
        var (code, _, error) = await RunAsync("srve");
        Assert.NotEqual(0, code);
        Assert.Contains("srve", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigCheck_ValidFile_Exit0AndOkLine()
    {
        var file = WriteFile("ok.yaml", ValidYaml);
        var (code, output, _) = await RunAsync("config", "check", "--config", file);

        Assert.Equal(0, code);
        Assert.Equal($"{file}: OK (1 provider(s), 1 model(s)).", output.Trim());
    }

    [Fact]
    public async Task ConfigCheck_ShortOption_Works()
    {
        var file = WriteFile("ok.yaml", ValidYaml);
        var (code, _, _) = await RunAsync("config", "check", "-c", file);
        Assert.Equal(0, code);
    }

    [Fact]
    public async Task ConfigCheck_BrokenFile_Exit1AndEveryProblemWithItsPath()
    {
        var file = WriteFile("broken.yaml", ConfigLoaderTests.FiveMistakes);
        var (code, output, _) = await RunAsync("config", "check", "--config", file);

        Assert.Equal(1, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(
            [
                "error: server.max_body_bytes: expected a whole number, but got 'huge'",
                "error: providers[0].api_key: unknown key (did you mean 'api_keys'?)",
                "error: listen: 'localhost:8080' is not an http(s) URL such as http://127.0.0.1:8080",
                "error: models[0].deployments[0].provider: unknown provider 'opena1' (did you mean 'openai'?)",
                "error: models[1].name: 'GPT-4.1' is already used by models[0].name (names and aliases are case-insensitive)",
                $"{file}: 5 problems found.",
            ],
            lines);
    }

    [Fact]
    public async Task ConfigCheck_WarningsOnly_Exit0AndWarningsPrinted()
    {
        var file = WriteFile("warn.yaml", "providers: [ { name: sim, type: simulated } ]\n");
        var (code, output, _) = await RunAsync("config", "check", "--config", file);

        Assert.Equal(0, code);
        Assert.Contains("warning: models: no models are configured", output, StringComparison.Ordinal);
        Assert.Contains(": OK (1 provider(s), 0 model(s)).", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigCheck_MissingFile_Exit1NamingIt()
    {
        var file = Path.Combine(_directory.Path, "missing.yaml");
        var (code, output, _) = await RunAsync("config", "check", "--config", file);

        Assert.Equal(1, code);
        Assert.Contains($"error: cannot read '{file}'", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigCheck_InvalidYaml_Exit1WithLine()
    {
        var file = WriteFile("bad.yaml", "providers:\n  - name: [ unclosed\n");
        var (code, output, _) = await RunAsync("config", "check", "--config", file);

        Assert.Equal(1, code);
        Assert.Contains("error: line ", output, StringComparison.Ordinal);
        Assert.Contains("invalid YAML", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_InvalidConfig_Exit1WithEveryProblem()
    {
        var file = WriteFile("broken.yaml", ConfigLoaderTests.FiveMistakes);
        var (code, _, error) = await RunAsync("serve", "--config", file);

        Assert.Equal(1, code);
        Assert.Contains($"the configuration from {file} has problems", error, StringComparison.Ordinal);
        Assert.Contains("  models[0].deployments[0].provider: unknown provider 'opena1'", error, StringComparison.Ordinal);
        Assert.Contains("  server.max_body_bytes: expected a whole number", error, StringComparison.Ordinal);
        Assert.Equal(5, error.Split('\n').Count(l => l.StartsWith("  ", StringComparison.Ordinal) && l.Contains(": ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Serve_InvalidUrls_Exit1WithoutStarting()
    {
        var file = WriteFile("ok.yaml", ValidYaml);
        var (code, _, error) = await RunAsync("serve", "--config", file, "--urls", "localhost:8080");

        Assert.Equal(1, code);
        Assert.Contains("--urls: 'localhost:8080' is not an http(s) URL", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_ValidConfig_ServesUntilCancelledThenExit0()
    {
        var file = WriteFile("ok.yaml", ValidYaml);
        var port = FreePort();
        using var stop = new CancellationTokenSource();
        using var output = new StringWriter();
        using var error = new StringWriter();
        var run = ShepherdCli.RunAsync(["serve", "-c", file, "--urls", $"http://127.0.0.1:{port}"], output, error, stop.Token);

        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        HttpResponseMessage? health = null;
        while (health is null)
        {
            Assert.False(run.IsCompleted, error.ToString());
            try
            {
                health = await client.GetAsync("/health", deadline.Token);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        Assert.True(health.IsSuccessStatusCode);
        client.DefaultRequestHeaders.Authorization = new("Bearer", "sk-cli-test-key-0123456789");
        using var models = await client.GetAsync("/v1/models");
        Assert.Contains("\"demo\"", await models.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Serve_PortInUse_Exit1SayingSo()
    {
        var file = WriteFile("ok.yaml", ValidYaml);
        using var occupant = new TcpListener(System.Net.IPAddress.Loopback, 0);
        occupant.Start();
        var port = ((System.Net.IPEndPoint)occupant.LocalEndpoint).Port;

        var (code, _, error) = await RunAsync("serve", "-c", file, "--urls", $"http://127.0.0.1:{port}");

        Assert.Equal(1, code);
        Assert.Contains("shepherd: cannot listen:", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Executable_VersionAndConfigCheck_ExitCodesAndOutput()
    {
        var (versionCode, versionOut, _) = await RunExecutableAsync("--version");
        Assert.Equal(0, versionCode);
        Assert.Equal($"shepherd {GatewayServices.Version}", versionOut.Trim());

        var (helpCode, helpOut, _) = await RunExecutableAsync("--help");
        Assert.Equal(0, helpCode);
        Assert.Contains("shepherd [command] [options]", helpOut, StringComparison.Ordinal);

        var ok = WriteFile("ok.yaml", ValidYaml);
        var (okCode, okOut, _) = await RunExecutableAsync("config", "check", "-c", ok);
        Assert.Equal(0, okCode);
        Assert.Contains(": OK (1 provider(s), 1 model(s)).", okOut, StringComparison.Ordinal);

        var broken = WriteFile("broken.yaml", ConfigLoaderTests.FiveMistakes);
        var (brokenCode, brokenOut, _) = await RunExecutableAsync("config", "check", "-c", broken);
        Assert.Equal(1, brokenCode);
        Assert.Equal(5, brokenOut.Split('\n').Count(l => l.StartsWith("error: ", StringComparison.Ordinal)));

        var (serveCode, _, serveError) = await RunExecutableAsync("serve", "-c", broken);
        Assert.Equal(1, serveCode);
        Assert.Contains("unknown provider 'opena1'", serveError, StringComparison.Ordinal);
    }

    /// <summary>Runs the built <c>shepherd</c> (the apphost beside the tests, else <c>dotnet shepherd.dll</c>).</summary>
    private static async Task<(int Code, string Output, string Error)> RunExecutableAsync(params string[] args)
    {
        var directory = AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "shepherd.exe" : "shepherd");
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(directory, "shepherd.dll") } };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.Environment.Remove("SHEPHERD_CONFIG");

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
