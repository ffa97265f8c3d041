namespace Shepherd.Tests.Cli;

using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Accounting;
using Shepherd.Testing;
using Shepherd.Tests.Accounting;

/// <summary><c>shepherd usage</c> as a real child process against a running gateway: it shows what the API reports.</summary>
public sealed class UsageCommandTests : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _key = null!;
    private Dictionary<string, string> _env = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(
            """
            providers: [ { name: sim, type: simulated } ]
            models:
              - { name: gpt-big, price: { input: 10, output: 30, cached_input: 2.5 }, deployments: [ { provider: sim } ] }
              - { name: gpt-small, price: { input: 0.5, output: 1.5 }, deployments: [ { provider: sim } ] }
            """,
            new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero)));
        (_key, _) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "cli-key", team = "ops", daily_budget = 5 });
        UsageRecord Record(string id, string time, string model, int prompt, int cached, int completion, decimal cost) => new()
        {
            Time = DateTimeOffset.Parse(time, System.Globalization.CultureInfo.InvariantCulture),
            RequestId = id,
            KeyId = _key,
            Team = "ops",
            ServedModel = model,
            Provider = "sim",
            Status = 200,
            PromptTokens = prompt,
            CachedTokens = cached,
            CompletionTokens = completion,
            Cost = cost,
        };
        await _gateway.Services.GetRequiredService<IUsageStore>().WriteAsync(
        [
            Record("r1", "2026-11-20T09:00:00Z", "gpt-small", 1000, 400, 500, 0.00125m),
            Record("r2", "2026-11-21T15:30:00Z", "gpt-big", 2000, 1000, 100, 0.0155m),
            Record("r3", "2026-11-22T08:00:00Z", "gpt-small", 300, 0, 700, 0.0012m),
        ],
            CancellationToken.None);
        _env = new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = GatewayHost.TestMasterKey };
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private async Task<string> RunAsync(params string[] args)
    {
        var (code, output, error) = await ShepherdExecutable.RunAsync(_env, ["usage", "--url", _gateway.BaseUrl, .. args]);
        Assert.True(code == 0, error);
        return output;
    }

    [Fact]
    public async Task Usage_Table_ShowsTheApiTotalsAndRunRate()
    {
        var api = JsonNode.Parse(await _gateway.Client.GetStringAsync("/admin/usage"))!;
        var totals = api["totals"]!;
        Assert.Equal(0.01795m, totals["cost_usd"]!.GetValue<decimal>());

        var output = await RunAsync();

        Assert.Contains("Usage by model", output, StringComparison.Ordinal);
        Assert.Contains("TOTAL", output, StringComparison.Ordinal);
        var totalLine = output.Split('\n').Single(l => l.Contains("TOTAL", StringComparison.Ordinal));
        foreach (var field in new[] { "requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd" })
        {
            Assert.Contains(totals[field]!.ToJsonString(), totalLine, StringComparison.Ordinal);
        }

        Assert.Contains("gpt-small", output, StringComparison.Ordinal);
        Assert.Contains($"Month to date: ${api["run_rate"]!["month_to_date_usd"]!.ToJsonString()}", output, StringComparison.Ordinal);
        Assert.Contains($"projected month: ${api["run_rate"]!["projected_month_usd"]!.ToJsonString()}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_ByKeyWithBaseline_SavingsAndKeyColumns()
    {
        var api = JsonNode.Parse(await _gateway.Client.GetStringAsync("/admin/usage?group_by=key&baseline=gpt-big"))!;

        var output = await RunAsync("--by", "key", "--baseline", "gpt-big");

        var totalLine = output.Split('\n').Single(l => l.Contains("TOTAL", StringComparison.Ordinal));
        Assert.Contains(api["totals"]!["savings_usd"]!.ToJsonString(), totalLine, StringComparison.Ordinal);
        Assert.Contains(api["totals"]!["savings_pct"]!.ToJsonString(), totalLine, StringComparison.Ordinal);
        Assert.Contains("savings", output, StringComparison.Ordinal);
        Assert.Contains(_key, output, StringComparison.Ordinal);
        Assert.Contains("cli-key", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_Json_IsTheApiReport()
    {
        var api = JsonNode.Parse(await _gateway.Client.GetStringAsync("/admin/usage?group_by=day&since=2026-11-21"))!;

        var output = await RunAsync("--by", "day", "--since", "2026-11-21", "--json");

        Assert.True(JsonNode.DeepEquals(api, JsonNode.Parse(output)), output);
    }

    [Fact]
    public async Task Usage_Csv_IsTheApiCsv()
    {
        var api = await _gateway.Client.GetStringAsync($"/admin/usage?group_by=model&since=2026-11-20&until=2026-11-21&key={_key}&format=csv");

        var output = await RunAsync("--csv", "--since", "2026-11-20", "--until", "2026-11-21", "--key", _key);

        Assert.Equal(api, output);
        Assert.StartsWith("group,requests,", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_BadInput_ExitOneWithTheProblem()
    {
        var (code, _, error) = await ShepherdExecutable.RunAsync(_env, "usage", "--url", _gateway.BaseUrl, "--since", "last-tuesday");
        Assert.Equal(1, code);
        Assert.Contains("since", error, StringComparison.Ordinal);

        (code, _, error) = await ShepherdExecutable.RunAsync(_env, "usage", "--url", _gateway.BaseUrl, "--by", "week");
        Assert.Equal(1, code);
        Assert.Contains("week", error, StringComparison.Ordinal);

        (code, _, error) = await ShepherdExecutable.RunAsync(new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = "wrong" }, "usage", "--url", _gateway.BaseUrl);
        Assert.Equal(1, code);
        Assert.Contains("401", error, StringComparison.Ordinal);
    }
}
