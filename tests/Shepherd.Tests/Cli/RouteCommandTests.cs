namespace Shepherd.Tests.Cli;

using System.CommandLine;
using System.Net;
using Shepherd.Cli;
using Shepherd.Cli.Commands;
using Shepherd.Testing;
using Shepherd.Tests.Configuration;
using Shepherd.Tests.Routing.Rules;
using static Shepherd.Tests.Routing.Rules.RoutingFixtures;

/// <summary><c>shepherd route explain</c>: the same decision the gateway makes (and logs), the context check, the deployment order.</summary>
public sealed class RouteCommandTests : IDisposable
{
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
        return (code, output.ToString().ReplaceLineEndings("\n"), error.ToString().ReplaceLineEndings("\n"));
    }

    private static string[] HeaderArgs(string? tags, string? budget) =>
        [.. tags is null ? [] : new[] { "--header", $"x-shepherd-tags: {tags}" }, .. budget is null ? [] : new[] { "-H", $"x-shepherd-latency-budget-ms: {budget}" }];

    public static TheoryData<string, string, string, string?, string?> Rules => RuleTable();

    [Theory]
    [MemberData(nameof(Rules))]
    public async Task Explain_SameDecisionAsTheGatewayLogged(string rule, string model, string body, string? tags, string? budget)
    {
        await using var gateway = await GatewayHost.StartAsync(AutoConfig);
        using var response = await gateway.Client.SendAsync(AutoRoutingEndToEndTests.Post(body, tags, budget));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-request-id").Single();
        var logged = gateway.Logs.Lines.Single(l => l.Contains(requestId + " routed ", StringComparison.Ordinal));
        var decision = logged[(logged.IndexOf(" routed ", StringComparison.Ordinal) + " routed ".Length)..];

        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", body);
        var (code, output, error) = await RunAsync(["route", "explain", "--config", config, "--model", "auto", "--request", request, .. HeaderArgs(tags, budget)]);

        Assert.True(code == 0, error);
        Assert.Contains($"\nDecision: {decision}\n", output, StringComparison.Ordinal);
        Assert.Contains($"\nChosen model: {model} (rule '{rule}', x-shepherd-route-rule: {rule})\n", output, StringComparison.Ordinal);
        Assert.Contains($"\nDeployments, in the order they would be tried:\n   1. sim/{model} (provider sim, simulated): priority: priority 0, weight 1\n", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_PrintsEveryRuleCheckedAndTheOnesSkipped()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", UserBody("Is this spam?"));

        var (code, output, _) = await RunAsync("route", "explain", "-c", config, "-m", "AUTO", "-r", request, "-H", "x-shepherd-tags: task_type=classify");

        Assert.Equal(0, code);
        var lines = output.Split('\n');
        Assert.Equal("Request: " + request + " (model 'auto', 2 messages, 0 tools)", lines[0]);
        Assert.Equal("Virtual model: auto (8 rules)", lines[1]);
        Assert.Matches(@"^   1\. long-context  no     prompt ~\d+ tokens < min_prompt_tokens 100000$", lines[2]);
        Assert.Equal("   2. vision        no     no images", lines[3]);
        Assert.Equal("   5. code          no     none of 'stack trace', 'debug', 'refactor' in the last user message", lines[6]);
        Assert.Equal("   6. classify      MATCH  header tag task_type=classify", lines[7]);
        Assert.Equal("   7. fast          -      not checked (an earlier rule matched)", lines[8]);
        Assert.Equal("   8. default       -      not checked (an earlier rule matched)", lines[9]);
        Assert.Equal("Chosen model: deepseek-v3.2 (rule 'classify', x-shepherd-route-rule: classify)", lines[10]);
        Assert.StartsWith("Decision: auto -> deepseek-v3.2 by rule 'classify': long-context: no (", lines[11], StringComparison.Ordinal);
        Assert.Equal("Context: not checked (the model has no context settings)", lines[12]);
    }

    [Fact]
    public async Task Explain_ModelDefaultsToTheRequestsOwn()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", UserBody("hi"));

        var (code, output, _) = await RunAsync("route", "explain", "-c", config, "-r", request);

        Assert.Equal(0, code);
        Assert.Contains("Chosen model: deepseek-v3.2 (rule 'default',", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_DirectModel_NoRulesAndItsDeployments()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", UserBody("hi"));

        var (code, output, _) = await RunAsync("route", "explain", "-c", config, "-m", "deepseek", "-r", request);

        Assert.Equal(0, code);
        Assert.Contains("Model: deepseek-v3.2 (not a virtual model: no rules to check)\n", output, StringComparison.Ordinal);
        Assert.Contains("   1. sim/deepseek-v3.2 (provider sim, simulated): priority: priority 0, weight 1\n", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_ContextRejected_SaysWhatTheGatewayWouldAnswer()
    {
        var yaml = AutoConfig.Replace(
            "  - name: deepseek-v3.2\n",
            "  - name: deepseek-v3.2\n    context_window: 1000\n    context: { overflow: reject, reserved_output: 100 }\n",
            StringComparison.Ordinal);
        var config = WriteFile("shepherd.yaml", yaml);
        var request = WriteFile("request.json", UserBody(string.Concat(Enumerable.Repeat("lorem ", 2000))));

        var (code, output, _) = await RunAsync("route", "explain", "-c", config, "-m", "auto", "-r", request);

        Assert.Equal(0, code);
        Assert.Matches(@"\nContext: prompt ~\d+ tokens exceeds 900 \(context_window 1000 - reserved_output 100\): rejected: This model's maximum context length", output);
        Assert.Contains("The gateway would answer 400 context_length_exceeded; nothing would be sent.\n", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Deployments", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_DeploymentOrderComesFromTheSeam()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", UserBody("hi"));
        var command = RouteCommand.Create((model, chat) => [(model.Deployments[0], $"custom for {chat.Model}")]);
        using var output = new StringWriter();

        var code = await command.Parse(["explain", "-c", config, "-r", request]).InvokeAsync(new InvocationConfiguration { Output = output, Error = output });

        Assert.Equal(0, code);
        Assert.Contains("   1. sim/deepseek-v3.2 (provider sim, simulated): custom for auto\n", output.ToString().ReplaceLineEndings("\n"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_InvalidJson_ErrorLikeTheApiAndExit1()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        var request = WriteFile("request.json", """{"model":"auto","messages":[{"role":"user"}]}""");

        var (code, output, error) = await RunAsync("route", "explain", "-c", config, "-r", request);

        Assert.Equal(1, code);
        Assert.Equal(string.Empty, output);
        Assert.Contains("error: the gateway would answer 400:\n{\"error\":{\"message\":", error, StringComparison.Ordinal);
        Assert.Contains("\"param\":\"messages[0].content\"", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("missing.json", "error: cannot read '")]
    [InlineData("request.json", "error: the model 'autp' is neither a configured model, alias nor router (did you mean 'auto'?).", "-m", "autp")]
    [InlineData("request.json", "error: --header 'nonsense' is not 'name: value'.", "-H", "nonsense")]
    [InlineData("request.json", "error: the gateway would answer 400: The x-shepherd-latency-budget-ms header must be a whole number", "-H", "x-shepherd-latency-budget-ms: fast")]
    public async Task Explain_BadInput_MessageAndExit1(string file, string expected, params string[] extra)
    {
        var config = WriteFile("shepherd.yaml", AutoConfig);
        WriteFile("request.json", UserBody("hi"));

        var (code, _, error) = await RunAsync(["route", "explain", "-c", config, "-r", Path.Combine(_directory.Path, file), .. extra]);

        Assert.Equal(1, code);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_InvalidConfig_ProblemsAndExit1()
    {
        var config = WriteFile("shepherd.yaml", AutoConfig.Replace("model: claude-sonnet-4.5\n", "model: nope\n", StringComparison.Ordinal));
        var request = WriteFile("request.json", UserBody("hi"));

        var (code, _, error) = await RunAsync("route", "explain", "-c", config, "-r", request);

        Assert.Equal(1, code);
        Assert.Contains("error: routers[0].rules[4].model: unknown model 'nope'\n", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_MissingRequestOption_UsageErrorExit1()
    {
        var (code, _, error) = await RunAsync("route", "explain", "-m", "auto");

        Assert.Equal(1, code);
        Assert.Contains("--request", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsTheRouteCommand()
    {
        var (_, output, _) = await RunAsync("--help");
        Assert.Matches(@"(?m)^\s+route\s+\S", output);

        var (code, explainHelp, _) = await RunAsync("route", "explain", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--request <FILE>", explainHelp, StringComparison.Ordinal);
        Assert.Contains("--header <HEADER>", explainHelp, StringComparison.Ordinal);
    }

    [Fact]
    public void TierExample_LoadsForTheCli()
    {
        ConfigTestHelpers.AssertValid(TieredRoutingTests.TierExample);
    }
}
