namespace Shepherd.Tests.Cli.Bench;

using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shepherd.Cli;
using Shepherd.Testing;

/// <summary>A simulated gateway shared by the benchmark runs: fixed usage, so tokens and cost are exact.</summary>
public sealed class BenchGatewayFixture : IAsyncLifetime
{
    /// <summary>Per request: 100 prompt tokens at $1/M + 20 completion tokens at $2/M.</summary>
    public const decimal CostPerRequest = 0.00014m;

    public GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync() => Gateway = await GatewayHost.StartAsync("""
        providers:
          - { name: sim, type: simulated, simulated: { time_to_first_token_ms: 2, prompt_tokens: 100, completion_tokens: 20 } }
        models:
          - { name: demo, price: { input: 1, output: 2 }, deployments: [ { provider: sim } ] }
          - { name: other, price: { input: 3, output: 4 }, deployments: [ { provider: sim } ] }
        """);

    public async Task DisposeAsync() => await Gateway.DisposeAsync();
}

/// <summary><c>shepherd bench</c> run in-process against a real gateway with the simulated provider.</summary>
public sealed class BenchCommandTests(BenchGatewayFixture fixture) : IClassFixture<BenchGatewayFixture>, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("shepherd-bench-");

    public void Dispose() => _directory.Delete(recursive: true);

    private string PathOf(string name) => Path.Combine(_directory.FullName, name);

    private Task<(int Code, string Output, string Error)> BenchAsync(params string[] args) =>
        RunAsync(["bench", "--url", fixture.Gateway.BaseUrl, "--key", GatewayHost.TestMasterKey, .. args]);

    private static async Task<(int Code, string Output, string Error)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await ShepherdCli.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Bench_FortyRequestsAtConcurrencyFour_AllSucceedWithTokensCostAndReports()
    {
        var json = PathOf("run.json");
        var html = PathOf("run.html");

        var (code, output, error) = await BenchAsync("--model", "demo", "--requests", "40", "--concurrency", "4", "--max-tokens", "64", "--json", json, "--html", html);

        Assert.True(code == 0, error);
        AssertRow(output, "requests", "40");
        AssertRow(output, "successes", "40");
        AssertRow(output, "errors", "0");
        Assert.Contains("demo via sim (40)", output, StringComparison.Ordinal);
        Assert.Contains("$0.00014", output, StringComparison.Ordinal);
        Assert.Contains("latency (ms)", output, StringComparison.Ordinal);

        var report = JsonNode.Parse(await File.ReadAllTextAsync(json))!;
        Assert.Equal("shepherd-bench/1", report["schema"]!.GetValue<string>());
        Assert.Equal(fixture.Gateway.BaseUrl + "/v1", report["settings"]!["url"]!.GetValue<string>());
        Assert.Equal(40, report["settings"]!["requests"]!.GetValue<int>());
        Assert.Equal(4, report["settings"]!["concurrency"]!.GetValue<int>());
        Assert.Equal(64, report["settings"]!["max_tokens"]!.GetValue<int>());
        var run = Assert.Single(report["runs"]!.AsArray())!;
        Assert.Equal("demo", run["model"]!.GetValue<string>());
        Assert.Equal(40, run["requests"]!.GetValue<int>());
        Assert.Equal(40, run["successes"]!.GetValue<int>());
        Assert.Equal(0, run["errors"]!.GetValue<int>());
        Assert.Empty(run["errors_by_status"]!.AsObject());
        Assert.Equal(40, run["latency_ms"]!["count"]!.GetValue<int>());
        var latency = run["latency_ms"]!;
        Assert.True(latency["min"]!.GetValue<double>() <= latency["p50"]!.GetValue<double>());
        Assert.True(latency["p50"]!.GetValue<double>() <= latency["p95"]!.GetValue<double>());
        Assert.True(latency["p99"]!.GetValue<double>() <= latency["max"]!.GetValue<double>());
        Assert.Null(run["ttft_ms"]);
        Assert.Equal(4000, run["tokens"]!["input"]!.GetValue<long>());
        Assert.Equal(800, run["tokens"]!["output"]!.GetValue<long>());
        Assert.Equal(BenchGatewayFixture.CostPerRequest * 40, run["cost_usd"]!["total"]!.GetValue<decimal>());
        Assert.Equal(BenchGatewayFixture.CostPerRequest, run["cost_usd"]!["per_request"]!.GetValue<decimal>());
        Assert.Equal(40, run["cost_usd"]!["requests_with_cost"]!.GetValue<int>());
        var served = Assert.Single(run["served_by"]!.AsArray())!;
        Assert.Equal(("demo", "sim", 40), (served["model"]!.GetValue<string>(), served["provider"]!.GetValue<string>(), served["requests"]!.GetValue<int>()));
        Assert.Equal(40, run["latency_histogram"]!.AsArray().Sum(b => b!["count"]!.GetValue<int>()));
        var samples = run["samples"]!.AsArray();
        Assert.Equal(40, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.Equal(200, s!["status"]!.GetValue<int>());
            Assert.True(s["ok"]!.GetValue<bool>());
            Assert.Equal(20, s["output_tokens"]!.GetValue<int>());
            Assert.Equal(BenchGatewayFixture.CostPerRequest, s["cost_usd"]!.GetValue<decimal>());
            Assert.True(s["latency_ms"]!.GetValue<double>() > 0);
        });

        AssertSelfContainedHtml(await File.ReadAllTextAsync(html));
    }

    [Fact]
    public async Task Bench_UnknownModel_AllErrorsCountedBy404AndExitOneWithTheFirstError()
    {
        var json = PathOf("unknown.json");

        var (code, output, error) = await BenchAsync("--model", "no-such-model", "--requests", "40", "--concurrency", "4", "--json", json);

        Assert.Equal(1, code);
        Assert.Contains("no-such-model", error, StringComparison.Ordinal);
        Assert.Contains("404 model_not_found", error, StringComparison.Ordinal);
        Assert.Contains("404 × ", output, StringComparison.Ordinal);
        var run = JsonNode.Parse(await File.ReadAllTextAsync(json))!["runs"]![0]!;
        var requests = run["requests"]!.GetValue<int>();
        Assert.InRange(requests, 1, 40);
        Assert.Equal(0, run["successes"]!.GetValue<int>());
        Assert.Equal(requests, run["errors"]!.GetValue<int>());
        Assert.Equal(requests, run["errors_by_status"]!["404"]!.GetValue<int>());
        Assert.Equal(requests, run["errors_by_code"]!["model_not_found"]!.GetValue<int>());
        Assert.True(run["stopped_early"]!.GetValue<bool>());
        Assert.Equal("model_not_found", run["first_error"]!["code"]!.GetValue<string>());
        Assert.Null(run["latency_ms"]);
        Assert.Null(run["cost_usd"]!["total"]);
        Assert.All(run["samples"]!.AsArray(), s => Assert.Equal(404, s!["status"]!.GetValue<int>()));
    }

    [Fact]
    public async Task Bench_Stream_ReportsTimeToFirstTokenAndTokensFromTheUsageChunk()
    {
        var json = PathOf("stream.json");

        var (code, output, error) = await BenchAsync("--model", "demo", "--stream", "--requests", "8", "--concurrency", "2", "--json", json);

        Assert.True(code == 0, error);
        Assert.Contains("TTFT (ms)", output, StringComparison.Ordinal);
        var report = JsonNode.Parse(await File.ReadAllTextAsync(json))!;
        Assert.True(report["settings"]!["stream"]!.GetValue<bool>());
        var run = report["runs"]![0]!;
        Assert.Equal(8, run["successes"]!.GetValue<int>());
        Assert.Equal(8, run["ttft_ms"]!["count"]!.GetValue<int>());
        Assert.True(run["ttft_ms"]!["p50"]!.GetValue<double>() <= run["latency_ms"]!["max"]!.GetValue<double>());
        Assert.Equal(800, run["tokens"]!["input"]!.GetValue<long>());
        Assert.Equal(160, run["tokens"]!["output"]!.GetValue<long>());
        Assert.False(run["tokens"]!["output_counted"]!.GetValue<bool>());
        Assert.All(run["samples"]!.AsArray(), s => Assert.True(s!["ttft_ms"]!.GetValue<double>() <= s["latency_ms"]!.GetValue<double>()));

        // A stream's cost comes from the final usage chunk's "shepherd" object, which Shepherd always adds.
        Assert.Equal(BenchGatewayFixture.CostPerRequest * 8, run["cost_usd"]!["total"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task Bench_CompareTwoModels_OneTableListingBothAndOneRunEach()
    {
        var json = PathOf("compare.json");
        var html = PathOf("compare.html");

        var (code, output, error) = await BenchAsync("--compare", "demo,other", "--requests", "6", "--concurrency", "2", "--json", json, "--html", html);

        Assert.True(code == 0, error);
        Assert.Contains("2 models", output, StringComparison.Ordinal);
        AssertRow(output, "demo", @"sim \(6\)");
        AssertRow(output, "other", @"sim \(6\)");
        Assert.Contains("$0.00014", output, StringComparison.Ordinal);
        Assert.Contains("$0.00038", output, StringComparison.Ordinal);
        var runs = JsonNode.Parse(await File.ReadAllTextAsync(json))!["runs"]!.AsArray();
        Assert.Equal(new[] { "demo", "other" }, runs.Select(r => r!["model"]!.GetValue<string>()));
        Assert.All(runs, r => Assert.Equal(6, r!["successes"]!.GetValue<int>()));
        var page = await File.ReadAllTextAsync(html);
        AssertSelfContainedHtml(page);
        Assert.Contains("<h2>demo</h2>", page, StringComparison.Ordinal);
        Assert.Contains("<h2>other</h2>", page, StringComparison.Ordinal);
        Assert.Contains("Comparison", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_Duration_RunsUntilTheTimeIsUpInsteadOfACount()
    {
        var json = PathOf("duration.json");

        var (code, _, error) = await BenchAsync("--model", "demo", "--duration", "0.3", "--requests", "1", "--concurrency", "2", "--json", json);

        Assert.True(code == 0, error);
        var report = JsonNode.Parse(await File.ReadAllTextAsync(json))!;
        Assert.Null(report["settings"]!["requests"]);
        Assert.Equal(0.3, report["settings"]!["duration_s"]!.GetValue<double>());
        var run = report["runs"]![0]!;
        Assert.True(run["requests"]!.GetValue<int>() >= 2, "both workers complete at least one request");
        Assert.Equal(run["requests"]!.GetValue<int>(), run["successes"]!.GetValue<int>());
    }

    [Fact]
    public async Task Bench_PromptFileWithMessages_IsSent()
    {
        var prompt = PathOf("prompt.json");
        await File.WriteAllTextAsync(prompt, """[ { "role": "system", "content": "Be brief." }, { "role": "user", "content": "Say hi." } ]""");

        var (code, output, error) = await BenchAsync("--model", "demo", "--requests", "2", "--prompt", prompt);

        Assert.True(code == 0, error);
        AssertRow(output, "successes", "2");
    }

    [Fact]
    public async Task Bench_WrongKey_ExitOneWithTheGatewaysMessage()
    {
        var (code, _, error) = await RunAsync(["bench", "--url", fixture.Gateway.BaseUrl + "/v1", "--key", "sk-wrong", "--model", "demo", "--requests", "2"]);

        Assert.Equal(1, code);
        Assert.Contains("401", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_GatewayUnreachable_ExitTwo()
    {
        // A port that was free a moment ago: nothing listens there.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();

        var (code, _, error) = await RunAsync(["bench", "--url", $"http://127.0.0.1:{port}", "--key", "k", "--model", "demo", "--requests", "2"]);

        Assert.Equal(2, code);
        Assert.Contains("cannot reach the gateway", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--requests", "2")]
    [InlineData("--model", "demo", "--requests", "0")]
    [InlineData("--model", "demo", "--concurrency", "0")]
    [InlineData("--model", "demo", "--duration", "-1")]
    [InlineData("--model", "demo", "--url", "localhost:8080")]
    [InlineData("--model", "demo", "--prompt", "/no/such/prompt.txt")]
    [InlineData("--model", "demo", "--json", "/no/such/folder/report.json")]
    [InlineData("--model", "demo", "--unknown-option")]
    public async Task Bench_BadUsage_ExitOneBeforeSendingAnything(params string[] args)
    {
        var (code, _, error) = await RunAsync(["bench", .. args]);

        Assert.Equal(1, code);
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    /// <summary>A table row whose first cells are <paramref name="name"/> and <paramref name="value"/> (any border style).</summary>
    private static void AssertRow(string output, string name, string value) =>
        Assert.Matches(new Regex($@"(?m)^\W*{name}\s+\W\s*{value}(\s|$)"), output);

    /// <summary>Viewable offline: inline SVG charts, no script and no external stylesheet, image or font.</summary>
    private static void AssertSelfContainedHtml(string page)
    {
        Assert.StartsWith("<!DOCTYPE html>", page, StringComparison.Ordinal);
        Assert.Contains("<svg", page, StringComparison.Ordinal);
        Assert.Contains("<polyline", page, StringComparison.Ordinal);
        Assert.Contains("<rect", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<link", page, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotMatch(new Regex(@"(src|href)\s*=\s*[""']?\s*(https?:)?//", RegexOptions.IgnoreCase), page);
        Assert.DoesNotMatch(new Regex(@"url\(\s*[""']?(https?:)?//", RegexOptions.IgnoreCase), page);
        Assert.DoesNotContain("@import", page, StringComparison.Ordinal);
    }
}
